#!/usr/bin/env bash
# What cfn-lint and checkov cannot know: the template's own guarantees about who may ask for a
# change and how long phone numbers stay. Loads template.yaml with cfn-lint's parser (the test
# virtualenv's python, or python3 with cfn-lint importable) and fails on the first broken rule:
#   - only UploaderPrincipalArns may put objects under incoming/ (bucket policy Deny);
#   - only the stack's functions and ProducerPrincipalArns may send to the work queue;
#   - uploaded files expire after IncomingRetentionDays, older versions after a day;
#   - the S3 event filters on the prefix only (S3 suffix rules are case-sensitive);
#   - the ingest role has no s3:GetObjectVersion, and s3:DeleteObject only on checkpoints/;
#   - failed continuations are retried after ContinuationRetrySeconds;
#   - the job ledger table has PITR, the stack's key, a TTL on expiresAt, and is the only table
#     the functions may write (reader and reconcile policies are outputs);
#   - Temporary Access Passes: the worker gets PASS_BUCKET, PASS_KMS_KEY_ARN and
#     PASS_DELIVERY_QUEUE_ARNS; it may put and head objects under passes/ only, and no other role
#     or policy of the stack reaches passes/; the pass key is rotated, administered by the account
#     but not usable by it (no decrypt through IAM), encrypts for the worker through S3 and
#     decrypts for PassReaderPrincipalArn alone (only when set); the bucket policy denies reading
#     passes/ to all but the worker and the reader, and writing there to all but the worker and
#     without the pass key; passes expire after PassRetentionDays; the reply queues the worker may
#     send to are exactly PassDeliveryQueueArns (a conditional policy); the S3 event cannot fire
#     on passes/.
#
#   bash infra/tests/template.test.sh [TEMPLATE]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
template="${1:-$root/template.yaml}"
cache=${MFA_PRELOAD_CACHE:-"$HOME/.cache/mfa-preload"}
venv=${MFA_PRELOAD_VENV:-"$cache/venv"}
python=python3
if [[ -x "$venv/bin/python" ]]; then python="$venv/bin/python"; fi

"$python" - "$template" <<'PY'
import sys
from cfnlint.decode import decode

tpl, errors = decode(sys.argv[1])
if errors:
    sys.exit(f"template does not parse: {errors}")
res, params = tpl["Resources"], tpl["Parameters"]
problems = []

def check(ok, what):
    if not ok:
        problems.append(what)

def as_list(v):
    return v if isinstance(v, list) else [v]

def branches(stmts):
    """(statement, condition) of a statement list: a Fn::If entry gives its true branch with its
    condition name and its false branch with "!condition"; AWS::NoValue branches are dropped."""
    out = []
    for s in as_list(stmts):
        if isinstance(s, dict) and list(s) == ["Fn::If"]:
            cond, yes, no = s["Fn::If"]
            for branch, c in ((yes, cond), (no, "!" + cond)):
                if branch != {"Ref": "AWS::NoValue"}:
                    out.append((branch, c))
        else:
            out.append((s, None))
    return out

def statements(resource):
    """Every statement of a policy resource, both branches of a Fn::If included."""
    return [s for s, _ in branches(res[resource]["Properties"]["PolicyDocument"]["Statement"])]

# Uploads: a Deny on s3:PutObject under incoming/ for every principal not named.
deny = [s for s in statements("UploadBucketPolicy")
        if s["Effect"] == "Deny" and "s3:PutObject" in as_list(s["Action"])
        and "incoming/" in str(s["Resource"])]
check(len(deny) == 1, "the bucket policy denies s3:PutObject to all but the named uploaders")
for s in deny:
    check(s.get("Principal") == "*", "the upload Deny applies to every principal")
    check("incoming/*" in str(s["Resource"]), "the upload Deny covers incoming/*")
    cond = s.get("Condition", {}).get("ArnNotLike", {}).get("aws:PrincipalArn")
    check(cond == {"Fn::Split": [",", {"Ref": "UploaderPrincipalArns"}]},
          f"the upload Deny exempts exactly UploaderPrincipalArns, not {cond}")
check("Default" not in params["UploaderPrincipalArns"],
      "UploaderPrincipalArns is required (no default that lets everyone in)")

# Requests: a Deny on sqs:SendMessage to the work queue for all but the functions and producers.
qp = res.get("WorkQueuePolicy", {})
check(qp.get("Type") == "AWS::SQS::QueuePolicy", "the work queue has a queue policy")
if qp:
    check(qp["Properties"]["Queues"] == [{"Ref": "WorkQueue"}], "the queue policy is the work queue's")
    deny = [s for s in statements("WorkQueuePolicy")
            if s["Effect"] == "Deny" and "sqs:SendMessage" in as_list(s["Action"])]
    check(len(deny) == 1, "the work queue policy denies sqs:SendMessage")
    for s in deny:
        check(s.get("Principal") == "*", "the send Deny applies to every principal")
        cond = str(s.get("Condition", {}).get("ArnNotLike", {}).get("aws:PrincipalArn"))
        for name in ("IngestRole", "WorkerRole", "ProducerPrincipalArns"):
            check(name in cond, f"the send Deny exempts {name}")

# Retention of uploaded files.
rules = res["UploadBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
incoming = [r for r in rules if r.get("Prefix") == "incoming/"]
check(len(incoming) == 1, "a lifecycle rule expires incoming/")
for r in incoming:
    check(r.get("ExpirationInDays") == {"Ref": "IncomingRetentionDays"},
          "incoming/ expires after IncomingRetentionDays")
    check(r.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays") == 1,
          "replaced versions under incoming/ expire after a day")
    check(r.get("Status") == "Enabled", "the incoming/ rule is enabled")

# The event: prefix only.
ingest = res["IngestFunction"]["Properties"]
rules = ingest["Events"]["CsvUploaded"]["Properties"]["Filter"]["S3Key"]["Rules"]
check([r["Name"] for r in rules] == ["prefix"], f"the S3 event filters on the prefix only: {rules}")
check(ingest["Environment"]["Variables"].get("CONTINUATION_RETRY_SECONDS")
      == {"Ref": "ContinuationRetrySeconds"}, "the ingest gets CONTINUATION_RETRY_SECONDS")

# The ingest role: least privilege on the bucket.
for policy in res["IngestRole"]["Properties"]["Policies"]:
    for s in policy["PolicyDocument"]["Statement"]:
        actions = as_list(s["Action"])
        check("s3:GetObjectVersion" not in actions, "the ingest role has no s3:GetObjectVersion")
        if "s3:DeleteObject" in actions:
            check("checkpoints/*" in str(s["Resource"]) and "reports/*" not in str(s["Resource"])
                  and "incoming/*" not in str(s["Resource"]),
                  "s3:DeleteObject only on checkpoints/")

# The job ledger: recoverable, encrypted with the stack's key, expiring, and the only table the
# functions may write (no deletes, scans or batch writes; reads and writes on its ARN only).
table = res.get("JobLedgerTable", {})
check(table.get("Type") == "AWS::DynamoDB::Table", "the job ledger is a DynamoDB table")
tp = table.get("Properties", {})
check(tp.get("BillingMode") == "PAY_PER_REQUEST", "the ledger table is on demand")
check(tp.get("KeySchema") == [{"AttributeName": "job", "KeyType": "HASH"},
                              {"AttributeName": "item", "KeyType": "RANGE"}],
      f"the ledger's keys are job (partition) and item (sort): {tp.get('KeySchema')}")
check(tp.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is True,
      "the ledger table has point-in-time recovery")
sse = tp.get("SSESpecification", {})
check(sse.get("SSEEnabled") is True and sse.get("SSEType") == "KMS"
      and sse.get("KMSMasterKeyId") == {"Fn::GetAtt": ["DataKey", "Arn"]},
      f"the ledger table is encrypted with the stack's DataKey: {sse}")
ttl = tp.get("TimeToLiveSpecification", {})
check(ttl == {"AttributeName": "expiresAt", "Enabled": True},
      f"the ledger's items expire on expiresAt: {ttl}")
check(table.get("DeletionPolicy") == "Retain" and table.get("UpdateReplacePolicy") == "Retain",
      "the ledger table is retained, as the bucket is")
check(params.get("LedgerRetentionDays", {}).get("Default") == 90
      and params.get("LedgerRetentionDays", {}).get("MinValue") == 1,
      "LedgerRetentionDays defaults to 90 days, at least 1")

ledger_arn = {"Fn::GetAtt": ["JobLedgerTable", "Arn"]}
table_actions = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:GetItem", "dynamodb:BatchGetItem",
                 "dynamodb:Query", "dynamodb:ConditionCheckItem"}

def ledger_statements(doc_statements, who, allowed):
    granted = set()
    for s in doc_statements:
        actions = as_list(s["Action"])
        ddb = [a for a in actions if a.startswith("dynamodb:")]
        if not ddb:
            continue
        check(s["Effect"] == "Allow", f"{who}: DynamoDB statements allow")
        check(s["Resource"] == ledger_arn,
              f"{who}: DynamoDB actions on the ledger table's ARN only, not {s['Resource']}")
        extra = set(ddb) - allowed
        check(not extra, f"{who}: no DynamoDB actions beyond {sorted(allowed)}: {sorted(extra)}")
        granted |= set(ddb)
    return granted

for role in ("WorkerRole", "IngestRole"):
    granted = set()
    for policy in res[role]["Properties"]["Policies"]:
        granted |= ledger_statements(policy["PolicyDocument"]["Statement"], role, table_actions)
    check(granted == table_actions, f"{role} may use the ledger table: {sorted(granted)}")
    env = res[role.replace("Role", "Function")]["Properties"]["Environment"]["Variables"]
    check(env.get("LEDGER_TABLE") == {"Ref": "JobLedgerTable"}, f"{role}'s function gets LEDGER_TABLE")
    check(env.get("LEDGER_RETENTION_DAYS") == {"Ref": "LedgerRetentionDays"},
          f"{role}'s function gets LEDGER_RETENTION_DAYS")

worker_sends = [s for p in res["WorkerRole"]["Properties"]["Policies"]
                for s in p["PolicyDocument"]["Statement"] if "sqs:SendMessage" in as_list(s["Action"])]
check(any(s["Resource"] == {"Fn::GetAtt": ["ControlQueue", "Arn"]} for s in worker_sends),
      "the worker may ask for a job's reports on the control queue")
ingest_publish = [s for p in res["IngestRole"]["Properties"]["Policies"]
                  for s in p["PolicyDocument"]["Statement"] if "sns:Publish" in as_list(s["Action"])]
check([s["Resource"] for s in ingest_publish] == [{"Ref": "AlarmTopic"}],
      "the ingest publishes to the alarm topic only")

reader = statements("LedgerReaderPolicy")
ledger_statements(reader, "LedgerReaderPolicy", {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"})
check(not any(a.startswith("sqs:") for s in reader for a in as_list(s["Action"])),
      "the reader policy has no queue rights")
reconcile = statements("LedgerReconcilePolicy")
ledger_statements(reconcile, "LedgerReconcilePolicy",
                  {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"})
check(not any(a == "sqs:DeleteMessage" for s in reconcile for a in as_list(s["Action"])),
      "reconcile reads the DLQ without deleting from it")
outputs = tpl.get("Outputs", {})
for name, resource in (("LedgerReaderPolicyArn", "LedgerReaderPolicy"),
                       ("LedgerReconcilePolicyArn", "LedgerReconcilePolicy")):
    check(outputs.get(name, {}).get("Value") == {"Ref": resource}, f"the stack outputs {name}")

# ---------------------------------------------------------------- Temporary Access Passes
worker_fn = res["WorkerFunction"]["Properties"]
worker_env = worker_fn["Environment"]["Variables"]
for var, value in (("PASS_BUCKET", {"Ref": "UploadBucket"}),
                   ("PASS_KMS_KEY_ARN", {"Fn::GetAtt": ["PassKey", "Arn"]}),
                   ("PASS_DELIVERY_QUEUE_ARNS", {"Ref": "PassDeliveryQueueArns"})):
    check(worker_env.get(var) == value, f"the worker gets {var} = {value}, not {worker_env.get(var)}")

# Parameters.
reader_p = params.get("PassReaderPrincipalArn", {})
check(reader_p.get("Type") == "String" and reader_p.get("Default") == "",
      "PassReaderPrincipalArn is a String, empty by default")
queues_p = params.get("PassDeliveryQueueArns", {})
check(queues_p.get("Default") == "", "PassDeliveryQueueArns is empty by default")
retention_p = params.get("PassRetentionDays", {})
check(retention_p.get("Type") == "Number" and retention_p.get("Default") == 7
      and retention_p.get("MinValue") == 4 and retention_p.get("MaxValue") == 90,
      f"PassRetentionDays is a Number, 7 by default, 4-90 (at least the work queue's retention): {retention_p}")
import re
def matches(param, value):
    pattern = param.get("AllowedPattern")
    return pattern is not None and re.fullmatch(pattern, value) is not None
for ok, arn in ((True, ""), (True, "arn:aws:iam::123456789012:role/helpdesk"),
                (True, "arn:aws-us-gov:iam::123456789012:user/help.desk@contoso"),
                (True, "arn:aws-cn:iam::123456789012:role/aws-reserved/sso.amazonaws.com/cn-north-1/AWSReservedSSO_Helpdesk_0123456789abcdef"),
                (False, "arn:aws:iam::123456789012:root"), (False, "arn:aws:iam::123456789012:role/*"),
                (False, "arn:aws:sts::123456789012:assumed-role/helpdesk/jane"),
                (False, "arn:aws:iam::123456789012:role/a,arn:aws:iam::123456789012:role/b"),
                (False, "*"), (False, "123456789012")):
    check(matches(reader_p, arn) == ok, f"PassReaderPrincipalArn {'accepts' if ok else 'refuses'} {arn!r}")
for ok, arns in ((True, ""), (True, "arn:aws:sqs:eu-west-1:123456789012:hr-replies"),
                 (True, "arn:aws:sqs:eu-west-1:123456789012:a.fifo,arn:aws-us-gov:sqs:us-gov-west-1:210987654321:b_2"),
                 (False, "arn:aws:sqs:eu-west-1:123456789012:*"),
                 (False, "arn:aws:sqs:eu-west-1:123456789012:a, arn:aws:sqs:eu-west-1:123456789012:b"),
                 (False, "arn:aws:sqs:eu-west-1:123456789012:a,"),
                 (False, "https://sqs.eu-west-1.amazonaws.com/123456789012/a"),
                 (False, "arn:aws:sns:eu-west-1:123456789012:a")):
    check(matches(queues_p, arns) == ok, f"PassDeliveryQueueArns {'accepts' if ok else 'refuses'} {arns!r}")
conditions = tpl.get("Conditions", {})
for name, param in (("HasPassReader", "PassReaderPrincipalArn"),
                    ("HasPassDeliveryQueues", "PassDeliveryQueueArns")):
    check(conditions.get(name) == {"Fn::Not": [{"Fn::Equals": [{"Ref": param}, ""]}]},
          f"{name} is true exactly when {param} is not empty")

# Every S3 statement of every role and policy of the stack: only the worker's reaches passes/, and
# none reaches the whole bucket's objects.
def policy_documents():
    for name, r in res.items():
        props = r.get("Properties", {})
        if r["Type"] == "AWS::IAM::Role":
            for p in props.get("Policies", []):
                yield name, p["PolicyDocument"]["Statement"]
        elif r["Type"] in ("AWS::IAM::RolePolicy", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            yield name, props["PolicyDocument"]["Statement"]

def s3_object_paths(resource):
    """The object paths ("/passes/*", "" for the bucket itself) a resource of the bucket names."""
    out = []
    for r in as_list(resource):
        if isinstance(r, dict) and "Fn::Sub" in r:
            r = r["Fn::Sub"][0] if isinstance(r["Fn::Sub"], list) else r["Fn::Sub"]
        if r == {"Fn::GetAtt": ["UploadBucket", "Arn"]}:
            out.append("")
            continue
        text = str(r)
        m = re.search(r"(?:\$\{StackSuffix\}|\$\{UploadBucket\.Arn\})(.*)$", text)
        if m:
            out.append(m.group(1))
        elif text == "*" or ":s3:::" in text:
            out.append(text)
    return out

pass_writes = []
for owner, doc in policy_documents():
    for s, _ in branches(doc):
        actions = [a for a in as_list(s.get("Action", [])) if a.lower().startswith("s3:")]
        if not actions or s["Effect"] != "Allow":
            continue
        check(not any("*" in a for a in actions), f"{owner}: S3 actions named one by one: {actions}")
        for path in s3_object_paths(s["Resource"]):
            if path == "":
                check(actions == ["s3:ListBucket"], f"{owner}: on the bucket itself only s3:ListBucket: {actions}")
                continue
            check(re.fullmatch(r"/[a-z]+/\*", path) is not None,
                  f"{owner}: S3 objects under one named prefix, not {path}")
            if path.startswith("/passes/"):
                pass_writes.append((owner, s))
check([o for o, _ in pass_writes] == ["WorkerRole"],
      f"only the worker role reaches passes/: {[o for o, _ in pass_writes]}")
for _, s in pass_writes:
    check(sorted(as_list(s["Action"])) == ["s3:GetObject", "s3:PutObject"],
          f"the worker may put and head (s3:GetObject) passes, nothing more: {s['Action']}")
    check(all(p == "/passes/*" for p in s3_object_paths(s["Resource"])),
          f"the worker's pass statement is limited to passes/*: {s['Resource']}")

# The pass key.
key = res.get("PassKey", {})
check(key.get("Type") == "AWS::KMS::Key", "PassKey is a KMS key")
kp = key.get("Properties", {})
check(kp.get("EnableKeyRotation") is True, "the pass key is rotated")
aliases = [r["Properties"] for r in res.values() if r["Type"] == "AWS::KMS::Alias"
           and r["Properties"].get("TargetKeyId") == {"Ref": "PassKey"}]
check(aliases == [{"AliasName": {"Fn::Sub": "alias/${AWS::StackName}-passes"}, "TargetKeyId": {"Ref": "PassKey"}}],
      f"the pass key has its own alias alias/STACK-passes: {aliases}")
key_statements = branches(kp.get("KeyPolicy", {}).get("Statement", []))
root = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}
use = ("kms:decrypt", "kms:reencrypt", "kms:generatedatakey", "kms:encrypt", "kms:creategrant")
via_s3 = {"StringEquals": {"kms:ViaService": {"Fn::Sub": "s3.${AWS::Region}.${AWS::URLSuffix}"}}}
for s, cond in key_statements:
    check(s.get("Effect") == "Allow", f"the pass key policy only allows: {s.get('Sid')}")
    principal = s.get("Principal", {}).get("AWS")
    actions = [a.lower() for a in as_list(s["Action"])]
    check(not any("*" in a for a in actions), f"pass key policy {s.get('Sid')}: actions named one by one: {s['Action']}")
    if principal == root:
        check(cond is None, "the account's administration of the pass key is unconditional")
        check(not any(a.startswith(use) for a in actions),
              f"the account administers the pass key but cannot use it: {[a for a in actions if a.startswith(use)]}")
        check("kms:putkeypolicy" in actions, "the account can still change the pass key's policy")
    elif principal == {"Fn::GetAtt": ["WorkerRole", "Arn"]}:
        check(cond is None, "the worker's use of the pass key is unconditional")
        check("kms:generatedatakey" in actions and set(actions) <= {"kms:generatedatakey", "kms:encrypt"},
              f"the worker may only encrypt with the pass key: {s['Action']}")
        check(s.get("Condition") == via_s3, f"the worker uses the pass key through S3 only: {s.get('Condition')}")
    elif principal == {"Ref": "PassReaderPrincipalArn"}:
        check(cond == "HasPassReader", f"the pass reader's statement exists only when it is set: {cond}")
        check("kms:decrypt" in actions and set(actions) <= {"kms:decrypt", "kms:describekey"},
              f"the pass reader may decrypt (and describe) only: {s['Action']}")
        check(s.get("Condition") == via_s3, f"the pass reader decrypts through S3 only: {s.get('Condition')}")
    else:
        check(False, f"the pass key policy names nobody but the account, the worker and the reader: {principal}")
principals = [s.get("Principal", {}).get("AWS") for s, _ in key_statements]
check(principals.count(root) == 1 and {"Fn::GetAtt": ["WorkerRole", "Arn"]} in principals
      and {"Ref": "PassReaderPrincipalArn"} in principals,
      f"the pass key policy has the account's, the worker's and the reader's statements: {principals}")
for owner, doc in policy_documents():
    for s, _ in branches(doc):
        check("PassKey" not in str(s.get("Resource")) or not any(
                  a.lower().startswith(("kms:decrypt", "kms:reencrypt")) for a in as_list(s["Action"])),
              f"{owner}: no IAM policy of the stack grants decrypt on the pass key")

# Reply queues: exactly PassDeliveryQueueArns, in a policy that exists only when it is set.
delivery = res.get("WorkerPassDeliveryPolicy", {})
check(delivery.get("Type") == "AWS::IAM::RolePolicy" and delivery.get("Condition") == "HasPassDeliveryQueues",
      "the reply queue policy is a role policy of its own, only when PassDeliveryQueueArns is set")
if delivery:
    dp = delivery["Properties"]
    check(dp.get("RoleName") == {"Ref": "WorkerRole"}, "the reply queue policy is the worker's")
    ds = dp["PolicyDocument"]["Statement"]
    check(len(ds) == 1, "the reply queue policy has one statement")
    for s in ds:
        check(s["Effect"] == "Allow" and sorted(as_list(s["Action"])) == ["sqs:GetQueueUrl", "sqs:SendMessage"],
              f"the worker may send to and look up the reply queues, nothing more: {s['Action']}")
        check(s["Resource"] == {"Fn::Split": [",", {"Ref": "PassDeliveryQueueArns"}]},
              f"the reply queues are exactly PassDeliveryQueueArns: {s['Resource']}")
for owner, doc in policy_documents():
    if owner == "WorkerPassDeliveryPolicy":
        continue
    check("PassDeliveryQueueArns" not in str(doc), f"{owner}: no other policy names the reply queues")

# Passes expire.
rules = res["UploadBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
passes = [r for r in rules if r.get("Prefix") == "passes/"]
check(len(passes) == 1, "a lifecycle rule expires passes/")
for r in passes:
    check(r.get("Status") == "Enabled", "the passes/ rule is enabled")
    check(r.get("ExpirationInDays") == {"Ref": "PassRetentionDays"}, "passes/ expires after PassRetentionDays")
    check(r.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays") == 1,
          "expired or replaced versions under passes/ go a day later")

# The bucket policy: reading passes/ denied to all but the worker and the reader.
bucket_statements = branches(res["UploadBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"])
passes_arn = {"Fn::Sub": "${UploadBucket.Arn}/passes/*"}
worker_arn = {"Fn::GetAtt": ["WorkerRole", "Arn"]}
get_deny = [s for s, _ in bucket_statements if s["Effect"] == "Deny" and "s3:GetObject" in as_list(s["Action"])]
check(len(get_deny) == 1, "the bucket policy denies s3:GetObject on passes/")
for s in get_deny:
    check(s.get("Principal") == "*", "the pass read Deny applies to every principal")
    check(s["Resource"] == passes_arn, f"the pass read Deny covers passes/*: {s['Resource']}")
    check("s3:GetObjectVersion" in as_list(s["Action"]), "the pass read Deny covers older versions too")
    cond = s.get("Condition", {})
    exempt = (cond.get("ArnNotEquals") or cond.get("ArnNotLike") or {}).get("aws:PrincipalArn")
    check(exempt == {"Fn::If": ["HasPassReader", [worker_arn, {"Ref": "PassReaderPrincipalArn"}], [worker_arn]]},
          f"the pass read Deny exempts exactly the worker and, when set, the reader: {exempt}")
put_deny = [s for s, _ in bucket_statements if s["Effect"] == "Deny" and "s3:PutObject" in as_list(s["Action"])
            and s["Resource"] == passes_arn]
check(any(s.get("Condition") == {"ArnNotEquals": {"aws:PrincipalArn": worker_arn}} for s in put_deny),
      "the bucket policy denies s3:PutObject on passes/ to all but the worker")
check(any(s.get("Condition") == {"StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id":
                                                     {"Fn::GetAtt": ["PassKey", "Arn"]}}} for s in put_deny),
      "the bucket policy denies s3:PutObject on passes/ without the pass key")
for s, cond in bucket_statements:
    if s["Effect"] == "Allow":
        check(cond == "HasPassReader" and s.get("Principal") == {"AWS": {"Ref": "PassReaderPrincipalArn"}},
              f"the bucket policy allows only the pass reader, and only when it is set: {s.get('Sid')}")
        check("passes/" in str(s["Resource"]) or "passes/" in str(s.get("Condition")),
              f"the pass reader's bucket rights are limited to passes/: {s.get('Sid')}")

# No S3 event can fire on passes/ (the ingest would read a pass file as input).
for name, r in res.items():
    if r["Type"] != "AWS::Serverless::Function":
        continue
    for ev_name, ev in r["Properties"].get("Events", {}).items():
        if ev["Type"] != "S3":
            continue
        rules = ev["Properties"].get("Filter", {}).get("S3Key", {}).get("Rules", [])
        prefixes = [x["Value"] for x in rules if x["Name"] == "prefix"]
        check(len(prefixes) == 1 and prefixes[0] and not "passes/".startswith(prefixes[0])
              and not prefixes[0].startswith("passes/"),
              f"{name}.{ev_name}: the S3 event's prefix cannot match passes/: {prefixes}")

for name, value in (("PassKeyArn", {"Fn::GetAtt": ["PassKey", "Arn"]}),
                    ("PassesLocation", {"Fn::Sub": "s3://${UploadBucket}/passes/"})):
    check(outputs.get(name, {}).get("Value") == value, f"the stack outputs {name} = {value}")

for p in problems:
    print(f"FAILED: {p}")
if problems:
    sys.exit(1)
print("template guarantees: all hold")
PY

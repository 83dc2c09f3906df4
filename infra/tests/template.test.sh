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
#     the functions may write (reader and reconcile policies are outputs).
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

def statements(resource):
    return res[resource]["Properties"]["PolicyDocument"]["Statement"]

def as_list(v):
    return v if isinstance(v, list) else [v]

# Uploads: a Deny on s3:PutObject under incoming/ for every principal not named.
deny = [s for s in statements("UploadBucketPolicy")
        if s["Effect"] == "Deny" and "s3:PutObject" in as_list(s["Action"])]
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

for p in problems:
    print(f"FAILED: {p}")
if problems:
    sys.exit(1)
print("template guarantees: all hold")
PY

#!/usr/bin/env bash
# Tests of infra/store-secret.sh against a stub `aws` on PATH. The stub keeps secrets in a state
# directory (what the script stored, as the AWS CLI read it from the file:// path) and logs every
# call, so each case checks the secret's JSON, the options passed (with and without --region: the
# empty-array path), and that the private key never appears on a command line.
#
#   bash infra/tests/store-secret.test.sh
#
# STORE_SECRET=PATH tests another copy of the script. Needs: bash, jq, openssl, coreutils.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
script="${STORE_SECRET:-$root/infra/store-secret.sh}"
for tool in jq openssl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool is required (e.g. apt-get install $tool)" >&2; exit 2; }
done

readonly TENANT="99999999-9999-9999-9999-999999999999"
readonly CLIENT="c0ffee00-0000-4000-8000-000000000001"
readonly NAME="mfa-preload/graph-app"

work=$(mktemp -d)
completed=0
case_name="(setup)"
on_exit() {
  rm -rf "$work"
  if [[ $completed -eq 0 ]]; then echo "FAIL the test stopped early, in: $case_name" >&2; exit 1; fi
}
trap on_exit EXIT
mkdir -p "$work/bin"

# --- The stub `aws` ------------------------------------------------------------------------------
cat >"$work/bin/aws" <<'STUB'
#!/usr/bin/env bash
# Stub AWS CLI (Secrets Manager only): state in $STUB_AWS_STATE, calls in calls.log.
set -uo pipefail
s="$STUB_AWS_STATE"
printf '%s\n' "$*" >>"$s/calls.log"
unexpected() { printf '%s\n' "$*" >>"$s/unexpected.log"; echo "stub aws: unexpected call: $*" >&2; exit 2; }
region="us-east-1"
if [[ "${1:-}" == --region ]]; then region="$2"; shift 2; fi
[[ "${1:-}" == secretsmanager ]] || unexpected "service ${1:-none}"
op="$2"
shift 2
name="" file="" kms="" query="" output="" description=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --secret-id | --name) name="$2"; shift 2 ;;
    --secret-string)
      [[ "$2" == file://* ]] || unexpected "--secret-string not from a file"
      file="${2#file://}"; shift 2 ;;
    --kms-key-id) kms="$2"; shift 2 ;;
    --query) query="$2"; shift 2 ;;
    --output) output="$2"; shift 2 ;;
    --description) description="$2"; shift 2 ;;
    *) unexpected "option $1" ;;
  esac
done
[[ "$query" == ARN && "$output" == text ]] || unexpected "$op --query $query --output $output"
key=$(printf '%s' "$name" | tr '/' '_')
arn="arn:aws:secretsmanager:$region:123456789012:secret:$name-AbCdEf"
case "$op" in
  describe-secret)
    [[ -e "$s/secrets/$key.json" ]] || {
      echo "An error occurred (ResourceNotFoundException) when calling the DescribeSecret operation: Secrets Manager can't find the specified secret." >&2
      exit 254
    }
    echo "$arn"
    ;;
  create-secret)
    [[ -n "$description" ]] || unexpected "create-secret without --description"
    [[ ! -e "$s/secrets/$key.json" ]] || { echo "ResourceExistsException" >&2; exit 254; }
    cp "$file" "$s/secrets/$key.json"
    printf '%s' "$kms" >"$s/secrets/$key.kms"
    echo "$file" >>"$s/files.log"
    echo "$arn"
    ;;
  put-secret-value)
    [[ -e "$s/secrets/$key.json" ]] || { echo "ResourceNotFoundException" >&2; exit 254; }
    cp "$file" "$s/secrets/$key.json"
    echo "$file" >>"$s/files.log"
    echo "$arn"
    ;;
  *) unexpected "$op" ;;
esac
STUB
chmod +x "$work/bin/aws"

# Certificates: the app's (60 days, so no expiry warning), its PFX, and another key.
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 60 -subj "/CN=store-test" \
  -keyout "$work/app.key.pem" -out "$work/app.crt.pem" 2>/dev/null
printf 'pfx pass word\n' >"$work/app.pfx.password"
openssl pkcs12 -export -inkey "$work/app.key.pem" -in "$work/app.crt.pem" \
  -passout "pass:pfx pass word" -out "$work/app.pfx"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/other.key.pem" 2>/dev/null

# --- Helpers -------------------------------------------------------------------------------------
failures=0
passed=0

start() {
  case_name="$1"
  case_failed=0
  state="$work/state.$RANDOM$RANDOM"
  mkdir -p "$state/secrets"
  : >"$state/calls.log"
}
bad() {
  echo "  FAIL [$case_name] $*" >&2
  case_failed=1
}
finish() {
  if [[ $case_failed -eq 0 ]]; then
    passed=$((passed + 1))
    echo "ok   $case_name"
  else
    failures=$((failures + 1))
    echo "FAIL $case_name" >&2
    echo "  --- stdout" >&2; sed 's/^/  | /' "$state/out" >&2
    echo "  --- stderr" >&2; sed 's/^/  | /' "$state/err" >&2
    echo "  --- aws calls" >&2; sed 's/^/  | /' "$state/calls.log" >&2
  fi
}
run() {
  set +e
  STUB_AWS_STATE="$state" PATH="$work/bin:$PATH" bash "$script" "$@" >"$state/out" 2>"$state/err" </dev/null
  rc=$?
  set -e
  if [[ -s "$state/unexpected.log" ]]; then
    bad "the script made calls the stub does not know: $(cat "$state/unexpected.log")"
  fi
}
expect_rc() { [[ "$rc" == "$1" ]] || bad "exit status $rc, expected $1"; }
expect_out() {
  local text
  text=$(cat "$state/$1")
  case "$text" in *"$2"*) ;; *) bad "$1 lacks: $2" ;; esac
}
# Number of aws calls that hold $1.
calls() {
  local n=0 line
  while IFS= read -r line; do
    case "$line" in *"$1"*) n=$((n + 1)) ;; esac
  done <"$state/calls.log"
  echo "$n"
}
expect_calls() {
  local n
  n=$(calls "$1")
  [[ "$n" == "$2" ]] || bad "$n call(s) holding '$1', expected $2"
}
secret() { jq -r "$1" "$state/secrets/mfa-preload_graph-app.json"; }
expect_field() { # JQ_PATH VALUE : the field holds exactly VALUE
  jq -e --arg v "$2" "$1 == \$v" "$state/secrets/mfa-preload_graph-app.json" >/dev/null 2>&1 ||
    bad "secret $1 is not '$2' but $(jq -c "$1" "$state/secrets/mfa-preload_graph-app.json" 2>/dev/null || echo '(unreadable)')"
}
expect_no_key_on_command_lines() {
  local log
  log=$(cat "$state/calls.log")
  case "$log" in *"PRIVATE KEY"* | *"pfx pass word"*) bad "a secret was on the aws command line" ;; esac
}
expect_temp_files_gone() {
  local f
  if [[ -f "$state/files.log" ]]; then
    while IFS= read -r f; do
      [[ ! -e "$f" ]] || bad "the temporary file $f is still there"
    done <"$state/files.log"
  fi
}
cert_pem=$(openssl x509 -in "$work/app.crt.pem")
cert_pub=$(openssl x509 -in "$work/app.crt.pem" -noout -pubkey)

# --- Cases ---------------------------------------------------------------------------------------

start "PEM, no --region, new secret: created from a file, no --region anywhere"
run --tenant-id "$TENANT" --client-id "$CLIENT" --cert "$work/app.crt.pem" --key "$work/app.key.pem"
expect_rc 0
expect_calls "secretsmanager describe-secret --secret-id $NAME" 1
expect_calls "secretsmanager create-secret --name $NAME" 1
expect_calls "put-secret-value" 0
expect_calls "--region" 0
expect_calls "--kms-key-id" 0
expect_field .tenantId "$TENANT"
expect_field .clientId "$CLIENT"
[[ "$(secret .certificatePem | openssl x509 2>/dev/null)" == "$cert_pem" ]] || bad "certificatePem is not the certificate"
[[ "$(secret .privateKeyPem | head -n 1)" == "-----BEGIN PRIVATE KEY-----" ]] || bad "privateKeyPem is not PKCS#8"
[[ "$(secret .privateKeyPem | openssl pkey -pubout 2>/dev/null)" == "$cert_pub" ]] || bad "privateKeyPem is not the certificate's key"
[[ "$(secret 'keys | join(",")')" == "certificatePem,clientId,privateKeyPem,tenantId" ]] || bad "unexpected fields: $(secret 'keys | join(",")')"
expect_out out "CredentialsSecretArn: arn:aws:secretsmanager:us-east-1:123456789012:secret:$NAME-AbCdEf"
expect_no_key_on_command_lines
expect_temp_files_gone
finish

start "--region and an existing secret: a new version, --region on every call"
printf '{}' >"$state/secrets/mfa-preload_graph-app.json"
run --tenant-id "$TENANT" --client-id "$CLIENT" --cert "$work/app.crt.pem" --key "$work/app.key.pem" --region eu-west-1
expect_rc 0
expect_calls "--region eu-west-1 secretsmanager describe-secret" 1
expect_calls "--region eu-west-1 secretsmanager put-secret-value --secret-id $NAME" 1
expect_calls "create-secret" 0
[[ "$(calls secretsmanager)" == "$(calls "--region eu-west-1 secretsmanager")" ]] || bad "a call without --region"
expect_field .clientId "$CLIENT"
expect_out out "Stored a new version of the secret $NAME"
expect_out out "arn:aws:secretsmanager:eu-west-1:"
expect_no_key_on_command_lines
finish

start "--kms-key-id on a new secret, no --region"
run --tenant-id "$TENANT" --client-id "$CLIENT" --cert "$work/app.crt.pem" --key "$work/app.key.pem" \
  --kms-key-id alias/mfa-preload
expect_rc 0
expect_calls "create-secret --name $NAME" 1
expect_calls "--kms-key-id alias/mfa-preload" 1
expect_calls "--region" 0
[[ "$(cat "$state/secrets/mfa-preload_graph-app.kms")" == alias/mfa-preload ]] || bad "the KMS key was not passed"
finish

start "PFX with its password file next to it: pfxBase64 and the password less its newline"
run --tenant-id "$TENANT" --client-id "$CLIENT" --pfx "$work/app.pfx"
expect_rc 0
expect_field .pfxPassword "pfx pass word"
[[ "$(secret .pfxBase64 | openssl base64 -d -A | cmp - "$work/app.pfx" && echo same)" == same ]] || bad "pfxBase64 is not the PFX"
[[ "$(secret 'keys | join(",")')" == "clientId,pfxBase64,pfxPassword,tenantId" ]] || bad "unexpected fields: $(secret 'keys | join(",")')"
expect_calls "--region" 0
expect_no_key_on_command_lines
expect_temp_files_gone
finish

start "a key of another certificate: refused before any aws call"
run --tenant-id "$TENANT" --client-id "$CLIENT" --cert "$work/app.crt.pem" --key "$work/other.key.pem"
expect_rc 1
expect_out err "does not belong to the certificate"
[[ ! -s "$state/calls.log" ]] || bad "aws was called"
finish

start "a client id that is not a GUID: refused before any aws call"
run --tenant-id "$TENANT" --client-id mfa-preload --cert "$work/app.crt.pem" --key "$work/app.key.pem"
expect_rc 1
expect_out err "--client-id must be the application (client) GUID"
[[ ! -s "$state/calls.log" ]] || bad "aws was called"
finish

echo
echo "store-secret.sh: $passed passed, $failures failed"
completed=1
[[ $failures -eq 0 ]]

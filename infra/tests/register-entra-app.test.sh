#!/usr/bin/env bash
# Tests of infra/register-entra-app.sh against a stub `az` on PATH. The stub answers the calls the
# script makes from a small state directory (apps with their owners, requested permissions and
# certificates, the signed-in user, Microsoft Graph's app roles and scopes) and logs every call, so
# each case can check what was created, requested and consented, and what was not.
#
#   bash infra/tests/register-entra-app.test.sh
#
# REGISTER_ENTRA_APP=PATH tests another copy of the script (e.g. a deliberately broken one, to see
# the cases fail). Needs: bash, openssl, coreutils.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
script="${REGISTER_ENTRA_APP:-$root/infra/register-entra-app.sh}"
command -v openssl >/dev/null 2>&1 || { echo "error: openssl is required" >&2; exit 2; }

readonly GRAPH="00000003-0000-0000-c000-000000000000"
readonly ME="11111111-1111-1111-1111-111111111111"
readonly OTHER_USER="22222222-2222-2222-2222-222222222222"
readonly TENANT="99999999-9999-9999-9999-999999999999"
# Real ids where they are known; the stub tenant makes up the others (the script must read them).
readonly ID_BROAD="50483e42-d915-4231-9639-7fdb7fd190e5"
readonly ID_USER_READ="df021288-bdef-4463-88db-98f22de89214"
readonly ID_PHONE="aaaaaaa1-0000-4000-8000-000000000001"
readonly ID_EMAIL="aaaaaaa1-0000-4000-8000-000000000002"
readonly ID_PHONE_READ="aaaaaaa1-0000-4000-8000-000000000003"
readonly ID_EMAIL_READ="aaaaaaa1-0000-4000-8000-000000000004"
readonly ID_TAP="aaaaaaa1-0000-4000-8000-000000000005"
readonly ID_AUDIT="aaaaaaa1-0000-4000-8000-000000000006"
readonly ID_DIRECTORY_RW="aaaaaaa1-0000-4000-8000-000000000007"
readonly ID_METHODS_READ="aaaaaaa1-0000-4000-8000-000000000008"
readonly ID_TAP_POLICY="aaaaaaa1-0000-4000-8000-000000000009"
readonly ID_SCOPE_USER_READ="e1fe6dd8-ba31-4d61-89e7-88639da4683d"
readonly OTHER_API="00000002-0000-0ff1-ce00-000000000000"

work=$(mktemp -d)
completed=0
case_name="(setup)"
on_exit() {
  rm -rf "$work"
  if [[ $completed -eq 0 ]]; then echo "FAIL the test stopped early, in: $case_name" >&2; exit 1; fi
}
trap on_exit EXIT
mkdir -p "$work/bin"

# --- The stub `az` -------------------------------------------------------------------------------
cat >"$work/bin/az" <<'STUB'
#!/usr/bin/env bash
# Stub Azure CLI: state in $STUB_AZ_STATE, every call appended to $STUB_AZ_STATE/calls.log.
set -uo pipefail
s="$STUB_AZ_STATE"
printf '%s\n' "$*" >>"$s/calls.log"
unexpected() { printf '%s\n' "$*" >>"$s/unexpected.log"; echo "stub az: unexpected call: $*" >&2; exit 2; }
fail() { echo "ERROR: $*" >&2; exit 3; }

words=""
while [[ $# -gt 0 && "$1" != -* ]]; do words="$words $1"; shift; done
words=${words# }
id="" query="" display="" api="" perms="" owner="" cert="" audience=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --id) id="$2"; shift 2 ;;
    --query) query="$2"; shift 2 ;;
    --display-name) display="$2"; shift 2 ;;
    --api) api="$2"; shift 2 ;;
    --api-permissions) shift; while [[ $# -gt 0 && "$1" != -* ]]; do perms="$perms $1"; shift; done ;;
    --owner-object-id) owner="$2"; shift 2 ;;
    --sign-in-audience) audience="$2"; shift 2 ;;
    --cert) if [[ $# -ge 2 && "$2" != -* ]]; then cert="$2"; shift 2; else cert="(flag)"; shift; fi ;;
    -o) [[ "$2" == tsv ]] || unexpected "output $2"; shift 2 ;;
    --append | --only-show-errors) shift ;;
    *) unexpected "option $1" ;;
  esac
done
app="$s/apps/$id"

case "$words" in
  "cloud show") [[ "$query" == name ]] || unexpected "$words $query"; cat "$s/cloud" ;;
  "account show") [[ "$query" == tenantId ]] || unexpected "$words $query"; cat "$s/tenant" ;;
  "ad signed-in-user show") [[ "$query" == id ]] || unexpected "$words $query"; cat "$s/me" ;;
  "ad sp show")
    if [[ "$id" == 00000003-0000-0000-c000-000000000000 ]]; then
      [[ ! -e "$s/graph_unreadable" ]] || fail "Insufficient privileges to complete the operation."
      if [[ "$query" =~ ^appRoles\[\?value==\'([^\']*)\'\]\.id\ \|\ \[0\]$ ]]; then
        awk -F'\t' -v k="${BASH_REMATCH[1]}" '$1 == k { print $2; exit }' "$s/graph_roles"
      elif [[ "$query" =~ ^appRoles\[\?id==\'([^\']*)\'\]\.value\ \|\ \[0\]$ ]]; then
        awk -F'\t' -v k="${BASH_REMATCH[1]}" '$2 == k { print $1; exit }' "$s/graph_roles"
      elif [[ "$query" =~ ^oauth2PermissionScopes\[\?id==\'([^\']*)\'\]\.value\ \|\ \[0\]$ ]]; then
        awk -F'\t' -v k="${BASH_REMATCH[1]}" '$2 == k { print $1; exit }' "$s/graph_scopes"
      else
        unexpected "$words --id $id --query $query"
      fi
    elif [[ -d "$app" && "$query" == id ]]; then
      [[ -e "$app/sp" ]] || fail "Service principal '$id' doesn't exist"
      cat "$app/sp"
    elif [[ "$query" == displayName ]]; then
      [[ -e "$s/sps/$id" ]] || fail "Service principal '$id' doesn't exist"
      cat "$s/sps/$id"
    else
      unexpected "$words --id $id --query $query"
    fi
    ;;
  "ad sp create")
    [[ -d "$app" ]] || fail "app $id not found"
    # Someone else (a co-owner) adds a permission while the script runs.
    if [[ -e "$s/add_during_run" ]]; then cat "$s/add_during_run" >>"$app/perms"; fi
    echo "5p5p5p5p-0000-0000-0000-${id: -12}" >"$app/sp"
    echo '{}'
    ;;
  "ad app list")
    [[ "$query" == "[].[appId,displayName]" && -n "$display" ]] || unexpected "$words $query"
    # Graph's startswith(displayName, ...): a prefix, ignoring case.
    want=$(printf '%s' "$display" | tr '[:upper:]' '[:lower:]')
    for d in "$s"/apps/*/; do
      [[ -d "$d" ]] || continue
      n=$(cat "$d/name")
      ln=$(printf '%s' "$n" | tr '[:upper:]' '[:lower:]')
      [[ "$ln" == "$want"* ]] && printf '%s\t%s\n' "$(basename "$d")" "$n"
    done
    exit 0
    ;;
  "ad app show")
    [[ -d "$app" ]] || fail "Resource '$id' does not exist or one of its queried reference-property objects are not present."
    case "$query" in
      appId) echo "$id" ;;
      displayName) cat "$app/name" ;;
      *) unexpected "$words $query" ;;
    esac
    ;;
  "ad app create")
    [[ -n "$display" && "$audience" == AzureADMyOrg && "$query" == appId ]] || unexpected "$words $display $audience $query"
    n=$(($(cat "$s/next_app") + 1))
    echo "$n" >"$s/next_app"
    new=$(printf 'c0ffee00-0000-4000-8000-%012d' "$n")
    mkdir -p "$s/apps/$new"
    printf '%s' "$display" >"$s/apps/$new/name"
    : >"$s/apps/$new/perms"
    : >"$s/apps/$new/certs"
    if [[ -e "$s/create_without_owner" ]]; then : >"$s/apps/$new/owners"; else cat "$s/me" >"$s/apps/$new/owners"; fi
    echo "$new"
    ;;
  "ad app owner list")
    [[ -d "$app" ]] || fail "app $id not found"
    [[ "$query" == "[].id" ]] || unexpected "$words $query"
    cat "$app/owners"
    ;;
  "ad app owner add")
    [[ -d "$app" ]] || fail "app $id not found"
    [[ ! -e "$s/owner_add_fails" ]] || fail "Insufficient privileges to complete the operation."
    grep -qx "$owner" "$app/owners" || echo "$owner" >>"$app/owners"
    ;;
  "ad app permission list")
    [[ -d "$app" ]] || fail "app $id not found"
    if [[ "$query" == "[].resourceAppId" ]]; then
      cut -f1 "$app/perms" | awk '!seen[$0]++'
    elif [[ "$query" =~ ^\[\?resourceAppId==\'([^\']*)\'\]\.resourceAccess\[\]\.\[id,type\]$ ]]; then
      awk -F'\t' -v r="${BASH_REMATCH[1]}" '$1 == r { print $2 "\t" $3 }' "$app/perms"
    else
      unexpected "$words $query"
    fi
    ;;
  "ad app permission add")
    [[ -d "$app" ]] || fail "app $id not found"
    [[ -n "$api" && -n "$perms" ]] || unexpected "$words without --api/--api-permissions"
    for p in $perms; do
      printf '%s\t%s\t%s\n' "$api" "${p%%=*}" "${p#*=}" >>"$app/perms"
    done
    ;;
  "ad app permission admin-consent")
    [[ -d "$app" ]] || fail "app $id not found"
    [[ ! -e "$s/consent_fails" ]] || fail "Forbidden"
    cp "$app/perms" "$app/consented"
    ;;
  "ad app credential list")
    [[ -d "$app" && "$cert" == "(flag)" && "$query" == "[].customKeyIdentifier" ]] || unexpected "$words $cert $query"
    cat "$app/certs"
    ;;
  "ad app credential reset")
    [[ -d "$app" && "$cert" == @* ]] || unexpected "$words $cert"
    # Graph shows customKeyIdentifier in base64 form (the script must read both forms).
    hex=$(openssl x509 -in "${cert#@}" -noout -fingerprint -sha1 | cut -d= -f2 | tr -d ':')
    esc=$(printf '%s' "$hex" | sed 's/../\\x&/g')
    # shellcheck disable=SC2059
    printf "$esc" | openssl base64 -A >>"$app/certs"
    echo >>"$app/certs"
    ;;
  *) unexpected "$words" ;;
esac
STUB
chmod +x "$work/bin/az"
# Waits of the script (replication retries) take no time here.
printf '#!/bin/sh\nexit 0\n' >"$work/bin/sleep"
chmod +x "$work/bin/sleep"

openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 30 -subj "/CN=register-test" \
  -keyout "$work/app.key.pem" -out "$work/app.crt.pem" 2>/dev/null
cert="$work/app.crt.pem"

# --- Helpers -------------------------------------------------------------------------------------
failures=0
passed=0
case_failed=0

# A fresh tenant: no apps, Graph's roles and one delegated scope.
tenant() {
  state="$work/state.$RANDOM$RANDOM"
  mkdir -p "$state/apps" "$state/sps"
  echo AzureCloud >"$state/cloud"
  echo "$TENANT" >"$state/tenant"
  echo "$ME" >"$state/me"
  echo 0 >"$state/next_app"
  : >"$state/calls.log"
  {
    printf '%s\t%s\n' UserAuthenticationMethod.ReadWrite.All "$ID_BROAD"
    printf '%s\t%s\n' User.Read.All "$ID_USER_READ"
    printf '%s\t%s\n' UserAuthMethod-Phone.ReadWrite.All "$ID_PHONE"
    printf '%s\t%s\n' UserAuthMethod-Email.ReadWrite.All "$ID_EMAIL"
    printf '%s\t%s\n' UserAuthMethod-Phone.Read.All "$ID_PHONE_READ"
    printf '%s\t%s\n' UserAuthMethod-Email.Read.All "$ID_EMAIL_READ"
    printf '%s\t%s\n' UserAuthMethod-TAP.ReadWrite.All "$ID_TAP"
    printf '%s\t%s\n' AuditLog.Read.All "$ID_AUDIT"
    printf '%s\t%s\n' Directory.ReadWrite.All "$ID_DIRECTORY_RW"
    printf '%s\t%s\n' UserAuthenticationMethod.Read.All "$ID_METHODS_READ"
    printf '%s\t%s\n' Policy.Read.AuthenticationMethod "$ID_TAP_POLICY"
  } >"$state/graph_roles"
  printf '%s\t%s\n' User.Read "$ID_SCOPE_USER_READ" >"$state/graph_scopes"
  printf '%s\n' "Office 365 Exchange Online" >"$state/sps/$OTHER_API"
}

# app ID NAME OWNERS... : an existing app registration (no permissions, no certificate).
app() {
  local id="$1" name="$2"
  shift 2
  mkdir -p "$state/apps/$id"
  printf '%s' "$name" >"$state/apps/$id/name"
  : >"$state/apps/$id/owners"
  local o
  for o in "$@"; do echo "$o" >>"$state/apps/$id/owners"; done
  : >"$state/apps/$id/perms"
  : >"$state/apps/$id/certs"
}

# requests ID RESOURCE PERMISSION_ID TYPE : the app requests a permission.
requests() { printf '%s\t%s\t%s\n' "$2" "$3" "$4" >>"$state/apps/$1/perms"; }

run() {
  set +e
  STUB_AZ_STATE="$state" PATH="$work/bin:$PATH" bash "$script" "$@" >"$state/out" 2>"$state/err"
  rc=$?
  set -e
  if [[ -s "$state/unexpected.log" ]]; then
    bad "the script made calls the stub does not know: $(cat "$state/unexpected.log")"
  fi
}

start() {
  case_name="$1"
  case_failed=0
  tenant
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
    echo "  --- az calls" >&2; sed 's/^/  | /' "$state/calls.log" >&2
  fi
}

expect_rc() { [[ "$rc" == "$1" ]] || bad "exit status $rc, expected $1"; }

# Number of az calls whose arguments start with $1.
calls() {
  local n=0 line
  while IFS= read -r line; do
    case "$line" in "$1"*) n=$((n + 1)) ;; esac
  done <"$state/calls.log"
  echo "$n"
}
expect_calls() { # PREFIX COUNT
  local n
  n=$(calls "$1")
  [[ "$n" == "$2" ]] || bad "$n call(s) of 'az $1', expected $2"
}
expect_none_of_the_writes() {
  local w
  for w in "ad app create" "ad app credential reset" "ad app permission add" "ad app owner add" \
    "ad sp create" "ad app permission admin-consent"; do
    expect_calls "$w" 0
  done
}

# The permissions a state file lists (requested or consented), as sorted "resource id type" lines.
perm_lines() { if [[ -f "$1" ]]; then sort "$1" | tr '\t' ' '; fi; }
expected_roles() { # ROLE_ID... -> the same form, Graph application permissions
  local r
  for r in "$@"; do printf '%s %s Role\n' "$GRAPH" "$r"; done | sort
}
expect_requested() { # APP_ID ROLE_ID...
  local id="$1" got want
  shift
  got=$(perm_lines "$state/apps/$id/perms")
  want=$(expected_roles "$@")
  [[ "$got" == "$want" ]] || bad "app $id requests:${NL}$got${NL}expected:${NL}$want"
}
expect_consented() { # APP_ID ROLE_ID...
  local id="$1" got want
  shift
  [[ -f "$state/apps/$id/consented" ]] || { bad "no admin consent for $id"; return; }
  got=$(perm_lines "$state/apps/$id/consented")
  want=$(expected_roles "$@")
  [[ "$got" == "$want" ]] || bad "consent for $id covers:${NL}$got${NL}expected:${NL}$want"
}
expect_no_consent() {
  local d
  for d in "$state"/apps/*/; do
    [[ ! -e "$d/consented" ]] || bad "admin consent was granted for $(basename "$d")"
  done
}
expect_out() { # FILE TEXT : the output holds TEXT
  local text
  text=$(cat "$state/$1")
  case "$text" in *"$2"*) ;; *) bad "$1 lacks: $2" ;; esac
}
expect_not_out() {
  local text
  text=$(cat "$state/$1")
  case "$text" in *"$2"*) bad "$1 holds: $2" ;; *) ;; esac
}
apps_count() {
  local n=0 d
  for d in "$state"/apps/*/; do [[ -d "$d" ]] && n=$((n + 1)); done
  echo "$n"
}
NL=$'\n'
NEW1="c0ffee00-0000-4000-8000-000000000001"
THEIRS="bad0bad0-0000-4000-8000-0000000000aa"
MINE="00c0ffee-0000-4000-8000-0000000000bb"

# --- Cases ---------------------------------------------------------------------------------------

start "fresh tenant: app created, phone and email permissions only, owner checked, consent"
run --cert "$cert"
expect_rc 0
expect_calls "ad app create" 1
[[ "$(cat "$state/apps/$NEW1/name" 2>/dev/null)" == mfa-preload ]] || bad "the new app is not named mfa-preload"
expect_requested "$NEW1" "$ID_PHONE" "$ID_EMAIL"
expect_consented "$NEW1" "$ID_PHONE" "$ID_EMAIL"
expect_calls "ad app owner list --id $NEW1" 1
expect_calls "ad app owner add" 0
expect_calls "ad app credential reset --id $NEW1" 1
expect_calls "ad sp create --id $NEW1" 1
expect_out out "phone           UserAuthMethod-Phone.ReadWrite.All"
expect_out out "email           UserAuthMethod-Email.ReadWrite.All"
expect_not_out out "UserAuthenticationMethod.ReadWrite.All"
expect_out out "clientId: $NEW1"
last=$(tail -n 1 "$state/out")
case "$last" in *'`mfa-preload doctor --credentials '*'` to check the set-up'*) ;; *) bad "last line is not the doctor step: $last" ;; esac
finish

start "--features default-method: only UserAuthenticationMethod.ReadWrite.All"
run --cert "$cert" --features phone,email,default-method
expect_rc 0
expect_requested "$NEW1" "$ID_BROAD"
expect_consented "$NEW1" "$ID_BROAD"
expect_out out "default-method  UserAuthenticationMethod.ReadWrite.All"
expect_out out "phone           UserAuthenticationMethod.ReadWrite.All (default-method)"
finish

start "--features default-method alone: the same single permission"
run --cert "$cert" --features default-method
expect_rc 0
expect_requested "$NEW1" "$ID_BROAD"
expect_consented "$NEW1" "$ID_BROAD"
finish

start "--features phone,export: User.Read.All and reading email, phone covered by its ReadWrite"
run --cert "$cert" --features phone,export
expect_rc 0
expect_requested "$NEW1" "$ID_PHONE" "$ID_USER_READ" "$ID_EMAIL_READ"
expect_consented "$NEW1" "$ID_PHONE" "$ID_USER_READ" "$ID_EMAIL_READ"
finish

start "--features export alone: User.Read.All and both Read permissions"
run --cert "$cert" --features export
expect_rc 0
expect_requested "$NEW1" "$ID_USER_READ" "$ID_PHONE_READ" "$ID_EMAIL_READ"
finish

start "--features tap,readiness,phone: TAP, AuditLog, phone"
run --cert "$cert" --features 'tap, readiness,phone'
expect_rc 0
expect_requested "$NEW1" "$ID_TAP" "$ID_TAP_POLICY" "$ID_AUDIT" "$ID_PHONE"
expect_out out "tap             UserAuthMethod-TAP.ReadWrite.All, Policy.Read.AuthenticationMethod"
expect_out out "readiness       AuditLog.Read.All"
finish

start "--features default-method,export,tap,readiness: the broad one covers methods and TAP"
run --cert "$cert" --features default-method,export,tap,readiness
expect_rc 0
expect_requested "$NEW1" "$ID_BROAD" "$ID_USER_READ" "$ID_TAP_POLICY" "$ID_AUDIT"
finish

start "--features readiness,readiness-per-user: AuditLog, User.Read.All, reading every method"
run --cert "$cert" --features readiness,readiness-per-user
expect_rc 0
expect_requested "$NEW1" "$ID_AUDIT" "$ID_USER_READ" "$ID_METHODS_READ"
expect_out out "readiness-per-user User.Read.All, UserAuthenticationMethod.Read.All"
finish

start "--features readiness-per-user,default-method: the broad one reads the methods"
run --cert "$cert" --features readiness-per-user,default-method
expect_rc 0
expect_requested "$NEW1" "$ID_BROAD" "$ID_USER_READ"
finish

start "an unknown feature: refused before any az call"
run --cert "$cert" --features phone,sms
expect_rc 1
expect_out err "unknown feature 'sms'"
[[ ! -s "$state/calls.log" ]] || bad "az was called"
finish

start "an app named mfa-preload exists and no --app-id: refused, nothing created, no consent"
app "$THEIRS" mfa-preload "$OTHER_USER"
requests "$THEIRS" "$GRAPH" "$ID_DIRECTORY_RW" Role
run --cert "$cert"
expect_rc 1
expect_out err "$THEIRS"
expect_out err "--app-id"
expect_out err "--name"
expect_none_of_the_writes
expect_no_consent
[[ "$(apps_count)" == 1 ]] || bad "an app was created"
finish

start "an app named MFA-Preload (other case) exists: refused as well"
app "$THEIRS" MFA-Preload "$OTHER_USER"
run --cert "$cert"
expect_rc 1
expect_out err "$THEIRS"
expect_none_of_the_writes
finish

start "an app whose name only starts with mfa-preload: not the same name, a new app is created"
app "$THEIRS" mfa-preload-staging "$OTHER_USER"
run --cert "$cert"
expect_rc 0
expect_requested "$NEW1" "$ID_PHONE" "$ID_EMAIL"
expect_consented "$NEW1" "$ID_PHONE" "$ID_EMAIL"
[[ ! -e "$state/apps/$THEIRS/consented" ]] || bad "the other app got consent"
expect_calls "ad app credential reset --id $THEIRS" 0
finish

start "--app-id of an app the admin does not own: refused, no consent"
app "$THEIRS" mfa-preload "$OTHER_USER"
run --cert "$cert" --app-id "$THEIRS"
expect_rc 1
expect_out err "not an owner"
expect_out err "$OTHER_USER"
expect_none_of_the_writes
expect_no_consent
finish

start "--app-id of an app without owners: refused, no consent"
app "$THEIRS" mfa-preload
run --cert "$cert" --app-id "$THEIRS"
expect_rc 1
expect_out err "not an owner"
expect_none_of_the_writes
expect_no_consent
finish

start "--app-id of an owned app that also requests Directory.ReadWrite.All: refused, no consent"
app "$MINE" mfa-preload "$ME"
requests "$MINE" "$GRAPH" "$ID_PHONE" Role
requests "$MINE" "$GRAPH" "$ID_EMAIL" Role
requests "$MINE" "$GRAPH" "$ID_DIRECTORY_RW" Role
run --cert "$cert" --app-id "$MINE"
expect_rc 1
expect_out err "Directory.ReadWrite.All"
expect_none_of_the_writes
expect_no_consent
finish

start "--app-id of an owned app that requests a delegated scope: refused, no consent"
app "$MINE" mfa-preload "$ME"
requests "$MINE" "$GRAPH" "$ID_PHONE" Role
requests "$MINE" "$GRAPH" "$ID_SCOPE_USER_READ" Scope
run --cert "$cert" --app-id "$MINE"
expect_rc 1
expect_out err "delegated permission User.Read"
expect_none_of_the_writes
expect_no_consent
finish

start "--app-id of an owned app that requests another API: refused, no consent"
app "$MINE" mfa-preload "$ME"
requests "$MINE" "$GRAPH" "$ID_PHONE" Role
requests "$MINE" "$OTHER_API" "dc890d15-9560-4a4c-9b7f-a736ec74ec40" Role
run --cert "$cert" --app-id "$MINE"
expect_rc 1
expect_out err "API $OTHER_API (Office 365 Exchange Online)"
expect_none_of_the_writes
expect_no_consent
finish

start "--app-id of an owned app with the broad permission, features phone,email: refused"
app "$MINE" mfa-preload "$ME"
requests "$MINE" "$GRAPH" "$ID_BROAD" Role
run --cert "$cert" --app-id "$MINE"
expect_rc 1
expect_out err "UserAuthenticationMethod.ReadWrite.All"
expect_none_of_the_writes
expect_no_consent
finish

start "--app-id of an owned app missing the email permission: it is added, then consent"
app "$MINE" "mfa-preload prod" "$OTHER_USER" "$ME"
requests "$MINE" "$GRAPH" "$ID_PHONE" Role
run --cert "$cert" --app-id "$MINE"
expect_rc 0
expect_calls "ad app create" 0
expect_calls "ad app permission add --id $MINE --api $GRAPH --api-permissions $ID_EMAIL=Role" 1
expect_calls "ad app permission add" 1
expect_requested "$MINE" "$ID_PHONE" "$ID_EMAIL"
expect_consented "$MINE" "$ID_PHONE" "$ID_EMAIL"
expect_out err "other owners"
expect_out err "$OTHER_USER"
finish

start "run again with --app-id of the app it created: nothing added, certificate kept, consent"
run --cert "$cert"
expect_rc 0
: >"$state/calls.log"
rm -f "$state/apps/$NEW1/consented"
run --cert "$cert" --app-id "$NEW1"
expect_rc 0
expect_calls "ad app create" 0
expect_calls "ad app permission add" 0
expect_calls "ad app credential reset" 0
expect_calls "ad sp create" 0
expect_out out "Certificate"
expect_out out "is already on the app"
expect_consented "$NEW1" "$ID_PHONE" "$ID_EMAIL"
finish

start "our certificate listed first among many: seen, not uploaded again (no grep -q on a pipe)"
app "$MINE" mfa-preload "$ME"
requests "$MINE" "$GRAPH" "$ID_PHONE" Role
requests "$MINE" "$GRAPH" "$ID_EMAIL" Role
# Ours in hex form, then 300 others: a `... | grep -q` would stop reading at the first line, and
# the writer's SIGPIPE would fail the pipeline under pipefail.
openssl x509 -in "$cert" -noout -fingerprint -sha1 | cut -d= -f2 | tr -d ':' >"$state/apps/$MINE/certs"
for i in $(seq 1 300); do printf '%040d\n' "$i" >>"$state/apps/$MINE/certs"; done
run --cert "$cert" --app-id "$MINE"
expect_rc 0
expect_calls "ad app credential reset" 0
expect_out out "is already on the app"
finish

start "--app-id that does not exist: refused"
run --cert "$cert" --app-id "$MINE"
expect_rc 1
expect_out err "no app registration with id $MINE"
expect_none_of_the_writes
finish

start "a new app az does not make the admin owner of: the admin is added, then checked"
touch "$state/create_without_owner"
run --cert "$cert"
expect_rc 0
expect_calls "ad app owner add --id $NEW1 --owner-object-id $ME" 1
expect_consented "$NEW1" "$ID_PHONE" "$ID_EMAIL"
finish

start "a new app whose owner cannot be set: refused, no certificate, no permission, no consent"
touch "$state/create_without_owner" "$state/owner_add_fails"
run --cert "$cert"
expect_rc 1
expect_out err "not listed as an owner of the new app $NEW1"
expect_calls "ad app credential reset" 0
expect_calls "ad app permission add" 0
expect_calls "ad app permission admin-consent" 0
finish

start "a permission the tenant does not publish: a clear error, nothing created"
grep -v '^UserAuthMethod-TAP' "$state/graph_roles" >"$state/graph_roles.new"
mv "$state/graph_roles.new" "$state/graph_roles"
run --cert "$cert" --features phone,tap
expect_rc 1
expect_out err "publishes no application permission UserAuthMethod-TAP.ReadWrite.All"
expect_none_of_the_writes
finish

start "Graph's service principal unreadable: built-in ids for the known permissions"
touch "$state/graph_unreadable"
run --cert "$cert" --features default-method,export
expect_rc 0
expect_requested "$NEW1" "$ID_BROAD" "$ID_USER_READ"
expect_out err "built-in id"
finish

start "Graph's service principal unreadable and a permission without a built-in id: error"
touch "$state/graph_unreadable"
run --cert "$cert"
expect_rc 1
expect_out err "UserAuthMethod-Phone.ReadWrite.All"
expect_none_of_the_writes
finish

start "a tenant that publishes its own id for a permission: that id is used"
printf '%s\t%s\n' UserAuthenticationMethod.ReadWrite.All "bbbbbbb2-0000-4000-8000-000000000001" >"$state/graph_roles.new"
grep -v '^UserAuthenticationMethod.ReadWrite.All' "$state/graph_roles" >>"$state/graph_roles.new"
mv "$state/graph_roles.new" "$state/graph_roles"
run --cert "$cert" --features default-method
expect_rc 0
expect_requested "$NEW1" "bbbbbbb2-0000-4000-8000-000000000001"
finish

start "a permission added to the app while the script runs: refused before consent"
printf '%s\t%s\t%s\n' "$GRAPH" "$ID_DIRECTORY_RW" Role >"$state/add_during_run"
run --cert "$cert"
expect_rc 1
expect_out err "Directory.ReadWrite.All"
expect_calls "ad app permission admin-consent" 0
expect_no_consent
finish

start "consent fails: everything else in place, exit 3 with instructions"
touch "$state/consent_fails"
run --cert "$cert"
expect_rc 3
expect_requested "$NEW1" "$ID_PHONE" "$ID_EMAIL"
expect_no_consent
expect_out err "az ad app permission admin-consent --id $NEW1"
finish

start "--no-consent: no consent call, how to grant it printed"
run --cert "$cert" --no-consent
expect_rc 0
expect_calls "ad app permission admin-consent" 0
expect_out out "az ad app permission admin-consent --id $NEW1"
finish

start "a private key passed as the certificate: refused before any az call"
run --cert "$work/app.key.pem"
expect_rc 1
expect_out err "contains a private key"
[[ ! -s "$state/calls.log" ]] || bad "az was called"
finish

echo
echo "register-entra-app.sh: $passed passed, $failures failed"
completed=1
[[ $failures -eq 0 ]]

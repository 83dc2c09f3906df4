#!/usr/bin/env bash
# Registers the Entra ID application the worker signs in as: app registration, certificate
# credential, the Microsoft Graph application permissions the chosen features need (no more),
# service principal and admin consent. Step 2 of 3 (after create-certificate.sh, before
# store-secret.sh). Run it again with --app-id to renew the certificate or change the features.
#
# Admin consent grants, tenant-wide, everything the app requests. So an app is reused only when
# named by --app-id, when the signed-in administrator owns it and when it requests nothing beyond
# what the features need; it is never picked by its display name, which anyone may give an app.
# Runs on bash 3.2 (macOS) and later: no associative arrays, no empty array expansions.
set -euo pipefail

readonly GRAPH_APP_ID="00000003-0000-0000-c000-000000000000"
readonly BROAD="UserAuthenticationMethod.ReadWrite.All"
readonly GUID_RE='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
readonly NL=$'\n'

usage() {
  cat <<'USAGE'
Usage: infra/register-entra-app.sh --cert CERT.pem [options]

Creates the app registration NAME in the tenant `az` is signed in to (or, with --app-id, checks
and reuses an app you own), then:
  1. uploads the certificate CERT.pem as a credential (appended: existing ones are kept),
  2. requests the Microsoft Graph application permissions the features need, and only those,
  3. creates the app's service principal (enterprise application),
  4. grants admin consent (needs Global Administrator or Privileged Role Administrator),
and prints tenantId and clientId for store-secret.sh.

Options:
  --cert FILE        PEM (or DER) certificate from create-certificate.sh (required)
  --features LIST    what the app will do, comma-separated (default: phone,email):
                       phone           phone methods, SMS sign-in   UserAuthMethod-Phone.ReadWrite.All
                       email           the SSPR email method        UserAuthMethod-Email.ReadWrite.All
                       default-method  the DefaultMethod column     UserAuthenticationMethod.ReadWrite.All
                                       (no narrower permission exists; it covers phone, email and
                                       the passes of tap, which then add nothing
                                       but the policy read)
                       export          `mfa-preload export` of all users: User.Read.All, plus
                                       UserAuthMethod-Phone.Read.All / -Email.Read.All unless phone /
                                       email (or default-method) already allow reading them
                       tap             Temporary Access Pass        UserAuthMethod-TAP.ReadWrite.All and
                                       Policy.Read.AuthenticationMethod (the pass policy, read once
                                       per run)
                       readiness       registration report          AuditLog.Read.All
                       readiness-per-user  `mfa-preload readiness` user by user (no report
                                       permission, or --source per-user): User.Read.All and
                                       UserAuthenticationMethod.Read.All, unless export /
                                       default-method already allow them
  --app-id ID        reuse this app registration (its application/client id). You must be one of
                     its owners, and it must request no permission beyond what --features needs;
                     permissions it lacks are added. Without --app-id a new app is created, and the
                     script refuses when an app named NAME already exists.
  --name NAME        display name of a new app (default: mfa-preload)
  --cloud CLOUD      AzureCloud (default), AzureUSGovernment or AzureChinaCloud; must match
                     `az cloud show` (switch with: az cloud set --name CLOUD && az login)
  --no-consent       skip step 4 and print how to grant consent instead
  -h, --help         this text

Sign in first with `az login` as an administrator of the tenant. Needs: az, openssl.
Exit codes: 0 done, 1 refused or failed (nothing consented), 3 all done but admin consent.
USAGE
}

die() { echo "error: $*" >&2; exit 1; }

cert=""
name="mfa-preload"
app_id_arg=""
features="phone,email"
cloud="AzureCloud"
consent=1

while [[ $# -gt 0 ]]; do
  case "$1" in
    --cert) [[ $# -ge 2 ]] || die "--cert needs a file"; cert="$2"; shift 2 ;;
    --name) [[ $# -ge 2 ]] || die "--name needs a name"; name="$2"; shift 2 ;;
    --app-id) [[ $# -ge 2 ]] || die "--app-id needs an application (client) id"; app_id_arg="$2"; shift 2 ;;
    --features) [[ $# -ge 2 ]] || die "--features needs a list, e.g. phone,email"; features="$2"; shift 2 ;;
    --cloud) [[ $# -ge 2 ]] || die "--cloud needs a cloud name"; cloud="$2"; shift 2 ;;
    --no-consent) consent=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

for tool in az openssl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required (Azure CLI: https://learn.microsoft.com/cli/azure/install-azure-cli)"
done
[[ -n "$cert" ]] || { usage >&2; die "--cert is required"; }
[[ -r "$cert" ]] || die "cannot read the certificate file: $cert"
# The name goes into an OData filter of `az ad app list`: no quotes.
[[ "$name" =~ ^[A-Za-z0-9][A-Za-z0-9\ ._()-]{0,119}$ ]] ||
  die "--name may hold letters, digits, spaces and ._()- (at most 120), not '$name'"
if [[ -n "$app_id_arg" ]]; then
  [[ "$app_id_arg" =~ $GUID_RE ]] || die "--app-id must be the application (client) id, a GUID, not '$app_id_arg'"
fi

case "$cloud" in
  AzureCloud) graph_cloud="global"; portal="https://portal.azure.com" ;;
  AzureUSGovernment) graph_cloud="usgov (or usgovdod for a DoD tenant)"; portal="https://portal.azure.us" ;;
  AzureChinaCloud) graph_cloud="china"; portal="https://portal.azure.cn" ;;
  *) die "--cloud must be AzureCloud, AzureUSGovernment or AzureChinaCloud, not '$cloud'" ;;
esac

# Whether the newline-separated list $1 holds the line $2 (no pipeline: nothing can misfire).
has_line() {
  case "$NL$1$NL" in
    *"$NL$2$NL"*) return 0 ;;
    *) return 1 ;;
  esac
}
lower() { printf '%s' "$1" | tr '[:upper:]' '[:lower:]'; }

# --- Features -> permissions ----------------------------------------------------------------------
want_phone=0 want_email=0 want_default=0 want_export=0 want_tap=0 want_readiness=0 want_per_user=0
while IFS= read -r feature; do
  feature=${feature//[[:space:]]/}
  case "$feature" in
    phone) want_phone=1 ;;
    email) want_email=1 ;;
    default-method) want_default=1 ;;
    export) want_export=1 ;;
    tap) want_tap=1 ;;
    readiness) want_readiness=1 ;;
    readiness-per-user) want_per_user=1 ;;
    "") ;;
    *) die "unknown feature '$feature' in --features (known: phone, email, default-method, export, tap, readiness, readiness-per-user)" ;;
  esac
done <<<"$(printf '%s' "$features" | tr ',' '\n')"
((want_phone + want_email + want_default + want_export + want_tap + want_readiness + want_per_user > 0)) ||
  die "--features names no feature (e.g. --features phone,email)"

needed=""     # permission names, one a line, in the order first needed
by_feature="" # "feature<TAB>what it got", one a line
need() { has_line "$needed" "$1" || needed="${needed:+$needed$NL}$1"; }
got() { by_feature="${by_feature:+$by_feature$NL}$1"$'\t'"$2"; }

if ((want_default)); then need "$BROAD"; fi
if ((want_phone)); then
  if ((want_default)); then got phone "$BROAD (default-method)"; else
    need UserAuthMethod-Phone.ReadWrite.All; got phone UserAuthMethod-Phone.ReadWrite.All
  fi
fi
if ((want_email)); then
  if ((want_default)); then got email "$BROAD (default-method)"; else
    need UserAuthMethod-Email.ReadWrite.All; got email UserAuthMethod-Email.ReadWrite.All
  fi
fi
if ((want_default)); then got default-method "$BROAD (covers phone, email and the passes of tap too)"; fi
if ((want_export)); then
  need User.Read.All
  export_got="User.Read.All"
  if ((want_default)); then
    export_got="$export_got; reading methods: $BROAD (default-method)"
  else
    if ((want_phone)); then
      export_got="$export_got; reading phones: UserAuthMethod-Phone.ReadWrite.All (phone)"
    else
      need UserAuthMethod-Phone.Read.All; export_got="$export_got, UserAuthMethod-Phone.Read.All"
    fi
    if ((want_email)); then
      export_got="$export_got; reading email: UserAuthMethod-Email.ReadWrite.All (email)"
    else
      need UserAuthMethod-Email.Read.All; export_got="$export_got, UserAuthMethod-Email.Read.All"
    fi
  fi
  got export "$export_got"
fi
if ((want_tap)); then
  # Reading the tenant's Temporary Access Pass policy once per run, instead of learning it from
  # each user's answer (https://learn.microsoft.com/en-us/graph/api/temporaryaccesspassauthenticationmethodconfiguration-get).
  if ((want_default)); then got tap "$BROAD (default-method), Policy.Read.AuthenticationMethod"; else
    need UserAuthMethod-TAP.ReadWrite.All
    got tap "UserAuthMethod-TAP.ReadWrite.All, Policy.Read.AuthenticationMethod"
  fi
  need Policy.Read.AuthenticationMethod
fi
if ((want_readiness)); then need AuditLog.Read.All; got readiness AuditLog.Read.All; fi
# Listing every method of a user: UserAuthenticationMethod.Read.All is the least privileged
# application permission (https://learn.microsoft.com/en-us/graph/api/authentication-list-methods);
# the method-specific ones (UserAuthMethod-Phone.*, ...) do not allow it.
if ((want_per_user)); then
  need User.Read.All
  per_user_got="User.Read.All"
  if ((want_export)); then per_user_got="User.Read.All (export)"; fi
  if ((want_default)); then
    per_user_got="$per_user_got; reading methods: $BROAD (default-method)"
  else
    need UserAuthenticationMethod.Read.All
    per_user_got="$per_user_got, UserAuthenticationMethod.Read.All"
  fi
  got readiness-per-user "$per_user_got"
fi

# --- The certificate: it must parse and hold no private key (only the public part goes to Entra).
if grep -q "PRIVATE KEY" "$cert"; then
  die "$cert contains a private key; pass the certificate (app.crt.pem), not the key"
fi
if ! thumbprint=$(openssl x509 -in "$cert" -noout -fingerprint -sha1 2>/dev/null ||
  openssl x509 -inform DER -in "$cert" -noout -fingerprint -sha1 2>/dev/null); then
  die "$cert is not a PEM or DER X.509 certificate"
fi
thumbprint=${thumbprint#*=}
thumbprint=${thumbprint//:/}

current_cloud=$(az cloud show --query name -o tsv 2>/dev/null) || die "cannot read the Azure CLI cloud (az cloud show)"
[[ "$current_cloud" == "$cloud" ]] ||
  die "the Azure CLI is set to cloud '$current_cloud', not '$cloud'. Run: az cloud set --name $cloud && az login"
tenant_id=$(az account show --query tenantId -o tsv 2>/dev/null) || die "not signed in: run az login (as a tenant administrator)"
[[ -n "$tenant_id" ]] || die "not signed in: run az login (as a tenant administrator)"
me=$(az ad signed-in-user show --query id -o tsv 2>/dev/null) || me=""
[[ "$me" =~ $GUID_RE ]] ||
  die "cannot read the signed-in user (az ad signed-in-user show): sign in as an administrator with az login, not as a service principal"
echo "Tenant $tenant_id ($cloud), signed in as $me"

# --- 0. Each permission's app-role id, as the tenant's Microsoft Graph service principal publishes it.
# Built-in ids only where they are certain (they are the same in every cloud), for when the service
# principal cannot be read; a permission the service principal does not list is an error.
known_role_id() {
  case "$1" in
    UserAuthenticationMethod.ReadWrite.All) echo 50483e42-d915-4231-9639-7fdb7fd190e5 ;;
    User.Read.All) echo df021288-bdef-4463-88db-98f22de89214 ;;
    *) return 1 ;;
  esac
}
needed_ids="" # "id<TAB>name", one a line
while IFS= read -r perm; do
  if published=$(az ad sp show --id "$GRAPH_APP_ID" --query "appRoles[?value=='$perm'].id | [0]" -o tsv 2>/dev/null); then
    [[ "$published" =~ $GUID_RE ]] ||
      die "this tenant's Microsoft Graph service principal publishes no application permission $perm (needed for --features $features)"
    role_id=$(lower "$published")
  elif role_id=$(known_role_id "$perm"); then
    echo "note: cannot read Microsoft Graph's service principal; using the built-in id of $perm ($role_id)" >&2
  else
    die "cannot read Microsoft Graph's service principal (az ad sp show --id $GRAPH_APP_ID) to find the id of $perm"
  fi
  needed_ids="${needed_ids:+$needed_ids$NL}$role_id"$'\t'"$perm"
done <<<"$needed"
needed_id_list=$(printf '%s\n' "$needed_ids" | cut -f1)

# A name for a permission id of Graph, for messages (the id itself when Graph does not say).
graph_permission_name() { # ID appRoles|oauth2PermissionScopes
  local n=""
  if [[ "$1" =~ $GUID_RE ]]; then
    n=$(az ad sp show --id "$GRAPH_APP_ID" --query "$2[?id=='$1'].value | [0]" -o tsv 2>/dev/null) || n=""
  fi
  printf '%s' "${n:-$1}"
}

# What the app requests, against the set: sets `unexpected` (lines to show) and `missing_ids`.
read_requested() {
  local resources access res rid rtype what
  unexpected=""
  missing_ids=""
  resources=$(az ad app permission list --id "$app_id" --query "[].resourceAppId" -o tsv) ||
    die "cannot read the permissions of app $app_id (az ad app permission list)"
  access=$(az ad app permission list --id "$app_id" \
    --query "[?resourceAppId=='$GRAPH_APP_ID'].resourceAccess[].[id,type]" -o tsv) ||
    die "cannot read the permissions of app $app_id (az ad app permission list)"
  while IFS= read -r res; do
    res=$(lower "$res")
    [[ -n "$res" && "$res" != "$GRAPH_APP_ID" ]] || continue
    what=""
    if [[ "$res" =~ $GUID_RE ]]; then
      what=$(az ad sp show --id "$res" --query displayName -o tsv 2>/dev/null) || what=""
    fi
    unexpected="${unexpected:+$unexpected$NL}  API $res${what:+ ($what)}: any permission (--api $res)"
  done <<<"$resources"
  local present=""
  while IFS=$'\t' read -r rid rtype; do
    [[ -n "$rid" ]] || continue
    rid=$(lower "$rid")
    if [[ "$rtype" == "Role" ]] && has_line "$needed_id_list" "$rid"; then
      present="${present:+$present$NL}$rid"
    elif [[ "$rtype" == "Role" ]]; then
      unexpected="${unexpected:+$unexpected$NL}  Microsoft Graph application permission $(graph_permission_name "$rid" appRoles) ($rid=Role)"
    else
      unexpected="${unexpected:+$unexpected$NL}  Microsoft Graph delegated permission $(graph_permission_name "$rid" oauth2PermissionScopes) ($rid=$rtype)"
    fi
  done <<<"$access"
  while IFS= read -r rid; do
    has_line "$present" "$rid" || missing_ids="${missing_ids:+$missing_ids$NL}$rid"
  done <<<"$needed_id_list"
}

refuse_unexpected() {
  cat >&2 <<EOF
error: app $app_id requests permissions that --features $features does not need:
$unexpected
Admin consent would grant all of them tenant-wide, so nothing was changed and nothing consented.
If the app is yours and they are not needed, remove them and run this again:
  az ad app permission delete --id $app_id --api API_ID [--api-permissions PERMISSION_ID]
(a consent already granted stays on the service principal: revoke it under Enterprise
applications > the app > Permissions). Or pass --features with everything the app is for, or
--name for a new app.
EOF
  exit 1
}

owners_of() {
  az ad app owner list --id "$1" --query "[].id" -o tsv ||
    die "cannot read the owners of app $1 (az ad app owner list)"
}

# --- 1. App registration: reused only when named by --app-id, created otherwise.
if [[ -n "$app_id_arg" ]]; then
  app_id=$(az ad app show --id "$app_id_arg" --query appId -o tsv 2>/dev/null) || app_id=""
  [[ "$app_id" =~ $GUID_RE ]] || die "no app registration with id $app_id_arg in tenant $tenant_id"
  app_name=$(az ad app show --id "$app_id" --query displayName -o tsv) || app_name="$app_id"
  owners=$(owners_of "$app_id")
  if ! has_line "$owners" "$me"; then
    die "you ($me) are not an owner of app '$app_name' ($app_id); its owners: $(printf '%s' "${owners:-none}" | tr '\n' ' ')
Reuse only an app of your own. If it is yours, have an owner add you
(az ad app owner add --id $app_id --owner-object-id $me); else pass --name for a new app instead of --app-id"
  fi
  others=""
  while IFS= read -r o; do
    if [[ -n "$o" && "$o" != "$me" ]]; then others="$others $o"; fi
  done <<<"$owners"
  [[ -z "$others" ]] || echo "note: app '$app_name' has other owners, who can also change it and add credentials:$others" >&2
  read_requested
  [[ -z "$unexpected" ]] || refuse_unexpected
  echo "Reusing app registration '$app_name' (clientId $app_id): you own it, it requests nothing else"
else
  listed=$(az ad app list --display-name "$name" --query "[].[appId,displayName]" -o tsv) ||
    die "cannot list app registrations (az ad app list)"
  # `az ad app list --display-name` matches the beginning of the name: compare whole names here.
  same=""
  while IFS=$'\t' read -r lid lname; do
    [[ -n "$lid" ]] || continue
    if [[ "$(lower "$lname")" == "$(lower "$name")" ]]; then same="$same $lid"; fi
  done <<<"$listed"
  if [[ -n "$same" ]]; then
    die "an app named '$name' already exists (clientId:$same). It is not reused on its name alone:
anyone who may register apps can create one of that name. Pass --app-id CLIENT_ID if it is yours,
or --name NAME for a new app"
  fi
  app_id=$(az ad app create --display-name "$name" --sign-in-audience AzureADMyOrg --query appId -o tsv) ||
    die "az ad app create failed"
  [[ "$app_id" =~ $GUID_RE ]] || die "az ad app create returned no appId"
  app_name="$name"
  echo "Created app registration '$name' (clientId $app_id)"
  # Graph makes the creator an owner; check (it can take a moment to show), else add.
  owned=0
  for attempt in 1 2 3; do
    if has_line "$(owners_of "$app_id")" "$me"; then owned=1; break; fi
    if [[ $attempt -eq 1 ]]; then
      az ad app owner add --id "$app_id" --owner-object-id "$me" --only-show-errors >/dev/null 2>&1 || true
    fi
    [[ $attempt -lt 3 ]] && sleep 5
  done
  [[ $owned -eq 1 ]] || die "you ($me) are not listed as an owner of the new app $app_id; add yourself
(az ad app owner add --id $app_id --owner-object-id $me) and run this again with --app-id $app_id"
  echo "Owner: $me"
  read_requested
  [[ -z "$unexpected" ]] || refuse_unexpected
fi

# --- 2. Certificate credential (appended, so a renewal keeps the old certificate until removed).
# Graph reports a certificate's customKeyIdentifier as the hex thumbprint or as its base64 form.
as_hex_thumbprint() {
  local id
  while IFS= read -r id; do
    if [[ "$id" =~ ^[0-9A-Fa-f]{40}$ ]]; then
      printf '%s\n' "$id" | tr '[:lower:]' '[:upper:]'
    elif [[ -n "$id" ]]; then
      { printf '%s' "$id" | openssl base64 -d -A 2>/dev/null || true; } | od -An -tx1 | tr -d ' \n' | tr '[:lower:]' '[:upper:]'
      echo
    fi
  done
}
key_ids=$(az ad app credential list --id "$app_id" --cert --query "[].customKeyIdentifier" -o tsv) ||
  die "cannot read the certificates of app $app_id (az ad app credential list)"
if has_line "$(printf '%s\n' "$key_ids" | as_hex_thumbprint)" "$thumbprint"; then
  echo "Certificate $thumbprint is already on the app"
else
  az ad app credential reset --id "$app_id" --cert "@$cert" --append --only-show-errors >/dev/null
  echo "Uploaded certificate $thumbprint"
fi

# --- 3. The application permissions on Microsoft Graph that are missing.
while IFS=$'\t' read -r role_id perm; do
  if has_line "$missing_ids" "$role_id"; then
    az ad app permission add --id "$app_id" --api "$GRAPH_APP_ID" \
      --api-permissions "$role_id=Role" --only-show-errors >/dev/null
    echo "Requested application permission $perm ($role_id)"
  else
    echo "Permission $perm is already requested"
  fi
done <<<"$needed_ids"

# --- 4. Service principal.
if az ad sp show --id "$app_id" --query id -o tsv >/dev/null 2>&1; then
  echo "Service principal exists"
else
  az ad sp create --id "$app_id" --only-show-errors >/dev/null
  echo "Created service principal"
fi

consent_help() {
  cat <<EOF
Grant admin consent (a Global Administrator or Privileged Role Administrator), either:
  az ad app permission admin-consent --id $app_id
or in the portal ($portal): Microsoft Entra ID > App registrations > $app_name > API permissions >
  "Grant admin consent for <tenant>", and check that each permission below shows "Granted".
EOF
}

# --- 5. Admin consent, only for what was checked: read the requests once more just before.
consent_failed=0
if [[ $consent -eq 1 ]]; then
  read_requested
  [[ -z "$unexpected" ]] || refuse_unexpected
  # A new service principal can take a while to replicate: retry a few times.
  granted=0
  for attempt in 1 2 3 4 5 6; do
    if az ad app permission admin-consent --id "$app_id" --only-show-errors >/dev/null 2>&1; then
      granted=1
      break
    fi
    [[ $attempt -lt 6 ]] && sleep 10
  done
  if [[ $granted -eq 1 ]]; then
    echo "Admin consent granted for: $(printf '%s' "$needed" | tr '\n' ' ')"
  else
    consent_failed=1
    echo "warning: admin consent failed (missing role, or the service principal is not replicated yet)" >&2
    consent_help >&2
  fi
else
  consent_help
fi

echo
echo "Permissions (Microsoft Graph, application) by feature:"
while IFS=$'\t' read -r feature what; do
  printf '  %-15s %s\n' "$feature" "$what"
done <<<"$by_feature"
key_file="$(dirname "$cert")/app.key.pem"
cat <<EOF

tenantId: $tenant_id
clientId: $app_id
Template parameter GraphCloud: $graph_cloud

Next: infra/store-secret.sh --tenant-id $tenant_id --client-id $app_id \\
        --cert $cert --key $key_file
Last, check the credentials, the token, its roles and one user. FILE is the secret's JSON (or
give --tenant-id $tenant_id --client-id $app_id --certificate $cert
--private-key $key_file in place of --credentials FILE):
run \`mfa-preload doctor --credentials FILE --file users.csv --user UPN\` to check the set-up.
EOF
if [[ $consent_failed -eq 1 ]]; then
  echo "error: everything is in place except admin consent (see above)" >&2
  exit 3
fi

#!/usr/bin/env bash
# Registers the Entra ID application the worker signs in as: app registration, certificate
# credential, the Microsoft Graph application permission UserAuthenticationMethod.ReadWrite.All,
# service principal and admin consent. Step 2 of 3 (after create-certificate.sh, before
# store-secret.sh). Run it again safely: it reuses an app of the same name.
set -euo pipefail

# Microsoft Graph's application id and the id of its app role UserAuthenticationMethod.ReadWrite.All
# (the same in every Microsoft cloud; checked against the tenant's Graph service principal below).
readonly GRAPH_APP_ID="00000003-0000-0000-c000-000000000000"
readonly PERMISSION_NAME="UserAuthenticationMethod.ReadWrite.All"
readonly PERMISSION_ID="50483e42-d915-4231-9639-7fdb7fd190e5"

usage() {
  cat <<'USAGE'
Usage: infra/register-entra-app.sh --cert CERT.pem [options]

Creates (or reuses) the app registration NAME in the tenant `az` is signed in to, then:
  1. uploads the certificate CERT.pem as a credential (appended: existing ones are kept),
  2. adds the Microsoft Graph application permission UserAuthenticationMethod.ReadWrite.All,
  3. creates the app's service principal (enterprise application),
  4. grants admin consent (needs Global Administrator or Privileged Role Administrator),
and prints tenantId and clientId for store-secret.sh.

Options:
  --cert FILE        PEM (or DER) certificate from create-certificate.sh (required)
  --name NAME        app display name (default: mfa-preload)
  --cloud CLOUD      AzureCloud (default), AzureUSGovernment or AzureChinaCloud; must match
                     `az cloud show` (switch with: az cloud set --name CLOUD && az login)
  --no-consent       skip step 4 and print how to grant consent instead
  -h, --help         this text

Sign in first with `az login` as an administrator of the tenant. Needs: az, openssl.
USAGE
}

die() { echo "error: $*" >&2; exit 1; }

cert=""
name="mfa-preload"
cloud="AzureCloud"
consent=1

while [[ $# -gt 0 ]]; do
  case "$1" in
    --cert) [[ $# -ge 2 ]] || die "--cert needs a file"; cert="$2"; shift 2 ;;
    --name) [[ $# -ge 2 ]] || die "--name needs a name"; name="$2"; shift 2 ;;
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
[[ -n "$name" ]] || die "--name must not be empty"

case "$cloud" in
  AzureCloud) graph_cloud="global"; portal="https://portal.azure.com" ;;
  AzureUSGovernment) graph_cloud="usgov (or usgovdod for a DoD tenant)"; portal="https://portal.azure.us" ;;
  AzureChinaCloud) graph_cloud="china"; portal="https://portal.azure.cn" ;;
  *) die "--cloud must be AzureCloud, AzureUSGovernment or AzureChinaCloud, not '$cloud'" ;;
esac

# The certificate must parse and hold no private key (only the public part goes to Entra).
if grep -q "PRIVATE KEY" "$cert"; then
  die "$cert contains a private key; pass the certificate (app.crt.pem), not the key"
fi
if ! thumbprint=$(openssl x509 -in "$cert" -noout -fingerprint -sha1 2>/dev/null ||
  openssl x509 -inform DER -in "$cert" -noout -fingerprint -sha1 2>/dev/null); then
  die "$cert is not a PEM or DER X.509 certificate"
fi
thumbprint=$(printf '%s' "$thumbprint" | cut -d= -f2 | tr -d ':')

current_cloud=$(az cloud show --query name -o tsv 2>/dev/null) || die "cannot read the Azure CLI cloud (az cloud show)"
[[ "$current_cloud" == "$cloud" ]] ||
  die "the Azure CLI is set to cloud '$current_cloud', not '$cloud'. Run: az cloud set --name $cloud && az login"
tenant_id=$(az account show --query tenantId -o tsv 2>/dev/null) || die "not signed in: run az login (as a tenant administrator)"
[[ -n "$tenant_id" ]] || die "not signed in: run az login (as a tenant administrator)"
echo "Tenant $tenant_id ($cloud)"

# 0. The permission id, as the tenant's Microsoft Graph service principal publishes it.
published_id=$(az ad sp show --id "$GRAPH_APP_ID" \
  --query "appRoles[?value=='$PERMISSION_NAME'].id | [0]" -o tsv 2>/dev/null || true)
permission_id="$PERMISSION_ID"
if [[ -n "$published_id" && "$published_id" != "$PERMISSION_ID" ]]; then
  echo "note: this cloud publishes $PERMISSION_NAME as $published_id; using that id" >&2
  permission_id="$published_id"
fi

# 1. App registration (reused when exactly one app has this display name).
existing=$(az ad app list --display-name "$name" --query "[].appId" -o tsv)
count=$(printf '%s' "$existing" | grep -c . || true)
if [[ "$count" -gt 1 ]]; then
  die "$count apps are named '$name'; pass --name with a unique name"
elif [[ "$count" -eq 1 ]]; then
  app_id="$existing"
  echo "Reusing app registration '$name' (clientId $app_id)"
else
  app_id=$(az ad app create --display-name "$name" --sign-in-audience AzureADMyOrg --query appId -o tsv)
  [[ -n "$app_id" ]] || die "az ad app create returned no appId"
  echo "Created app registration '$name' (clientId $app_id)"
fi

# 2. Certificate credential (appended, so a renewal keeps the old certificate until removed).
# Graph reports a certificate's customKeyIdentifier as the hex thumbprint or as its base64 form.
as_hex_thumbprint() {
  local id
  while IFS= read -r id; do
    if [[ "$id" =~ ^[0-9A-Fa-f]{40}$ ]]; then
      printf '%s\n' "$id" | tr '[:lower:]' '[:upper:]'
    elif [[ -n "$id" ]]; then
      printf '%s' "$id" | openssl base64 -d -A 2>/dev/null | od -An -tx1 | tr -d ' \n' | tr '[:lower:]' '[:upper:]'
      echo
    fi
  done
}
if az ad app credential list --id "$app_id" --cert --query "[].customKeyIdentifier" -o tsv |
  as_hex_thumbprint | grep -qx "$thumbprint"; then
  echo "Certificate $thumbprint is already on the app"
else
  az ad app credential reset --id "$app_id" --cert "@$cert" --append --only-show-errors >/dev/null
  echo "Uploaded certificate $thumbprint"
fi

# 3. Application permission on Microsoft Graph.
if az ad app permission list --id "$app_id" \
  --query "[?resourceAppId=='$GRAPH_APP_ID'].resourceAccess[] | [?id=='$permission_id' && type=='Role'].id" -o tsv |
  grep -q .; then
  echo "Permission $PERMISSION_NAME is already requested"
else
  az ad app permission add --id "$app_id" --api "$GRAPH_APP_ID" \
    --api-permissions "$permission_id=Role" --only-show-errors >/dev/null
  echo "Requested application permission $PERMISSION_NAME ($permission_id)"
fi

# 4. Service principal.
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
or in the portal ($portal): Microsoft Entra ID > App registrations > $name > API permissions >
  "Grant admin consent for <tenant>", and check that $PERMISSION_NAME shows "Granted".
EOF
}

consent_failed=0
# 5. Admin consent. A new service principal can take a while to replicate: retry a few times.
if [[ $consent -eq 1 ]]; then
  granted=0
  for attempt in 1 2 3 4 5 6; do
    if az ad app permission admin-consent --id "$app_id" --only-show-errors >/dev/null 2>&1; then
      granted=1
      break
    fi
    [[ $attempt -lt 6 ]] && sleep 10
  done
  if [[ $granted -eq 1 ]]; then
    echo "Admin consent granted for $PERMISSION_NAME"
  else
    consent_failed=1
    echo "warning: admin consent failed (missing role, or the service principal is not replicated yet)" >&2
    consent_help >&2
  fi
else
  consent_help
fi

cat <<EOF

tenantId: $tenant_id
clientId: $app_id
Template parameter GraphCloud: $graph_cloud

Next: infra/store-secret.sh --tenant-id $tenant_id --client-id $app_id \\
        --cert $cert --key $(dirname "$cert")/app.key.pem
EOF
if [[ $consent_failed -eq 1 ]]; then
  echo "error: everything is in place except admin consent (see above)" >&2
  exit 3
fi

#!/usr/bin/env bash
# Stores the Entra app's credentials in AWS Secrets Manager as the JSON the worker reads, and
# prints the secret's ARN for the template parameter CredentialsSecretArn. Step 3 of 3 (after
# create-certificate.sh and register-entra-app.sh). The key never appears on a command line or
# in the output: it goes from the files into a private temporary file read by the AWS CLI.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: infra/store-secret.sh --tenant-id ID --client-id ID
         (--cert CERT.pem --key KEY.pem | --pfx FILE.pfx [--pfx-password-file FILE]) [options]

Builds the secret JSON
  {"tenantId", "clientId", "certificatePem", "privateKeyPem"}     from PEM files, or
  {"tenantId", "clientId", "pfxBase64", "pfxPassword"}            from a PFX,
checks that the key belongs to the certificate, then creates the secret, or adds a new version
when a secret of that name exists, and prints its ARN.

Options:
  --tenant-id ID           directory (tenant) id, a GUID (register-entra-app.sh prints it)
  --client-id ID           application (client) id, a GUID
  --cert FILE              certificate PEM (app.crt.pem)
  --key FILE               private key PEM, PKCS#8 or PKCS#1; an encrypted key is decrypted
                           (openssl asks for its passphrase) and stored unencrypted as PKCS#8
  --pfx FILE               PFX/PKCS#12 instead of --cert/--key
  --pfx-password-file FILE file holding the PFX password (default: FILE.pfx.password next to the
                           PFX, as create-certificate.sh writes it; else $PFX_PASSWORD)
  --name NAME              secret name (default: mfa-preload/graph-app)
  --kms-key-id KEY         customer managed KMS key for a new secret (default: aws/secretsmanager);
                           then also pass its ARN as the template parameter CredentialsSecretKmsKeyArn
  --region REGION          AWS region (default: the AWS CLI's)
  -h, --help               this text

Needs: aws (with credentials allowed to create/update the secret), jq, openssl.
USAGE
}

die() { echo "error: $*" >&2; exit 1; }

tenant=""
client=""
cert=""
key=""
pfx=""
pwfile=""
name="mfa-preload/graph-app"
kms_key=""
region=""

while [[ $# -gt 0 ]]; do
  case "$1" in
    --tenant-id) [[ $# -ge 2 ]] || die "--tenant-id needs a value"; tenant="$2"; shift 2 ;;
    --client-id) [[ $# -ge 2 ]] || die "--client-id needs a value"; client="$2"; shift 2 ;;
    --cert) [[ $# -ge 2 ]] || die "--cert needs a file"; cert="$2"; shift 2 ;;
    --key) [[ $# -ge 2 ]] || die "--key needs a file"; key="$2"; shift 2 ;;
    --pfx) [[ $# -ge 2 ]] || die "--pfx needs a file"; pfx="$2"; shift 2 ;;
    --pfx-password-file) [[ $# -ge 2 ]] || die "--pfx-password-file needs a file"; pwfile="$2"; shift 2 ;;
    --name) [[ $# -ge 2 ]] || die "--name needs a name"; name="$2"; shift 2 ;;
    --kms-key-id) [[ $# -ge 2 ]] || die "--kms-key-id needs a key id or ARN"; kms_key="$2"; shift 2 ;;
    --region) [[ $# -ge 2 ]] || die "--region needs a region"; region="$2"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

for tool in aws jq openssl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done

guid='^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
[[ -n "$tenant" ]] || die "--tenant-id is required"
[[ -n "$client" ]] || die "--client-id is required"
[[ "$tenant" =~ $guid ]] || die "--tenant-id must be the tenant's GUID, not '$tenant'"
[[ "$client" =~ $guid ]] || die "--client-id must be the application (client) GUID, not '$client'"
[[ "$name" =~ ^[A-Za-z0-9/_+=.@-]{1,512}$ ]] || die "--name may hold only letters, digits and /_+=.@-"

if [[ -n "$pfx" ]]; then
  [[ -z "$cert" && -z "$key" ]] || die "pass either --pfx or --cert and --key, not both"
  [[ -r "$pfx" ]] || die "cannot read the PFX: $pfx"
  if [[ -z "$pwfile" && -r "$pfx.password" ]]; then
    pwfile="$pfx.password"
  elif [[ -z "$pwfile" && -r "${pfx%.pfx}.pfx.password" ]]; then
    pwfile="${pfx%.pfx}.pfx.password"
  fi
  if [[ -n "$pwfile" ]]; then
    [[ -r "$pwfile" ]] || die "cannot read the PFX password file: $pwfile"
  elif [[ -z "${PFX_PASSWORD+set}" ]]; then
    die "no PFX password: pass --pfx-password-file or set PFX_PASSWORD"
  fi
else
  [[ -n "$cert" && -n "$key" ]] || die "pass --cert and --key (or --pfx)"
  [[ -r "$cert" ]] || die "cannot read the certificate: $cert"
  [[ -r "$key" ]] || die "cannot read the private key: $key"
fi

# Empty unless --region is given. Every expansion of an array that may be empty is written
# ${a[@]+"${a[@]}"}: under set -u, bash before 4.4 (macOS ships 3.2) calls "${a[@]}" of an empty
# array an unbound variable.
aws_args=()
if [[ -n "$region" ]]; then aws_args+=(--region "$region"); fi

umask 077
work=$(mktemp -d)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

if [[ -n "$pfx" ]]; then
  if [[ -n "$pwfile" ]]; then
    # The password as stored, less one trailing newline an editor may have added.
    jq -j -R -s 'rtrimstr("\n") | rtrimstr("\r")' "$pwfile" >"$work/password"
  else
    printf '%s' "$PFX_PASSWORD" >"$work/password"
  fi
  # Modern PFX (AES) first; older tools write RC2/3DES, which OpenSSL 3 reads with -legacy.
  if ! openssl pkcs12 -in "$pfx" -passin "file:$work/password" -clcerts -nokeys -out "$work/cert.pem" 2>/dev/null &&
    ! openssl pkcs12 -legacy -in "$pfx" -passin "file:$work/password" -clcerts -nokeys -out "$work/cert.pem" 2>/dev/null; then
    die "$pfx cannot be opened with the given password (or is not a PKCS#12 file)"
  fi
  if ! openssl pkcs12 -in "$pfx" -passin "file:$work/password" -nocerts -nodes -out "$work/key.pem" 2>/dev/null &&
    ! openssl pkcs12 -legacy -in "$pfx" -passin "file:$work/password" -nocerts -nodes -out "$work/key.pem" 2>/dev/null; then
    die "$pfx holds no readable private key"
  fi
  grep -q "PRIVATE KEY" "$work/key.pem" || die "$pfx holds no private key"
  cert_for_checks="$work/cert.pem"
  key_for_checks="$work/key.pem"
  openssl base64 -A -in "$pfx" >"$work/pfx.b64"
else
  openssl x509 -in "$cert" -noout 2>/dev/null || die "$cert is not a PEM certificate"
  grep -q "PRIVATE KEY" "$cert" && die "$cert holds a private key; pass the certificate alone to --cert"
  # Normalise to unencrypted PKCS#8 (asks for the passphrase of an encrypted key).
  openssl pkey -in "$key" -out "$work/key.pem" || die "$key is not a readable private key"
  openssl x509 -in "$cert" -out "$work/cert.pem"
  cert_for_checks="$work/cert.pem"
  key_for_checks="$work/key.pem"
fi

# The key must be RSA and belong to the certificate.
openssl rsa -in "$key_for_checks" -noout 2>/dev/null ||
  die "the private key is not an RSA key (the worker signs with PS256)"
cert_pub=$(openssl x509 -in "$cert_for_checks" -noout -pubkey)
key_pub=$(openssl pkey -in "$key_for_checks" -pubout)
[[ "$cert_pub" == "$key_pub" ]] || die "the private key does not belong to the certificate"
if ! openssl x509 -in "$cert_for_checks" -noout -checkend 0 >/dev/null; then
  die "the certificate has expired; create a new one (create-certificate.sh)"
fi
if ! openssl x509 -in "$cert_for_checks" -noout -checkend $((30 * 24 * 3600)) >/dev/null; then
  echo "warning: the certificate expires within 30 days" >&2
fi
thumbprint=$(openssl x509 -in "$cert_for_checks" -noout -fingerprint -sha1 | cut -d= -f2 | tr -d ':')
expires=$(openssl x509 -in "$cert_for_checks" -noout -enddate | cut -d= -f2)

# The secret JSON, built from files (--rawfile): nothing secret on a command line.
if [[ -n "$pfx" ]]; then
  jq -n --arg tenantId "$tenant" --arg clientId "$client" \
    --rawfile pfx "$work/pfx.b64" --rawfile password "$work/password" \
    '{tenantId: $tenantId, clientId: $clientId, pfxBase64: ($pfx | gsub("\\s"; "")), pfxPassword: $password}' \
    >"$work/secret.json"
else
  jq -n --arg tenantId "$tenant" --arg clientId "$client" \
    --rawfile cert "$work/cert.pem" --rawfile key "$work/key.pem" \
    '{tenantId: $tenantId, clientId: $clientId, certificatePem: $cert, privateKeyPem: $key}' \
    >"$work/secret.json"
fi

if aws ${aws_args[@]+"${aws_args[@]}"} secretsmanager describe-secret --secret-id "$name" --query ARN --output text >/dev/null 2>&1; then
  arn=$(aws ${aws_args[@]+"${aws_args[@]}"} secretsmanager put-secret-value --secret-id "$name" \
    --secret-string "file://$work/secret.json" --query ARN --output text)
  echo "Stored a new version of the secret $name"
else
  create_args=(--name "$name" --description "mfa-preload: Entra app credentials (certificate) for Microsoft Graph"
    --secret-string "file://$work/secret.json" --query ARN --output text)
  if [[ -n "$kms_key" ]]; then create_args+=(--kms-key-id "$kms_key"); fi
  arn=$(aws ${aws_args[@]+"${aws_args[@]}"} secretsmanager create-secret ${create_args[@]+"${create_args[@]}"})
  echo "Created the secret $name"
fi
[[ -n "$arn" && "$arn" != "None" ]] || die "the AWS CLI returned no secret ARN"

cat <<EOF
Certificate thumbprint (SHA-1): $thumbprint, expires $expires
CredentialsSecretArn: $arn

Next: sam build && sam deploy --guided   (CredentialsSecretArn=$arn)
Then delete the local private key files, or keep them only in a protected place.
EOF

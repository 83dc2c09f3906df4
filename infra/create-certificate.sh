#!/usr/bin/env bash
# Creates the certificate the Entra app authenticates with: an RSA key, a self-signed certificate
# and a PFX (PKCS#12) of both. Step 1 of 3 (then register-entra-app.sh, then store-secret.sh).
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: infra/create-certificate.sh [options]

Creates, in the output directory (files readable by the owner only):
  app.key.pem        RSA private key, PKCS#8, unencrypted   (goes into the secret, nowhere else)
  app.crt.pem        self-signed certificate                 (uploaded to the Entra app)
  app.pfx            PKCS#12 of key + certificate            (alternative form for the secret)
  app.pfx.password   the PFX password
and prints the certificate's thumbprints (SHA-1 as shown by Entra, and SHA-256) and its expiry.

Options:
  --out DIR          output directory (default: ./mfa-preload-cert)
  --cn NAME          certificate subject common name (default: mfa-preload)
  --bits 2048|3072   RSA key size (default: 3072)
  --days N           validity in days, 1..1095 (default: 730). Plan the renewal: the worker
                     logs a warning when the certificate is about to expire.
  --force            overwrite existing files in DIR
  -h, --help         this text

The PFX password is read from the environment variable PFX_PASSWORD when set, else a random one
is generated. Keep DIR out of version control and delete app.key.pem once the secret is stored.
Needs: openssl.
USAGE
}

die() { echo "error: $*" >&2; exit 1; }

out="./mfa-preload-cert"
cn="mfa-preload"
bits=3072
days=730
force=0

while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) [[ $# -ge 2 ]] || die "--out needs a directory"; out="$2"; shift 2 ;;
    --cn) [[ $# -ge 2 ]] || die "--cn needs a name"; cn="$2"; shift 2 ;;
    --bits) [[ $# -ge 2 ]] || die "--bits needs 2048 or 3072"; bits="$2"; shift 2 ;;
    --days) [[ $# -ge 2 ]] || die "--days needs a number"; days="$2"; shift 2 ;;
    --force) force=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

command -v openssl >/dev/null 2>&1 || die "openssl is required (e.g. apt-get install openssl)"
[[ "$bits" == 2048 || "$bits" == 3072 ]] || die "--bits must be 2048 or 3072, not '$bits'"
if ! [[ "$days" =~ ^[0-9]{1,4}$ ]] || ((10#$days < 1 || 10#$days > 1095)); then
  die "--days must be a whole number from 1 to 1095, not '$days'"
fi
[[ -n "$cn" && "$cn" != */* ]] || die "--cn must be a non-empty name without '/'"

days=$((10#$days))
umask 077
mkdir -p "$out"
key="$out/app.key.pem"
crt="$out/app.crt.pem"
pfx="$out/app.pfx"
pwfile="$out/app.pfx.password"

if [[ $force -eq 0 ]]; then
  for f in "$key" "$crt" "$pfx" "$pwfile"; do
    [[ ! -e "$f" ]] || die "$f exists; use --force to replace it (the app then needs the new certificate)"
  done
fi

# The password goes to openssl through a file, never on the command line.
if [[ -n "${PFX_PASSWORD:-}" ]]; then
  printf '%s' "$PFX_PASSWORD" >"$pwfile"
else
  openssl rand -base64 24 | tr -d '\n' >"$pwfile"
fi

openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:$bits" -out "$key" 2>/dev/null
openssl req -new -x509 -sha256 -key "$key" -days "$days" \
  -subj "/CN=$cn" \
  -addext "keyUsage=critical,digitalSignature" \
  -addext "extendedKeyUsage=clientAuth" \
  -out "$crt"
openssl pkcs12 -export -inkey "$key" -in "$crt" -name "$cn" \
  -passout "file:$pwfile" -out "$pfx"
chmod 600 "$key" "$crt" "$pfx" "$pwfile"

sha1=$(openssl x509 -in "$crt" -noout -fingerprint -sha1 | cut -d= -f2 | tr -d ':')
sha256=$(openssl x509 -in "$crt" -noout -fingerprint -sha256 | cut -d= -f2 | tr -d ':')
expires=$(openssl x509 -in "$crt" -noout -enddate | cut -d= -f2)

cat <<EOF
Created in $out:
  $(basename "$key")  $(basename "$crt")  $(basename "$pfx")  $(basename "$pwfile")
Subject:            CN=$cn (RSA $bits)
Expires:            $expires
Thumbprint (SHA-1): $sha1
SHA-256:            $sha256

Next: infra/register-entra-app.sh --cert $crt
EOF

#!/usr/bin/env bash
# Generates the TEST-ONLY certificate, key and PFX used by the test suite and the simulator.
# These files protect nothing: they are registered only with the Graph simulator.
set -euo pipefail
command -v openssl >/dev/null 2>&1 || { echo "error: openssl is required" >&2; exit 1; }
out=${1:-"$(cd "$(dirname "$0")/.." && pwd)/tests/fixtures"}
mkdir -p "$out"
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 36500 \
  -subj "/CN=mfa-preload test app" \
  -keyout "$out/test-app.key.pem" -out "$out/test-app.crt.pem" 2>/dev/null
openssl pkcs12 -export -inkey "$out/test-app.key.pem" -in "$out/test-app.crt.pem" \
  -passout pass:test-pfx-password -out "$out/test-app.pfx"
# A second app's certificate: the one Entra holds when the secret's is not uploaded, a rotation, a
# signature by another key. (The expiry tests set their clock against a certificate's own dates,
# so no fixture has to be about to expire.)
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 36500 \
  -subj "/CN=mfa-preload other test app" \
  -keyout "$out/other-app.key.pem" -out "$out/other-app.crt.pem" 2>/dev/null
echo "test fixtures written to $out"

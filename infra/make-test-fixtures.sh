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
# A certificate that expires in 10 days, to exercise the expiry warning.
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 10 \
  -subj "/CN=mfa-preload expiring test app" \
  -keyout "$out/expiring.key.pem" -out "$out/expiring.crt.pem" 2>/dev/null
echo "test fixtures written to $out"

#!/usr/bin/env bash
# Runs every test of the project on a fresh machine (needs only cargo, python3, pip, apt-get):
#   1. installs the Python tools (moto server, cfn-lint, checkov) into a virtualenv, shellcheck
#      and jq (the admin scripts' tests), and chromium (the HTML report's test),
#   2. checks formatting and clippy,
#   3. starts the moto server (S3, SQS, Secrets Manager, DynamoDB, SNS) on 127.0.0.1 on a free port,
#   4. runs all Rust tests (unit, integration against moto and the Graph simulator), then the end
#      to end pipeline test, which prints the counts of its scenarios,
#   5. lints and scans template.yaml, shellchecks the scripts and tests the admin scripts,
# and stops the moto server at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

cache=${MFA_PRELOAD_CACHE:-"$HOME/.cache/mfa-preload"}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-"$cache/target"}
venv=${MFA_PRELOAD_VENV:-"$cache/venv"}

step() { printf '\n==> %s\n' "$*"; }

step "Python tools (virtualenv $venv)"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! cmp -s tests/requirements.txt "$venv/.requirements.installed" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
  cp tests/requirements.txt "$venv/.requirements.installed"
fi

# apt_install PACKAGE...: through apt-get, with sudo when not root.
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing: $*, and apt-get is not available" >&2
    exit 1
  fi
  local sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  # shellcheck disable=SC2086 # $sudo_cmd is empty or one word
  $sudo_cmd apt-get update -qq &&
    $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

step "shellcheck and jq"
missing=""
for tool in shellcheck jq; do
  command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
  # shellcheck disable=SC2086 # $missing is a list of package names
  apt_install $missing
fi

step "chromium (headless, for the HTML report's test)"
# CHROMIUM names the binary; else chromium or chromium-browser on PATH; else Debian's chromium.
if [ -n "${CHROMIUM:-}" ]; then
  chromium_bin=$(command -v "$CHROMIUM") || { echo "CHROMIUM=$CHROMIUM is not an executable" >&2; exit 1; }
elif ! chromium_bin=$(command -v chromium || command -v chromium-browser); then
  apt_install chromium
  chromium_bin=$(command -v chromium) || { echo "chromium is installed but not on PATH" >&2; exit 1; }
fi
export CHROMIUM=$chromium_bin
"$CHROMIUM" --version 2>/dev/null || true

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --release --workspace --all-targets --quiet -- -D warnings

step "build (release: the tests run the same binaries Lambda would)"
cargo build --release --workspace --all-targets --quiet

step "start the moto server"
port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
moto_log=$(mktemp -t moto.XXXXXX.log)
# moto's own server, started through tests/moto/server.py, which removes moto's per-message
# recounting of a queue (see there): large files then take minutes, not hours.
"$venv/bin/python" "$root/tests/moto/server.py" -H 127.0.0.1 -p "$port" >"$moto_log" 2>&1 &
moto_pid=$!
cleanup() { kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 1 100); do
  if "$venv/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/')" 2>/dev/null; then
    break
  fi
  if ! kill -0 "$moto_pid" 2>/dev/null; then
    echo "moto server failed to start:" >&2; cat "$moto_log" >&2; exit 1
  fi
  sleep 0.2
done
export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
echo "moto server on $AWS_ENDPOINT_URL"

step "cargo test (all crates; the end-to-end pipeline apart)"
cargo test --release --workspace --quiet -- --test-threads 2 --skip pipeline_end_to_end

step "end to end: the ingest and worker binaries through the Lambda Runtime API (counts below)"
# The test runs the release binaries built above; it fails if they are older than their sources.
# Every cargo command here selects the whole workspace, so that dependencies are built with one
# set of features, once (a `-p` selection would build the AWS SDK again with other features).
cargo test --release --workspace --test pipeline --quiet -- --nocapture

step "template.yaml: cfn-lint and checkov; scripts: shellcheck; admin scripts: tests"
PATH="$venv/bin:$PATH" bash "$root/infra/check-template.sh"

echo
echo "all checks passed"

#!/usr/bin/env bash
# Checks of the deployment: cfn-lint and checkov on template.yaml, shellcheck on the shell scripts,
# and the tests of the admin scripts (infra/tests/*.test.sh: stub `az` and `aws` on PATH, no
# network). cfn-lint and checkov come from the test virtualenv that scripts/test.sh creates (the
# versions pinned in tests/requirements.txt), else from PATH; shellcheck is used when present.
# Exits non-zero when any check reports an error, a warning (cfn-lint), a failed check (checkov)
# or a failed test.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: infra/check-template.sh [TEMPLATE]

Runs, from the repository root:
  cfn-lint TEMPLATE                     (no errors and no warnings allowed)
  checkov -f TEMPLATE --framework cloudformation --quiet --compact   (no failed check)
  shellcheck infra/*.sh infra/tests/*.sh scripts/*.sh   (only when shellcheck is on PATH)
  bash infra/tests/NAME.test.sh         (each: the admin scripts against stub az/aws; needs jq, openssl)
TEMPLATE defaults to template.yaml. Checks skipped on purpose are listed, with the reason, in the
template's Metadata (checkov: skip:).

cfn-lint and checkov are taken from the virtualenv $MFA_PRELOAD_VENV (default
$MFA_PRELOAD_CACHE/venv, i.e. ~/.cache/mfa-preload/venv) when it has them, else from PATH.
Create the virtualenv with scripts/test.sh, or by hand:
  python3 -m venv ~/.cache/mfa-preload/venv
  ~/.cache/mfa-preload/venv/bin/pip install -r tests/requirements.txt
USAGE
}

case "${1:-}" in
  -h | --help) usage; exit 0 ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
template="${1:-template.yaml}"
[[ -f "$template" ]] || { echo "error: template not found: $template" >&2; exit 2; }

# The same virtualenv as scripts/test.sh.
cache=${MFA_PRELOAD_CACHE:-"$HOME/.cache/mfa-preload"}
venv=${MFA_PRELOAD_VENV:-"$cache/venv"}
if [[ -x "$venv/bin/cfn-lint" && -x "$venv/bin/checkov" ]]; then
  PATH="$venv/bin:$PATH"
  echo "== tools from $venv"
fi
for tool in cfn-lint checkov; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "error: $tool not found in $venv/bin nor on PATH; run scripts/test.sh once, or:" >&2
    echo "  python3 -m venv $venv && $venv/bin/pip install -r tests/requirements.txt" >&2
    exit 2
  }
done

failed=0

echo "== cfn-lint $template"
# cfn-lint exits non-zero on errors (2), warnings (4) and informational findings (8).
if cfn-lint --format parseable -- "$template"; then
  echo "cfn-lint: clean"
else
  echo "cfn-lint: FAILED" >&2
  failed=1
fi

echo "== checkov $template"
# --skip-download: use the checks shipped with checkov, without fetching guidelines online.
# checkov exits 1 when a check fails; the summary line is printed either way.
if checkov -f "$template" --framework cloudformation --quiet --compact --skip-download; then
  echo "checkov: clean"
else
  echo "checkov: FAILED" >&2
  failed=1
fi

if command -v shellcheck >/dev/null 2>&1; then
  echo "== shellcheck infra/*.sh infra/tests/*.sh scripts/*.sh"
  if shellcheck infra/*.sh infra/tests/*.sh scripts/*.sh; then
    echo "shellcheck: clean"
  else
    echo "shellcheck: FAILED" >&2
    failed=1
  fi
else
  echo "== shellcheck not on PATH: shell scripts not checked"
fi

for test in infra/tests/*.test.sh; do
  echo "== $test"
  if bash "$test"; then
    echo "$test: passed"
  else
    echo "$test: FAILED" >&2
    failed=1
  fi
done

if [[ $failed -ne 0 ]]; then
  echo "template checks FAILED" >&2
  exit 1
fi
echo "template checks passed"

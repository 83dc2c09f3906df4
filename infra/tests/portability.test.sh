#!/usr/bin/env bash
# Static checks of the shell scripts for what shellcheck does not report:
#   - `cmd | grep -q ...` under `set -o pipefail`: grep exits at the first match, the writer may die
#     of SIGPIPE, and the pipeline then fails although the text was there. Capture the output
#     first (or read a file), then test it.
#   - bash 3.2 (macOS) and 4.x: "${arr[@]}" of an empty array under `set -u` is an unbound
#     variable before bash 4.4, so every array expansion must be guarded as ${arr[@]+"${arr[@]}"};
#     and none of the constructs bash 3.2 lacks (associative arrays, mapfile, case conversion,
#     namerefs, |&, &>>, ;& ...).
#
#   bash infra/tests/portability.test.sh [FILE...]     (default: infra/*.sh and the other tests)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
if [[ $# -eq 0 ]]; then
  # Not this file: its patterns would match themselves.
  set -- infra/*.sh
  for f in infra/tests/*.sh; do
    if [[ "$f" != infra/tests/portability.test.sh ]]; then set -- "$@" "$f"; fi
  done
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
problems=0

# check FILE ERE WHAT : every line of FILE (comments blanked) that matches ERE is a problem.
check() {
  local hits
  hits=$(grep -nE -- "$2" "$work/code" || true)
  if [[ -n "$hits" ]]; then
    while IFS= read -r hit; do
      echo "$1:${hit%%:*}: $3: ${hit#*:}" >&2
      problems=$((problems + 1))
    done <<<"$hits"
  fi
}

# The patterns and messages hold $ and ${...} literally.
# shellcheck disable=SC2016
for file in "$@"; do
  # Comment lines blanked (line numbers kept); guarded array expansions taken out.
  sed -E -e 's/^[[:space:]]*#.*$//' \
    -e 's/\$\{([A-Za-z_][A-Za-z0-9_]*)\[@\]\+"\$\{\1\[@\]\}"\}/GUARDED/g' "$file" >"$work/code"

  # A grep -q (or -qx, -Fq, ...) reading a pipe: on the same line after `|`, or on the line after
  # one that ends with `|`.
  grep_q='grep([[:space:]]+-[A-Za-z]+)*[[:space:]]+-[A-Za-z]*q'
  check "$file" "\|[[:space:]]*$grep_q" "grep -q reading a pipe (misfires under pipefail)"
  prev_pipe=$(awk -v re="^[[:space:]]*$grep_q" 'prev ~ /\|[[:space:]]*$/ && $0 ~ re { print NR ": " $0 } { prev = $0 }' "$work/code")
  if [[ -n "$prev_pipe" ]]; then
    while IFS= read -r hit; do
      echo "$file:${hit%%:*}: grep -q reading a pipe (misfires under pipefail): ${hit#*: }" >&2
      problems=$((problems + 1))
    done <<<"$prev_pipe"
  fi

  check "$file" '\$\{[A-Za-z_][A-Za-z0-9_]*\[[@*]\]' 'array expansion not guarded as ${a[@]+"${a[@]}"} (unbound under set -u before bash 4.4)'
  check "$file" '(^|[[:space:];])(declare|local|typeset)[[:space:]]+-[A-Za-z]*[An]' 'associative array or nameref (bash 4)'
  check "$file" '(^|[[:space:];])(mapfile|readarray|coproc)([[:space:]]|$)' 'mapfile/readarray/coproc (bash 4)'
  check "$file" '\$\{[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?(,,?|\^\^?)\}' 'case conversion ${x,,} / ${x^^} (bash 4)'
  check "$file" '\$\{[A-Za-z_][A-Za-z0-9_]*@[QEPAaKUuL]\}' '${x@Q} and friends (bash 4.4)'
  check "$file" '\|&|&>>' '|& or &>> (bash 4)'
  check "$file" ';;&|;&[[:space:]]*$' 'case fall-through ;& or ;;& (bash 4)'
  check "$file" '\[\[[[:space:]]+-v[[:space:]]' '[[ -v NAME ]] (bash 4.2)'
  check "$file" 'shopt[[:space:]]+-s[[:space:]]+(globstar|lastpipe|inherit_errexit)' 'shopt option bash 3.2 lacks'
  check "$file" 'wait[[:space:]]+-n|EPOCHSECONDS|EPOCHREALTIME|printf[[:space:]]+(-v[[:space:]]+[A-Za-z_]+[[:space:]]+)?.%\(' 'wait -n, EPOCHSECONDS or printf %(...)T (bash 4.2+)'
done

if [[ $problems -ne 0 ]]; then
  echo "portability: $problems problem(s)" >&2
  exit 1
fi
echo "portability: $# file(s) clean (no grep -q on a pipe, bash 3.2 constructs only)"

#!/usr/bin/env bash
# Runs the benchmarks and writes their figures to BENCHMARKS.md.
#
#   bash scripts/bench.sh
#
# Settings (environment): INGEST_ROWS (100000,1000000,10000000), WORKER_USERS (10000),
# WORKER_BASELINE (users timed the sequential way; WORKER_USERS by default, i.e. measured, not
# extrapolated), WORKER_LONG_USERS (40000; two longer engine runs, within and past Graph's write cap, 0
# to skip), SHARED_USERS (30000; users of the several-instances runs, 0 to skip), SHARED_INSTANCES
# (1,4,16), LEDGER_USERS (30000; users per pass of the job-ledger comparison, 0 to skip; it needs the
# moto server from the virtualenv scripts/test.sh installs), READINESS_USERS (100000; the readiness
# tenant, both sources side by side, 0 to skip), READINESS_SIZES (1000,4995,5000,20000; smaller
# tenants around the crossover), BENCH_DIR (scratch directory for the generated CSV files; 10M rows
# take about 0.7 GB).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

rows="${INGEST_ROWS:-100000,1000000,10000000}"
users="${WORKER_USERS:-10000}"
baseline="${WORKER_BASELINE:-$users}"
long_users="${WORKER_LONG_USERS:-40000}"
shared_users="${SHARED_USERS:-30000}"
shared_instances="${SHARED_INSTANCES:-1,4,16}"
ledger_users="${LEDGER_USERS:-30000}"
readiness_users="${READINESS_USERS:-100000}"
readiness_sizes="${READINESS_SIZES-1000,4995,5000,20000}"
venv=${MFA_PRELOAD_VENV:-"${MFA_PRELOAD_CACHE:-$HOME/.cache/mfa-preload}/venv"}
scratch="${BENCH_DIR:-$(mktemp -d)}"
out="$root/BENCHMARKS.md"
target="${CARGO_TARGET_DIR:-$root/target}"

echo "==> building the benchmarks (release)"
# The whole workspace is selected, so that dependencies keep one set of features (see test.sh).
cargo build --release --workspace --bin ingest-bench --bin worker-bench --bin readiness-bench --quiet

machine="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load before the run: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "==> ingest core: $rows rows"
"$target/release/ingest-bench" --rows "$rows" --dir "$scratch" --markdown "$scratch/ingest.md"

echo "==> worker engine vs the sequential way: $users users (baseline $baseline)"
"$target/release/worker-bench" --users "$users" --baseline "$baseline" | tee "$scratch/worker.txt"

if [ "$long_users" != "0" ]; then
    echo "==> worker engine, longer run within Graph's write cap: $long_users users, 5% new (baseline sample 200)"
    "$target/release/worker-bench" --users "$long_users" --new-share 0.05 --baseline 200 | tee "$scratch/worker-long.txt"
    echo "==> worker engine, past Graph's write cap: $long_users users, 10% new (baseline sample 200)"
    "$target/release/worker-bench" --users "$long_users" --new-share 0.1 --baseline 200 | tee "$scratch/worker-writes.txt"
fi

if [ "$shared_users" != "0" ]; then
    echo "==> several instances sharing one tenant budget: $shared_users users, instances $shared_instances, both throttle models"
    "$target/release/worker-bench" --instances "$shared_instances" --models token-bucket,sliding-window --users "$shared_users" --new-share 0.05 | tee "$scratch/worker-shared.txt"
    echo "==> the same without x-ms-throttle-limit-percentage"
    "$target/release/worker-bench" --instances "$shared_instances" --models token-bucket,sliding-window --users "$shared_users" --new-share 0.05 --no-limit-percentage | tee "$scratch/worker-shared-nohdr.txt"
fi

if [ "$ledger_users" != "0" ]; then
    echo "==> the worker with and without the job ledger (DynamoDB on the moto server): $ledger_users users per pass"
    port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    "$venv/bin/python" tests/moto/server.py -H 127.0.0.1 -p "$port" > "$scratch/moto.log" 2>&1 &
    moto_pid=$!
    for _ in $(seq 1 50); do
        "$venv/bin/python" -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
        sleep 0.2
    done
    AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
        AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
        "$target/release/worker-bench" --ledger-compare --users "$ledger_users" --new-share 0.05 | grep -v "^{" | tee "$scratch/worker-ledger.txt"
    kill "$moto_pid" 2>/dev/null || true
fi

if [ "$readiness_users" != "0" ]; then
    echo "==> readiness: the registration report and user by user, $readiness_users users (and $readiness_sizes)"
    "$target/release/readiness-bench" --users "$readiness_users" --sizes "$readiness_sizes" --markdown "$scratch/readiness.md"
fi

{
    cat <<EOF
# Benchmarks

Written by \`bash scripts/bench.sh\` on $(date -u +%Y-%m-%d) ($machine).
Run it again to reproduce; the settings are at the top of the script. Absolute times on shared
machines are noisy: compare the ratios, which are measured side by side in one run.

## Ingest core

Each file is generated first (number formats from 9 countries, about 1.6 phone numbers and 0.5
emails per row, extensions, a duplicate user every 5,000 rows, a mobile of letters every 1,000
rows), then read by a fresh child process through
the whole ingest core: the streaming CSV reader, validation, phone normalisation, message encoding
and batching into an in-process sink. Peak RSS is that child's \`VmHWM\`.

\`\`\`
target/release/ingest-bench --rows $rows --markdown FILE
\`\`\`

EOF
    cat "$scratch/ingest.md"
    cat <<EOF

## Worker engine against the Graph simulator

The simulator answers every request after the set latency and enforces Graph's budget of
resource units (GET = 1 RU, write = 2 RU) as a token bucket, answering 429 with a whole-second
\`Retry-After\` when it is spent.
The engine takes the users as one batch of queue messages; the baseline takes other users of the
same shape one at a time, each call in turn, the way the community script does.

\`\`\`
target/release/worker-bench --users $users --baseline $baseline
\`\`\`

\`\`\`
EOF
    cat "$scratch/worker.txt"
    echo '```'
    if [ -f "$scratch/worker-long.txt" ]; then
        cat <<EOF

A longer run whose writes stay within Graph's write cap (3,000 per 150 s), so that the steady
state is most of the run and only the resource-unit budget bounds it:

\`\`\`
target/release/worker-bench --users $long_users --new-share 0.05 --baseline 200
\`\`\`

\`\`\`
EOF
        cat "$scratch/worker-long.txt"
        echo '```'
        cat <<EOF

The same length with 10% new users: 4,000 writes, more than the 3,000 the write cap allows in
150 s, so the run cannot end before the first writes leave the window (150 s). Here the write cap,
not the budget, is the ceiling; the users that need no write keep going meanwhile.

\`\`\`
target/release/worker-bench --users $long_users --new-share 0.1 --baseline 200
\`\`\`

\`\`\`
EOF
        cat "$scratch/worker-writes.txt"
        echo '```'
    fi
    if [ -f "$scratch/worker-shared.txt" ]; then
        cat <<EOF

## Several instances sharing one tenant budget

N engine instances run in separate processes, as Lambda runs them (the benchmark starts itself
again as each instance), and share one simulated tenant budget: one simulator with Graph's
large-tenant budget of 8,000 RU per 10 s, 50 ms latency, 64 users in flight per instance, the users
split evenly over the instances, 5% of them new (a write each). Each N runs on the token bucket
(Graph's model) and on the sliding window. The ceiling is the users divided by the shortest run
the limits allow for the RU the run spent (token bucket: the whole bucket at once, then its refill;
sliding window: a full budget at once, the next one a window later).

\`\`\`
target/release/worker-bench --instances $shared_instances --models token-bucket,sliding-window --users $shared_users --new-share 0.05
\`\`\`

EOF
        sed -n '/^| model/,$p' "$scratch/worker-shared.txt"
        cat <<EOF

The same runs with a simulator that never sends \`x-ms-throttle-limit-percentage\` (field reports
say Graph may not): the instances learn from 429s alone.

\`\`\`
target/release/worker-bench --instances $shared_instances --models token-bucket,sliding-window --users $shared_users --new-share 0.05 --no-limit-percentage
\`\`\`

EOF
        sed -n '/^| model/,$p' "$scratch/worker-shared-nohdr.txt"
    fi
    if [ -f "$scratch/worker-ledger.txt" ]; then
        cat <<EOF

## The job ledger's cost

The worker as Lambda runs it (10 execution environments, batches of 10 and of 100 messages, at
most 16 users in flight per invocation as \`WorkerUserConcurrency\` defaults to, one shared Graph
client against the simulator with Graph's large-tenant budget and 50 ms latency), once without
the job ledger and once recording every batch's outcomes in DynamoDB through the real adapter
(the moto server), alternating, twice each, per batch size, in one run. Write units are counted
from the transactions sent (2 per item of up to 1 KB).

\`\`\`
target/release/worker-bench --ledger-compare --users $ledger_users --new-share 0.05
\`\`\`

\`\`\`
EOF
        cat "$scratch/worker-ledger.txt"
        echo '```'
    fi
    if [ -f "$scratch/readiness.md" ]; then
        cat <<EOF

## Readiness

\`mfa-preload readiness\` over a simulated tenant of mixed users (\`graph_sim::seeds::mixed_tenant\`),
the registration report and the per-user path side by side, each against a fresh simulator with
50 ms latency under its own documented limits: the report at most five requests in any 10 s (the
identity and access reports' limit per app and tenant), pages of 999 users; user by user the user
list, then one \`GET .../authentication/methods\` per user, 64 at a time, within 8,000 resource units
per 10 s (a token bucket, 1 RU a GET). Requests count every answer, 429s included; the estimate is
\`readiness::estimate\`, by which \`--source auto\` chooses (README, "Passkey era").

\`\`\`
target/release/readiness-bench --users $readiness_users --sizes $readiness_sizes
\`\`\`

EOF
        cat "$scratch/readiness.md"
        cat <<'EOF'

The arithmetic. The report reads `P = ceil(users / 999)` pages one after another, and five fit in
any 10 s: the first five at once, then five more every 10 s, so `10 s x floor((P - 1) / 5)` plus a
round trip per page of the last window. 100,000 users are 101 pages: 20 windows, 200 s, whatever
the round trip. User by user, 100,000 users are 101 pages of the list and 100,000 GETs: the first
8,000 from the bucket, the other 92,101 at 800 per second, 115 s, plus the list's 101 round trips
(5 s at 50 ms). The crossover: the report is the faster while the tenant fits in five pages (4,995
users: five round trips, against 4,995 GETs at 64 in flight, about 4 s at 50 ms); from the sixth
page on it waits a window (10 s), and user by user is the faster as long as `64 / round trip` and
the resource units allow more than 999 users per 2 s, i.e. a round trip under about 128 ms. With a
slower Graph, or fewer requests in flight, the report stays the faster: the rule measures the round
trip (`GET /users/$count`) and decides by the estimate.
EOF
    fi
    if [ -f "$root/scripts/bench-notes.md" ]; then
        echo
        cat "$root/scripts/bench-notes.md"
    fi
} > "$out"

[ -n "${BENCH_DIR:-}" ] || rm -rf "$scratch"
echo "==> wrote $out"

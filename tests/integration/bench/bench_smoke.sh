#!/bin/sh
# bench_smoke.sh - stampede-bench against a real broker: short runs of the
# presets, each must end with nothing lost, duplicated or reordered and a
# non-zero delivery rate (asserted on the generator's JSON report).
#
# Environment:
#   STAMPEDE_URL    broker to test, e.g. stomp://127.0.0.1:61613; when unset,
#   STAMPEDE_BIN    this broker binary is started on a free loopback port
#                   (default build/stampede) and stopped at the end
#   STAMPEDE_TEST_BROKER  when set, started instead of STAMPEDE_BIN (dev.sh's
#                   ThreadSanitizer pass; meson sets STAMPEDE_BIN per test)
#   STAMPEDE_BENCH  the generator (default build/benchmarks/stampede-bench)
#   BENCH_DURATION  seconds per run (default 2)
# Exit 0 when every run passed, 1 otherwise; 77 (meson's "skip") when no
# broker can be found.
set -u
top=$(cd "$(dirname "$0")/../../.." && pwd)
bench=${STAMPEDE_BENCH:-$top/build/benchmarks/stampede-bench}
duration=${BENCH_DURATION:-2}
py=/usr/bin/python3
tmp=$(mktemp -d)
broker_pid=
cleanup() {
    if [ -n "$broker_pid" ]; then
        kill "$broker_pid" 2>/dev/null
        wait "$broker_pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

if [ ! -x "$bench" ]; then
    echo "bench_smoke: $bench is not built" >&2
    exit 1
fi
url=${STAMPEDE_URL:-}
if [ -z "$url" ]; then
    bin=${STAMPEDE_TEST_BROKER:-${STAMPEDE_BIN:-$top/build/stampede}}
    if [ ! -x "$bin" ]; then
        echo "bench_smoke: no STAMPEDE_URL and no broker at $bin: skipped" >&2
        exit 77
    fi
    "$bin" --listen stomp://127.0.0.1:0 >"$tmp/broker.log" 2>&1 &
    broker_pid=$!
    i=0
    while [ $i -lt 100 ]; do
        url=$(sed -n 's/.*listening on \(stomp:\/\/127\.0\.0\.1:[0-9]*\).*/\1/p' "$tmp/broker.log" |
            head -n 1)
        [ -n "$url" ] && break
        sleep 0.1
        i=$((i + 1))
    done
    if [ -z "$url" ]; then
        echo "bench_smoke: the broker did not start:" >&2
        cat "$tmp/broker.log" >&2
        exit 1
    fi
fi

failed=0
n=0
check() { # check NAME ARGS...: run the generator and assert on its JSON
    name=$1
    shift
    n=$((n + 1))
    json=$tmp/$n.json
    "$bench" --url "$url" --duration "$duration" --warmup 0.5 --drain 5 --quiet \
        --dest-prefix "smoke$n" --json "$json" "$@" >"$tmp/$n.out" 2>&1
    rc=$?
    if ! "$py" - "$json" "$name" "$rc" <<'PY'; then
import json, sys
path, name, rc = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    r = json.load(open(path))
except (OSError, ValueError) as e:
    sys.exit(f"FAIL {name}: no report ({e}), exit status {rc}")
m, rates = r["messages"], r["rates"]
problems = []
if rc != 0:
    problems.append(f"exit status {rc}")
if r["result"] != "ok":
    problems.append(f"result {r['result']}: {r['error']}")
for k in ("lost", "duplicated", "reordered", "invalid"):
    if m[k]:
        problems.append(f"{k} {m[k]}")
if not m["sent"] or not rates["delivered_per_s"] > 0:
    problems.append("nothing delivered")
if m["delivered"] != m["expected"]:
    problems.append(f"delivered {m['delivered']} of {m['expected']}")
print(f"{'FAIL' if problems else 'ok  '} {name}: {rates['delivered_per_s']:.0f} deliveries/s, "
      f"p99 {(r['latency_us'] or {}).get('p99', 0):.0f} us"
      + (": " + "; ".join(problems) if problems else ""))
sys.exit(1 if problems else 0)
PY
        failed=1
        tail -n 5 "$tmp/$n.out" >&2
    fi
}

echo "bench_smoke: broker $url"
check fanout --preset fanout
check fanout-paced --preset fanout --rate 20000
check queue-pairs --preset queue-pairs
check work-queue --preset work-queue
check client-ack --preset queue-pairs --ack client --rate 2000
check receipts --preset latency --receipts=10 --rate 2000
check idle --preset connections --idle-connections 50 --heartbeat 500
exit $failed

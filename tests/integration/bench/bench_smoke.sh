#!/bin/sh
# bench_smoke.sh - stampede-bench against a real broker: short runs of the
# presets, each must end with nothing lost, duplicated or reordered and a
# non-zero delivery rate (asserted on the generator's JSON report). Then
# --sub-url: with two unrelated brokers, producers must dial --url and
# subscribers --sub-url (asserted on each broker's /metrics).
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
extra_pids=
cleanup() {
    for p in $broker_pid $extra_pids; do
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
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

# start_extra NAME: another broker with stomp:// and ws:// (for /metrics) on
# free loopback ports; sets $stomp_url and $ws_port (empty on failure).
start_extra() {
    stomp_url= ws_port=
    "$bin" --listen stomp://127.0.0.1:0 --listen ws://127.0.0.1:0/ws --workers 1 \
        >"$tmp/$1.log" 2>&1 &
    extra_pids="$extra_pids $!"
    i=0
    while [ $i -lt 100 ]; do
        stomp_url=$(sed -n 's/.*listening on \(stomp:\/\/127\.0\.0\.1:[0-9]*\).*/\1/p' \
            "$tmp/$1.log" 2>/dev/null | head -n 1)
        ws_port=$(sed -n 's/.*listening on ws:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' \
            "$tmp/$1.log" 2>/dev/null | head -n 1)
        [ -n "$stomp_url" ] && [ -n "$ws_port" ] && return 0
        sleep 0.1
        i=$((i + 1))
    done
    echo "bench_smoke: broker $1 did not start:" >&2
    cat "$tmp/$1.log" >&2
    return 1
}

# --sub-url: brokers P (--url) and S (--sub-url) share nothing, so nothing is
# delivered and the run fails by design; what is checked is where each
# connection went: 2 producers and 1 idle connection CONNECT to P and SEND
# there, 3 consumers CONNECT to S and SUBSCRIBE there, and the report names
# both URLs.
sub_url_check() {
    start_extra pub || return 1
    pub_url=$stomp_url pub_ws=$ws_port
    start_extra sub || return 1
    sub_url=$stomp_url sub_ws=$ws_port
    timeout 60 "$bench" --url "$pub_url" --sub-url "$sub_url" --producers 2 --consumers 3 \
        --idle-connections 1 --rate 100 --duration 0.5 --warmup 0 --drain 0.2 --quiet \
        --dest-prefix smoke-sub --json "$tmp/sub.json" >"$tmp/sub.out" 2>&1
    "$py" - "$pub_url" "$pub_ws" "$sub_url" "$sub_ws" "$tmp/sub.json" <<'PY'
import json, sys, urllib.request
pub_url, pub_ws, sub_url, sub_ws, path = sys.argv[1:6]
def metric(port, series):
    text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port, timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0  # counters still at 0 are not printed
def frames(port, cmd):
    return metric(port, 'stampede_frames_total{direction="in",command="%s"}' % cmd)
want = [("--url broker CONNECTs", frames(pub_ws, "CONNECT"), 3),
        ("--url broker SUBSCRIBEs", frames(pub_ws, "SUBSCRIBE"), 0),
        ("--sub-url broker CONNECTs", frames(sub_ws, "CONNECT"), 3),
        ("--sub-url broker SUBSCRIBEs", frames(sub_ws, "SUBSCRIBE"), 3),
        ("--sub-url broker SENDs", frames(sub_ws, "SEND"), 0)]
problems = ["%s: %g, expected %g" % (what, got, exp) for what, got, exp in want if got != exp]
if not frames(pub_ws, "SEND") > 0:
    problems.append("--url broker got no SEND")
try:
    cfg = json.load(open(path))["config"]
    if (cfg.get("url"), cfg.get("sub_url")) != (pub_url, sub_url):
        problems.append("report config url %r sub_url %r" % (cfg.get("url"), cfg.get("sub_url")))
except (OSError, ValueError) as e:
    problems.append("no report (%s)" % e)
print("%s sub-url: producers on %s, subscribers on %s%s"
      % ("FAIL" if problems else "ok  ", pub_url, sub_url,
         ": " + "; ".join(problems) if problems else ""))
sys.exit(1 if problems else 0)
PY
}
if [ -n "${bin:-}" ]; then
    sub_url_check || { failed=1; tail -n 5 "$tmp/sub.out" >&2; }
else
    echo "bench_smoke: --sub-url check skipped (STAMPEDE_URL names an outside broker)"
fi
exit $failed

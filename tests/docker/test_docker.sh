#!/usr/bin/env bash
# test_docker.sh - builds Stampede's image with docker/Dockerfile and checks it
# for real: `hash-password`, STOMP round trips from the host as a user of a
# mounted users file (and one run with STAMPEDE_ALLOW_REMOTE_UNAUTHENTICATED),
# the refusals (no users: remote clients get ERROR Bad CONNECT while a
# loopback client in the container gets in; a wrong passcode), the non-root
# user, worker count under --cpus, the health check, a graceful `docker stop`,
# the image size, and docker/compose.yaml with its users-file example; then
# the cluster (issue 14): docker/Dockerfile.nats and docker/compose.cluster.yaml
# (three nodes on one NATS server) with a STOMP round trip across nodes.
#
#   tests/docker/test_docker.sh [SOURCE_ROOT]
#
# Starts dockerd when none runs (and stops it again at the end), makes the
# debian:bookworm-slim base image locally when no registry has served it
# (docker/build-base-image.sh), and removes the containers and the image tag it
# made; the daemon's layer cache stays, so a second run builds warm.
# Prints PASS/FAIL/SKIP per check and ends with "N passed, N failed"; exits 1
# when a check failed, 77 (meson's skip) when it may not use docker at all.
#
# Environment:
#   DOCKER                  docker client (default: docker)
#   STAMPEDE_DOCKER_SOURCE  worktree (default: tracked and untracked files that
#                           git does not ignore) or head (`git archive HEAD`)
#   STAMPEDE_DOCKER_KEEP=1  keep the image, tagged stampede:test
#   STAMPEDE_DOCKER_BUILD_CPUS=N  limit the build's RUN steps to N CPUs (classic builder)
#   STAMPEDE_DOCKER_ONLY=cluster  only the image build, hash-password (the users
#                           file) and the cluster checks (check_cluster)
# Every step runs under `timeout`; the whole run is bounded by about 25 minutes
# in the worst case, about 2 minutes when the build is cached. The cluster
# check takes about 65 s while the nodes never join NATS (its waits expire),
# its nodes are healthy about 12 s after `up`.
set -uo pipefail

top=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
docker=${DOCKER:-docker}
py=/usr/bin/python3
run_id=stampede-test-$$
image=stampede:test-$$
nats_image=stampede-nats:test-$$
[ "${STAMPEDE_DOCKER_KEEP:-0}" = 1 ] && image=stampede:test && nats_image=stampede-nats:test
work=$(mktemp -d /tmp/stampede-docker-test.XXXXXX)
passed=0 failed=0
started_dockerd=
containers=()
volumes=()
compose=()
# The test's user, in a users file made with the image's own hash-password
# ($auth/users, with $auth/acl) and mounted read-only into the brokers.
auth=$work/auth
login=app
passcode="pw:$(od -An -N9 -tx1 /dev/urandom | tr -d ' \n')"

pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
skip() { echo "SKIP: $*"; }
note() { echo "  $*"; }
check() { # check NAME COMMAND...: PASS when COMMAND succeeds
    local name=$1
    shift
    if "$@"; then pass "$name"; else fail "$name"; return 1; fi
}

finish() {
    local c
    for c in "${containers[@]}"; do
        timeout 30 "$docker" rm -f -v "$c" >/dev/null 2>&1
    done
    for c in "${volumes[@]}"; do
        timeout 30 "$docker" volume rm -f "$c" >/dev/null 2>&1
    done
    if [ -f "$work/compose.up" ]; then
        timeout 60 "${compose[@]}" -p "$run_id" -f "$work/compose.yaml" down -v >/dev/null 2>&1
    fi
    if [ -f "$work/cluster.up" ]; then
        timeout 90 "${compose[@]}" -p "$run_id-cluster" -f "$work/compose.cluster.yaml" down -v \
            >/dev/null 2>&1
    fi
    if [ "${STAMPEDE_DOCKER_KEEP:-0}" != 1 ] && docker_ok; then
        remove_built_images
        timeout 30 "$docker" rmi --no-prune "$nats_image" >/dev/null 2>&1
    fi
    if [ -n "$started_dockerd" ]; then
        kill "$started_dockerd" 2>/dev/null
        for _ in $(seq 40); do kill -0 "$started_dockerd" 2>/dev/null || break; sleep 0.5; done
        kill -0 "$started_dockerd" 2>/dev/null && kill -9 "$started_dockerd" 2>/dev/null
        echo "  stopped the dockerd this test started"
    fi
    rm -rf "$work"
}
trap finish EXIT
trap 'exit 130' INT TERM

# Removes the image and every intermediate image this run's build made, newest
# first, but not the base image and dependency layers (FROM, the set-up script,
# apt-get), so the next build stays warm. Reads the classic builder's log; with
# BuildKit there is nothing to parse and only the tag goes.
remove_built_images() {
    local ids
    [ -f "$work/build.log" ] && ids=$(awk '
        /^Step [0-9]+\/[0-9]+ : / { instr = substr($0, index($0, " : ") + 3); cached = 0; next }
        /^ ---> Using cache/ { cached = 1; next }
        /^ ---> [0-9a-f]+$/ && !cached && instr !~ /^FROM|scripts\/dev\.sh|apt-get/ { print $2 }
        ' "$work/build.log" | tac)
    timeout 30 "$docker" rmi --no-prune "$image" >/dev/null 2>&1
    local id
    for id in ${ids:-}; do
        timeout 30 "$docker" rmi --no-prune "$id" >/dev/null 2>&1
    done
}

docker_ok() { timeout 10 "$docker" info >/dev/null 2>&1; }

# ------------------------------------------------------------------ the daemon
start_dockerd() {
    if docker_ok; then
        note "using the running docker daemon"
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "SKIP: no usable docker daemon and not root to start one"
        exit 77
    fi
    if ! command -v dockerd >/dev/null; then
        fail "dockerd is not installed (apt-get install docker.io)"
        return 1
    fi
    local log=/var/log/stampede-test-dockerd.log
    setsid dockerd >"$log" 2>&1 </dev/null &
    started_dockerd=$!
    for _ in $(seq 60); do
        docker_ok && { note "started dockerd (pid $started_dockerd, log $log)"; return 0; }
        kill -0 "$started_dockerd" 2>/dev/null || break
        sleep 0.5
    done
    tail -n 5 "$log"
    fail "dockerd did not come up"
    return 1
}

# ------------------------------------------------------------ building images
source_tar() {
    if [ "${STAMPEDE_DOCKER_SOURCE:-worktree}" = head ]; then
        git -C "$top" archive HEAD
    elif git -C "$top" rev-parse --git-dir >/dev/null 2>&1; then
        # What git would commit: tracked and untracked files it does not ignore
        # (no build directories, no node_modules, no .git).
        (cd "$top" && git ls-files -z -co --exclude-standard |
            tar --null --ignore-failed-read -T - -cf - 2>/dev/null)
    else
        tar -C "$top" --exclude=.git --exclude='./build*' --exclude=node_modules -cf - .
    fi
}

build_image() {
    local t0 t1
    t0=$(date +%s)
    local limit=()
    [ -n "${STAMPEDE_DOCKER_BUILD_CPUS:-}" ] &&
        limit=(--cpu-period 100000 --cpu-quota "$((STAMPEDE_DOCKER_BUILD_CPUS * 100000))")
    if ! source_tar | timeout 1500 "$docker" build --force-rm "${limit[@]}" -f docker/Dockerfile \
        -t "$image" - \
        >"$work/build.log" 2>&1; then
        tail -n 25 "$work/build.log" | sed 's/^/  | /'
        fail "docker build -f docker/Dockerfile"
        return 1
    fi
    t1=$(date +%s)
    pass "docker build -f docker/Dockerfile ($((t1 - t0)) s)"
    local warnings
    warnings=$(grep -E '\.[ch]:[0-9]+:[0-9]+: warning:' "$work/build.log" | sort -u)
    if [ -n "$warnings" ]; then
        note "the release build (-O3) printed $(wc -l <<<"$warnings") distinct compiler warnings:"
        head -n 10 <<<"$warnings" | sed 's/^/  | /'
    fi
}

check_size() {
    local bytes
    bytes=$("$docker" image inspect -f '{{.Size}}' "$image")
    note "image size $((bytes / 1000000)) MB ($bytes bytes)"
    check "image is under 100 MB" [ "$bytes" -lt 100000000 ]
}

check_libraries() {
    local out missing nmods
    # The binaries and any loadable module (issue 14's NATS module, once the
    # image installs it under /usr/local/lib/stampede/).
    out=$(timeout 30 "$docker" run --rm --entrypoint /bin/sh "$image" -c \
        'for b in /usr/local/bin/stampede /usr/local/bin/stampede-bench /usr/local/lib/stampede/*.so; do
             [ -f "$b" ] && { echo "== $b"; ldd "$b"; }; done; true' 2>&1)
    missing=$(grep -c 'not found' <<<"$out")
    nmods=$(grep -c '^== /usr/local/lib/stampede/' <<<"$out")
    if grep -q '== /usr/local/bin/stampede$' <<<"$out" && [ "$missing" -eq 0 ]; then
        pass "the runtime image has every shared library stampede links ($nmods modules)"
    else
        echo "$out" | sed 's/^/  | /'
        fail "the runtime image has every shared library stampede links ($nmods modules)"
    fi
    if grep -q 'stampede-bench' <<<"$out"; then
        pass "stampede-bench is in the image"
    else
        skip "stampede-bench is not built yet (benchmarks/)"
    fi
}

# ------------------------------------------------------------ the containers
# Waits for the start line, prints the worker count it names (or nothing).
workers_logged() { # workers_logged CONTAINER
    local c=$1 line
    for _ in $(seq 100); do
        line=$("$docker" logs "$c" 2>&1 | grep -m1 -oiE 'starting with [0-9]+ workers?|workers:? *[0-9]+|[0-9]+ workers')
        if [ -n "$line" ]; then
            grep -oE '[0-9]+' <<<"$line"
            return 0
        fi
        [ "$("$docker" inspect -f '{{.State.Running}}' "$c" 2>/dev/null)" = true ] || return 1
        sleep 0.1
    done
    return 1
}

show_logs() { "$docker" logs "$1" 2>&1 | tail -n 15 | sed 's/^/  | /'; }

run_broker() { # run_broker NAME [docker run options...]: detached, registered for removal
    local name=$1
    shift
    containers+=("$name")
    timeout 30 "$docker" run -d --name "$name" "$@" >/dev/null
}

host_port() { # host_port CONTAINER PORT: the loopback port docker published it on
    timeout 10 "$docker" port "$1" "$2/tcp" 2>/dev/null | head -n 1
}

# Which transports this build of the broker offers. A transport is skipped
# only when the broker itself says it is not in this build; any other failure
# to start leaves the transport on, so its checks fail loudly.
has_ws=
not_in_build() { # not_in_build CONTAINER: its log says a listener's scheme is not built in
    "$docker" logs "$1" 2>&1 |
        grep -qiE 'only [a-z+:/ ,]+ listeners are available|not (available|supported) in this build'
}
offers() { # offers URL: 1 unless the broker says URL's scheme is not in this build
    local c=$run_id-probe-$RANDOM
    run_broker "$c" "$image" --workers 1 --listen "$1" || return 1
    wait_log "$c" 'listening on|could not start|rror' >/dev/null
    if not_in_build "$c"; then
        echo ""
    else
        echo 1
    fi
    timeout 30 "$docker" rm -f -v "$c" >/dev/null 2>&1
}
probe_features() {
    has_ws=$(offers ws://127.0.0.1:0/ws)
    if [ -n "$has_ws" ]; then note "WebSocket in this build: yes"; else note "WebSocket in this build: no"; fi
}

wait_log() { # wait_log CONTAINER REGEX: until the log matches (10 s) or it exits
    for _ in $(seq 100); do
        "$docker" logs "$1" 2>&1 | grep -qE "$2" && return 0
        [ "$("$docker" inspect -f '{{.State.Running}}' "$1" 2>/dev/null)" = true ] || return 1
        sleep 0.1
    done
    return 1
}

roundtrip() { # roundtrip LABEL URL [stomp_roundtrip.py options...]
    local out label=$1 url=$2
    shift 2
    out=$(timeout 30 "$py" "$here/stomp_roundtrip.py" "$url" --timeout 10 "$@" 2>&1)
    note "$out"
    check "$label" grep -q ' ok ' <<<"$out"
}

# The CONNECT must be answered with ERROR message:Bad CONNECT.
refusal() { # refusal LABEL URL [stomp_roundtrip.py options...]
    local out rc label=$1 url=$2
    shift 2
    out=$(timeout 30 "$py" "$here/stomp_roundtrip.py" "$url" --timeout 10 --expect-refused "$@" 2>&1)
    rc=$?
    note "$out"
    check "$label" [ $rc -eq 0 ]
}

# With the test's users file: its own login and passcode.
as_user=(--login "$login" --passcode "$passcode")
# The docker run options that give a broker the test's users.
auth_opts=(-v "$auth/users:/etc/stampede/users:ro" -v "$auth/acl:/etc/stampede/acl:ro"
    -e STAMPEDE_USERS_FILE=/etc/stampede/users -e STAMPEDE_ACL_FILE=/etc/stampede/acl)

# `docker run --rm -i IMAGE hash-password`: the password on stdin, an argon2id
# hash on stdout. Makes the test's users and ACL files with it.
check_hash_password() {
    local hash rc
    hash=$(printf '%s\n' "$passcode" | timeout 60 "$docker" run --rm -i "$image" hash-password 2>"$work/hash.err")
    rc=$?
    note "hash-password printed: ${hash:0:60}..."
    # shellcheck disable=SC2016 # a literal pattern
    if [ $rc -ne 0 ] || ! grep -qE \
        '^\$argon2id\$v=19\$m=[0-9]+,t=[0-9]+,p=[0-9]+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$' <<<"$hash"; then
        sed 's/^/  | /' "$work/hash.err"
        fail "docker run --rm -i IMAGE hash-password prints an argon2id hash (exit $rc)"
        return 1
    fi
    pass "docker run --rm -i IMAGE hash-password prints an argon2id hash"
    mkdir -p "$auth"
    printf '# made by test_docker.sh\n%s:%s\n' "$login" "$hash" >"$auth/users"
    printf '%s readwrite /topic/**\n%s readwrite /queue/**\n' "$login" "$login" >"$auth/acl"
    # Readable by the image's group (gid 10001) only, as the compose example says.
    if chown root:10001 "$auth/users" "$auth/acl" 2>/dev/null; then
        chmod 0640 "$auth/users" "$auth/acl"
    else
        chmod 0644 "$auth/users" "$auth/acl"
    fi
}

check_main_container() {
    local c=$run_id-main ncpu n addr port env=()
    ncpu=$("$docker" info -f '{{.NCPU}}')
    # shellcheck disable=SC2054 # the commas belong to the value
    [ -n "$has_ws" ] && env=(-e STAMPEDE_LISTEN=stomp://0.0.0.0:61613,ws://0.0.0.0:15674/ws)
    if ! run_broker "$c" -p 127.0.0.1::61613 -p 127.0.0.1::15674 --health-interval 1s \
        --health-start-period 1s "${env[@]}" "${auth_opts[@]}" "$image"; then
        fail "docker run the image"
        return 1
    fi
    if n=$(workers_logged "$c"); then
        pass "the broker starts and logs its worker count ($n)"
        check "with no CPU limit the broker runs one worker per CPU ($n of $ncpu)" \
            [ "$n" -eq "$ncpu" ]
    else
        show_logs "$c"
        note "exit code $("$docker" inspect -f '{{.State.ExitCode}}' "$c")"
        fail "the broker starts and logs its worker count"
        return 1
    fi

    addr=$(host_port "$c" 61613)
    port=${addr##*:}
    check "61613 is published on 127.0.0.1 only ($addr)" [ "${addr%:*}" = 127.0.0.1 ]
    wait_log "$c" 'ACL rules from' &&
        "$docker" logs "$c" 2>&1 | grep -m2 -E 'users from|ACL rules' | sed 's/^/  | /'
    roundtrip "STOMP round trip over TCP from the host, as a user of the mounted users file" \
        "stomp://127.0.0.1:$port" "${as_user[@]}" || show_logs "$c"
    check_websocket "$c" "$n"
    refusal "users file: a wrong passcode gets ERROR Bad CONNECT" \
        "stomp://127.0.0.1:$port" --login "$login" --passcode "not-$passcode"
    refusal "users file: a CONNECT without login gets ERROR Bad CONNECT" \
        "stomp://127.0.0.1:$port"

    local pid uid
    pid=$("$docker" inspect -f '{{.State.Pid}}' "$c")
    uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
    [ -n "$uid" ] || uid=$(timeout 10 "$docker" top "$c" -o uid 2>/dev/null | awk 'NR == 2 {print $1}')
    note "the broker (host pid $pid) runs as uid $uid, $(timeout 10 "$docker" exec "$c" id 2>&1)"
    check "the broker runs as a non-root user" [ "${uid:-0}" != 0 ]

    local health=
    for _ in $(seq 100); do
        health=$("$docker" inspect -f '{{.State.Health.Status}}' "$c" 2>/dev/null)
        [ "$health" = starting ] || break
        sleep 0.2
    done
    check "the HEALTHCHECK reports healthy ($health)" [ "$health" = healthy ]
    note "last health check: $("$docker" inspect -f \
        '{{with .State.Health}}{{range .Log}}{{.ExitCode}} {{.Output}}{{end}}{{end}}' "$c" |
        tail -n 1)"

    local t0 t1 code
    t0=$(date +%s%N)
    timeout 60 "$docker" stop -t 10 "$c" >/dev/null
    t1=$(date +%s%N)
    code=$("$docker" inspect -f '{{.State.ExitCode}}' "$c")
    note "docker stop took $(((t1 - t0) / 1000000)) ms, exit code $code"
    check "docker stop (SIGTERM): the broker exits 0" [ "$code" = 0 ]
    check "docker stop (SIGTERM): the broker is gone within 5 s of a 10 s timeout" \
        [ $(((t1 - t0) / 1000000)) -lt 5000 ]
}

# The WebSocket listener (issue 4): a round trip and GET /healthz, once the
# broker logs a ws:// listener.
check_websocket() { # check_websocket CONTAINER WORKERS
    local c=$1 workers=$2 port out
    if [ -z "$has_ws" ]; then
        skip "STOMP over WebSocket and /healthz (the broker has no ws:// listener yet)"
        return 0
    fi
    if ! wait_log "$c" 'listening on ws://'; then
        fail "the broker listens on ws:// (STAMPEDE_LISTEN)"
        show_logs "$c"
        return 1
    fi
    port=$(host_port "$c" 15674)
    port=${port##*:}
    roundtrip "STOMP round trip over WebSocket from the host, as a user" "ws://127.0.0.1:$port/ws" \
        "${as_user[@]}"
    out=$(timeout 15 "$py" - "$port" "$workers" <<'PY' 2>&1
import json, sys, urllib.request
r = urllib.request.urlopen("http://127.0.0.1:%s/healthz" % sys.argv[1], timeout=10)
doc = json.loads(r.read())
print(r.status, doc)
sys.exit(0 if r.status == 200 and doc.get("status") == "ok"
         and doc.get("workers") == int(sys.argv[2]) else 1)
PY
    )
    local rc=$?
    note "/healthz: $out"
    check "GET /healthz from the host: 200, status ok, $workers workers" [ $rc -eq 0 ]
}

# The secure default (issue 11): with no users configured, only loopback
# clients may connect, and a client through a published port is not loopback
# (the container sees the bridge's address): ERROR Bad CONNECT. A client in
# the container itself (bash's /dev/tcp on 127.0.0.1) still gets CONNECTED.
check_default_refuses() {
    local c=$run_id-nousers port out
    if ! run_broker "$c" -p 127.0.0.1::61613 -p 127.0.0.1::15674 "$image"; then
        fail "docker run the image with its defaults"
        return 1
    fi
    if ! wait_log "$c" 'listening on stomp://'; then
        show_logs "$c"
        fail "the broker starts with its defaults"
        return 1
    fi
    port=$(host_port "$c" 61613)
    refusal "no users: a client from the host gets ERROR Bad CONNECT" \
        "stomp://127.0.0.1:${port##*:}" || show_logs "$c"
    if [ -n "$has_ws" ] && wait_log "$c" 'listening on ws://'; then
        port=$(host_port "$c" 15674)
        refusal "no users: a WebSocket client from the host gets ERROR Bad CONNECT" \
            "ws://127.0.0.1:${port##*:}/ws"
    fi
    note "broker log: $("$docker" logs "$c" 2>&1 | grep -m1 'login failed' | cut -c1-200)"
    # shellcheck disable=SC2016 # expanded by the container's bash
    out=$(timeout 20 "$docker" exec "$c" bash -c '
        exec 3<>/dev/tcp/127.0.0.1/61613 || exit 2
        printf "CONNECT\naccept-version:1.2\nhost:/\n\n\0" >&3
        IFS= read -r -t 5 line <&3
        echo "$line"' 2>&1)
    note "a loopback client in the container got: $out"
    check "no users: a loopback client inside the container gets CONNECTED" [ "$out" = CONNECTED ]
    timeout 30 "$docker" rm -f -v "$c" >/dev/null 2>&1
}

# TLS (issue 5): a certificate and key mounted read-only at /etc/stampede/tls,
# the way README.md ("Run in Docker") says, and a round trip over stomp+ssl://
# (and wss:// with WebSocket). No users here: this is the run with
# STAMPEDE_ALLOW_REMOTE_UNAUTHENTICATED=yes, which lets anyone in.
check_tls() {
    local c=$run_id-tls dir=$work/tls listen port
    mkdir -p "$dir"
    if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=localhost -keyout "$dir/tls.key" -out "$dir/tls.crt" >/dev/null 2>&1; then
        fail "openssl makes a test certificate"
        return 1
    fi
    # The image's user is uid/gid 10001: the key readable by its group only.
    chmod 0644 "$dir/tls.crt"
    if chown root:10001 "$dir" "$dir/tls.key" 2>/dev/null; then
        chmod 0750 "$dir" && chmod 0640 "$dir/tls.key"
    else
        chmod 0755 "$dir" && chmod 0644 "$dir/tls.key"
    fi
    listen=stomp+ssl://0.0.0.0:61614
    [ -n "$has_ws" ] && listen=$listen,wss://0.0.0.0:15673/ws
    if ! run_broker "$c" -p 127.0.0.1::61614 -p 127.0.0.1::15673 \
        -v "$dir:/etc/stampede/tls:ro" -e STAMPEDE_LISTEN="$listen" \
        -e STAMPEDE_ALLOW_REMOTE_UNAUTHENTICATED=yes \
        -e STAMPEDE_TLS_CERT=/etc/stampede/tls/tls.crt \
        -e STAMPEDE_TLS_KEY=/etc/stampede/tls/tls.key "$image"; then
        fail "docker run with TLS"
        return 1
    fi
    if ! wait_log "$c" 'listening on stomp\+ssl://'; then
        if not_in_build "$c"; then
            skip "TLS with a mounted certificate (the broker has no TLS listener yet)"
            return 0
        fi
        show_logs "$c"
        fail "the broker listens on stomp+ssl:// with the mounted certificate"
        return 1
    fi
    port=$(host_port "$c" 61614)
    roundtrip "STOMP round trip over TLS with the mounted certificate, no login (allow-remote-unauthenticated)" \
        "stomp+ssl://127.0.0.1:${port##*:}" || show_logs "$c"
    [ -n "$has_ws" ] || return 0
    port=$(host_port "$c" 15673)
    roundtrip "STOMP round trip over WebSocket + TLS" "wss://127.0.0.1:${port##*:}/ws" ||
        show_logs "$c"
}

# The same HEALTHCHECK with no broker behind it must turn unhealthy.
check_unhealthy() {
    local c=$run_id-nobroker health=
    run_broker "$c" --entrypoint /bin/sleep --health-interval 1s --health-retries 1 \
        --health-start-period 0s "$image" 60 || { fail "docker run sleep"; return 1; }
    for _ in $(seq 50); do
        health=$("$docker" inspect -f '{{.State.Health.Status}}' "$c" 2>/dev/null)
        [ "$health" = starting ] || break
        sleep 0.2
    done
    check "the HEALTHCHECK reports unhealthy with no broker listening ($health)" \
        [ "$health" = unhealthy ]
    timeout 30 "$docker" rm -f -v "$c" >/dev/null 2>&1
}

check_cpus_one() {
    local c=$run_id-cpus1 n
    if ! run_broker "$c" --cpus 1 "$image"; then
        fail "docker run --cpus 1"
        return 1
    fi
    if n=$(workers_logged "$c"); then
        check "docker run --cpus 1 gives 1 worker (logged $n)" [ "$n" -eq 1 ]
    else
        show_logs "$c"
        fail "docker run --cpus 1 gives 1 worker (no worker count logged)"
    fi
    check "STAMPEDE_WORKERS=3 beats the CPU limit" check_workers_env
}

check_workers_env() {
    local c=$run_id-env n
    run_broker "$c" --cpus 1 -e STAMPEDE_WORKERS=3 "$image" || return 1
    n=$(workers_logged "$c") || { show_logs "$c"; return 1; }
    [ "$n" -eq 3 ]
}

# ------------------------------------------------------------------ compose
find_compose() { # sets compose=(...); false when there is none
    if command -v docker-compose >/dev/null; then
        compose=(docker-compose)
    elif "$docker" compose version >/dev/null 2>&1; then
        compose=("$docker" compose)
    else
        return 1
    fi
}

check_compose() {
    local dc
    if ! find_compose; then
        skip "docker/compose.yaml (neither docker-compose nor docker compose is installed)"
        return 0
    fi
    dc=("${compose[@]}" -p "$run_id" -f "$work/compose.yaml")
    # The same file, pointed at this run's image and with no fixed host port, so
    # it neither rebuilds nor collides with a broker already on 61613, and with
    # its users-file example uncommented: ./auth/users and ./auth/acl next to
    # the copy are the test's own ($auth).
    sed -e "s|image: stampede:latest|image: $image|" \
        -e 's|"127.0.0.1:[^"]*:61613"|"127.0.0.1::61613"|' \
        -e "s|context: \.\.|context: $top|" \
        -e 's|^\( *\)# \(STAMPEDE_USERS_FILE: \)|\1\2|' \
        -e 's|^\( *\)# \(STAMPEDE_ACL_FILE: \)|\1\2|' \
        -e 's|^\( *\)# \(- \./auth/\)|\1\2|' \
        "$top/docker/compose.yaml" >"$work/compose.yaml"
    if [ "$(grep -cE '^ *(STAMPEDE_USERS_FILE|STAMPEDE_ACL_FILE): |^ *- \./auth/(users|acl):' \
        "$work/compose.yaml")" -ne 4 ]; then
        fail "docker/compose.yaml has the users-file example (STAMPEDE_USERS_FILE, STAMPEDE_ACL_FILE, ./auth/ volumes)"
        return 1
    fi
    if ! timeout 30 "${dc[@]}" config -q 2>"$work/compose.err"; then
        sed 's/^/  | /' "$work/compose.err"
        fail "docker/compose.yaml is valid"
        return 1
    fi
    pass "docker/compose.yaml is valid"
    if ! timeout 30 "$docker" run --rm --entrypoint test "$image" -x /usr/local/bin/stampede-bench; then
        skip "compose: bench against the broker (stampede-bench is not in the image yet)"
        return 0
    fi
    touch "$work/compose.up"
    local out rc
    # A functional run at a modest fixed rate (not a benchmark: the machine is shared).
    out=$(timeout 180 "${dc[@]}" run --rm bench --preset fanout --rate 20000 --threads 1 \
        --duration 2s --warmup 1s --login "$login" --passcode "$passcode" 2>&1)
    rc=$?
    echo "$out" | grep -E 'delivered|lost|sustained|rror|refused' | sed 's/^/  | /'
    local name="compose: bench runs fan-out against the broker (users file example) as a user without loss (exit $rc)"
    if [ $rc -eq 0 ] && grep -qE '\blost 0 ' <<<"$out"; then pass "$name"; else fail "$name"; fi
}

# Durable queues (issue 12): the image keeps its journal in the volume
# /var/lib/stampede; a persistent message whose RECEIPT came survives
# `docker kill` (SIGKILL) and is there for a new container on the volume.
check_persistence() {
    local vol=$run_id-data c1=$run_id-dur1 c2=$run_id-dur2 port body
    body="kept-$RANDOM-$RANDOM"
    volumes+=("$vol")
    if ! timeout 30 "$docker" volume create "$vol" >/dev/null ||
        ! run_broker "$c1" -p 127.0.0.1::61613 -v "$vol:/var/lib/stampede" "${auth_opts[@]}" \
            "$image" --listen stomp://0.0.0.0:61613; then
        fail "durable: docker run with a volume at /var/lib/stampede"
        return 1
    fi
    wait_log "$c1" 'listening on' || show_logs "$c1"
    check "durable: the image journals to its volume (log names /var/lib/stampede)" \
        sh -c "'$docker' logs '$c1' 2>&1 | grep -q 'data dir /var/lib/stampede: recovered 0'"
    port=$(host_port "$c1" 61613)
    port=${port##*:}
    local out
    out=$(timeout 30 "$py" "$here/stomp_roundtrip.py" "stomp://127.0.0.1:$port" --timeout 10 \
        "${as_user[@]}" --send-persistent "durable-test:$body" 2>&1)
    note "$out"
    check "durable: a persistent SEND gets its RECEIPT" grep -q ' ok ' <<<"$out"
    timeout 30 "$docker" kill "$c1" >/dev/null 2>&1 # SIGKILL: no clean shutdown
    if ! run_broker "$c2" -p 127.0.0.1::61613 -v "$vol:/var/lib/stampede" "${auth_opts[@]}" \
        "$image" --listen stomp://0.0.0.0:61613; then
        fail "durable: a new container on the same volume starts"
        return 1
    fi
    wait_log "$c2" 'listening on' || show_logs "$c2"
    check "durable: the new container recovered the message (log)" \
        sh -c "'$docker' logs '$c2' 2>&1 | grep -q 'recovered 1 persistent'"
    port=$(host_port "$c2" 61613)
    port=${port##*:}
    out=$(timeout 30 "$py" "$here/stomp_roundtrip.py" "stomp://127.0.0.1:$port" --timeout 10 \
        "${as_user[@]}" --receive "durable-test:$body" 2>&1)
    note "$out"
    check "durable: after docker kill, the receipted message is delivered by the new container" \
        grep -q ' ok ' <<<"$out" || show_logs "$c2"
}

# ------------------------------------------------------------------ cluster
# Issue 14: docker/Dockerfile.nats (Debian's nats-server, non-root, JetStream
# in a volume) and docker/compose.cluster.yaml (node1..node3 on one NATS
# server), with the users-file example uncommented and this run's images and
# free host ports. Each node must turn healthy and log that it joined NATS,
# and a SEND on one node must reach a subscriber on another. Runs alone with
# STAMPEDE_DOCKER_ONLY=cluster. Needs the broker's cluster code (until it is
# merged, the "connected to NATS" and cross-node checks fail).
build_nats_image() {
    local t0=$SECONDS
    if ! timeout 600 "$docker" build --force-rm -t "$nats_image" - <"$top/docker/Dockerfile.nats" \
        >"$work/nats-build.log" 2>&1; then
        tail -n 25 "$work/nats-build.log" | sed 's/^/  | /'
        fail "docker build docker/Dockerfile.nats"
        return 1
    fi
    pass "docker build docker/Dockerfile.nats ($((SECONDS - t0)) s)"
}

# Container id of a service of the cluster project.
cluster_id() { timeout 30 "${dc_cluster[@]}" ps -q "$1" 2>/dev/null | head -n 1; }

wait_healthy() { # wait_healthy CONTAINER SECONDS: prints the last status
    local health='' end=$((SECONDS + $2))
    while [ $SECONDS -lt $end ]; do
        health=$("$docker" inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$1" \
            2>/dev/null)
        [ "$health" = healthy ] && break
        sleep 0.5
    done
    echo "${health:-none}"
}

wait_log_for() { # wait_log_for CONTAINER FIXED-STRING SECONDS
    local end=$((SECONDS + $3))
    while [ $SECONDS -lt $end ]; do
        "$docker" logs "$1" 2>&1 | grep -qF -- "$2" && return 0
        sleep 0.5
    done
    return 1
}

dc_cluster=()
check_cluster() {
    local t0=$SECONDS f=$work/compose.cluster.yaml
    if ! find_compose; then
        skip "docker/compose.cluster.yaml (neither docker-compose nor docker compose is installed)"
        return 0
    fi
    build_nats_image || return 1
    dc_cluster=("${compose[@]}" -p "$run_id-cluster" -f "$f")
    sed -e "s|image: stampede:latest|image: $image|" \
        -e "s|image: stampede-nats:latest|image: $nats_image|" \
        -e 's|"127.0.0.1:[^"]*:61613"|"127.0.0.1::61613"|' \
        -e "s|context: \.\.\$|context: $top|" \
        -e "s|context: \.\$|context: $top/docker|" \
        -e 's|^\( *\)# \(STAMPEDE_USERS_FILE: \)|\1\2|' \
        -e 's|^\( *\)# \(STAMPEDE_ACL_FILE: \)|\1\2|' \
        -e 's|^\( *\)# \(- \./auth/\)|\1\2|' \
        "$top/docker/compose.cluster.yaml" >"$f"
    if [ "$(grep -cE '^ *(STAMPEDE_USERS_FILE|STAMPEDE_ACL_FILE): |^ *- \./auth/(users|acl):' "$f")" -ne 8 ]; then
        fail "docker/compose.cluster.yaml has the users-file example for every node"
        return 1
    fi
    if ! timeout 30 "${dc_cluster[@]}" config -q 2>"$work/cluster.err"; then
        sed 's/^/  | /' "$work/cluster.err"
        fail "docker/compose.cluster.yaml is valid"
        return 1
    fi
    pass "docker/compose.cluster.yaml is valid"
    touch "$work/cluster.up"
    if ! timeout 180 "${dc_cluster[@]}" up -d >"$work/cluster.up.log" 2>&1; then
        tail -n 20 "$work/cluster.up.log" | sed 's/^/  | /'
        fail "docker compose -f docker/compose.cluster.yaml up -d"
        timeout 30 "${dc_cluster[@]}" logs --tail 20 2>&1 | sed 's/^/  | /'
        return 1
    fi
    local nats_c uid health
    nats_c=$(cluster_id nats)
    health=$(wait_healthy "$nats_c" 30)
    check "cluster: the NATS server is healthy ($health)" [ "$health" = healthy ] ||
        show_logs "$nats_c"
    uid=$(timeout 10 "$docker" exec "$nats_c" id -u 2>/dev/null)
    check "cluster: the NATS server runs as a non-root user (uid ${uid:-?})" [ "${uid:-0}" != 0 ]
    check "cluster: NATS publishes no port on the host" \
        [ -z "$(timeout 10 "$docker" port "$nats_c" 2>/dev/null)" ]
    check "cluster: JetStream keeps its store in the volume (/data/jetstream)" \
        wait_log_for "$nats_c" 'Store Directory: "/data/jetstream"' 10
    # One deadline for all three nodes: 60 s to turn healthy (the image's
    # HEALTHCHECK runs every 10 s), 30 s more to join NATS.
    local node c ports=() until_healthy=$((SECONDS + 60)) until_joined
    for node in node1 node2 node3; do
        c=$(cluster_id "$node")
        health=$(wait_healthy "$c" $((until_healthy > SECONDS ? until_healthy - SECONDS : 1)))
        check "cluster: $node is healthy ($health)" [ "$health" = healthy ] || show_logs "$c"
        ports+=("$(host_port "$c" 61613)")
    done
    note "nodes healthy $((SECONDS - t0)) s into the check, STOMP on ${ports[*]}"
    until_joined=$((SECONDS + 30))
    for node in node1 node2 node3; do
        c=$(cluster_id "$node")
        if ! check "cluster: $node logs 'cluster: connected to NATS at nats://nats:4222 as node $node'" \
            wait_log_for "$c" "cluster: connected to NATS at nats://nats:4222 as node $node" \
            $((until_joined > SECONDS ? until_joined - SECONDS : 1)); then
            show_logs "$c"
        fi
    done
    # The NATS image takes the nodes' largest frames (max_payload 8 MB): no
    # node warns that larger messages would stay local.
    c=$(cluster_id node1)
    check "cluster: node1 does not warn about NATS's max_payload" \
        bash -c '! "$1" logs "$2" 2>&1 | grep -qF max_payload' _ "$docker" "$c"
    roundtrip "cluster: a SEND (with receipt) on node1 reaches a /topic subscriber on node2" \
        "stomp://${ports[1]}" --send-url "stomp://${ports[0]}" "${as_user[@]}"
    roundtrip "cluster: a SEND (with receipt) on node3 reaches a /topic subscriber on node1" \
        "stomp://${ports[0]}" --send-url "stomp://${ports[2]}" "${as_user[@]}"
    # Queues are one queue across the nodes, kept in JetStream: stored
    # through node2 (its RECEIPT means JetStream has it), consumed on node3.
    roundtrip "cluster: a /queue message receipted on node2 is consumed on node3" \
        "stomp://${ports[1]}" --send-persistent "cluster-$run_id:across-nodes" "${as_user[@]}"
    roundtrip "cluster: node3 gets that /queue message" \
        "stomp://${ports[2]}" --receive "cluster-$run_id:across-nodes" "${as_user[@]}"
    if timeout 90 "${dc_cluster[@]}" down -v >/dev/null 2>&1; then
        rm -f "$work/cluster.up"
        pass "cluster: docker compose down -v"
    else
        fail "cluster: docker compose down -v (within 90 s)"
    fi
    note "the cluster check took $((SECONDS - t0)) s"
}

# ------------------------------------------------------------------- main
main() {
    echo "Docker image test ($(date -u +%H:%M:%S) UTC, source: ${STAMPEDE_DOCKER_SOURCE:-worktree})"
    start_dockerd || return
    if timeout 600 "$top/docker/build-base-image.sh" debian:bookworm-slim 2>"$work/base.log"; then
        pass "base image debian:bookworm-slim ($(grep -q importing "$work/base.log" && echo "made locally" || echo present))"
    else
        sed 's/^/  | /' "$work/base.log"
        fail "base image debian:bookworm-slim"
        return
    fi
    build_image || return
    case "${STAMPEDE_DOCKER_ONLY:-}" in
    "") ;;
    cluster)
        check_hash_password
        check_cluster
        return
        ;;
    *)
        fail "STAMPEDE_DOCKER_ONLY=$STAMPEDE_DOCKER_ONLY: only 'cluster' is known"
        return
        ;;
    esac
    check_size
    check_libraries
    check_hash_password
    probe_features
    check_main_container
    check_default_refuses
    check_unhealthy
    check_tls
    check_cpus_one
    check_persistence
    check_compose
    check_cluster
}

main
finish
trap - EXIT
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

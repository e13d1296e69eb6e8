#!/usr/bin/env bash
# dev.sh - the project's one entry point for set-up, running and testing.
#
#   scripts/dev.sh run [stampede flags...]  install what is missing, build, run the broker
#   scripts/dev.sh test                     install what is missing, build, run every suite
#                                           (plain build, an ASan+UBSan build, the fuzzers,
#                                           then the broker under ThreadSanitizer)
#   scripts/dev.sh compare [compare.py options...]
#                                           install RabbitMQ too, build a release broker and
#                                           run benchmarks/compare.sh against both
#   scripts/dev.sh deps                     only install what is missing
#   scripts/dev.sh deps-build               only what building needs (the Docker build stage)
#
# Installs Debian packages with apt-get and npm packages with npm (as root),
# only when they are missing, so a second run is fast.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

# What `meson setup -Dtests=false && meson compile` needs (libnats-dev: the
# NATS C client 3.4, which the clustering module builds against, issue 14).
BUILD_PACKAGES=(build-essential meson ninja-build pkg-config libuv1-dev node-llhttp
    libwslay-dev libmbedtls-dev libargon2-dev libnats-dev)
# What the test suites need on top of a new Debian 12 machine: sanitizers and
# libFuzzer (clang, libclang-rt-14-dev: also ThreadSanitizer's runtime),
# criterion, stomp.py (interop), openssl (test certificates, s_client), Chromium
# (browser test), docker, debootstrap and docker-compose (image test), the
# Python module websockets (the image test's WebSocket round trip,
# tests/docker/stomp_roundtrip.py), nats-server 2.9 (the NATS server the
# cluster suites start on loopback, tests/integration/nats_harness.c).
# Everything else the tests run (python3 and its standard library, coreutils,
# mawk, util-linux, git, tar) is on a new machine already; node and npm come
# below.
TEST_PACKAGES=(clang clang-format libcriterion-dev libclang-rt-14-dev python3-stomp python3-websockets openssl
    chromium docker.io debootstrap docker-compose nats-server)

# What the RabbitMQ comparison needs on top of the build (benchmarks/compare.py
# starts its own RabbitMQ node with the STOMP plugin on free loopback ports).
BENCH_PACKAGES=(rabbitmq-server python3)

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_apt() { # install_apt PACKAGE...: those not installed yet
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "dev.sh: installing ${missing[*]}"
        as_root apt-get update -q
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            "${missing[@]}"
    fi
}

install_deps() {
    install_apt "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
    # Node.js may come from another packaging (with npm inside): check the commands.
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        install_apt nodejs npm
    fi
    # The interop tests' npm packages, pinned by the lockfile.
    local lock=tests/interop/node/package-lock.json
    if [ -f "$lock" ] && { [ ! -d tests/interop/node/node_modules ] ||
        [ "$lock" -nt tests/interop/node/node_modules ]; }; then
        (cd tests/interop/node && npm ci --no-audit --no-fund --loglevel=error)
    fi
}

build() { # build DIR [meson setup options...]
    local dir=$1
    shift
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" "$@"
    elif [ $# -gt 0 ]; then
        meson configure "$dir" "$@"
    fi
    meson compile -C "$dir"
}

run_tests() {
    local rc=0
    # Every C file as the committed .clang-format says.
    scripts/check-format.sh || rc=1
    build build -Dtests=true
    meson test -C build --print-errorlogs --num-processes 1 || rc=1
    # The same unit and integration suites under AddressSanitizer + UBSan.
    CC=clang build build-asan -Db_sanitize=address,undefined -Db_lundef=false \
        -Dbuildtype=debug
    # criterion's runner leaks a few bytes of its own with .timeout (suppressed).
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        LSAN_OPTIONS=suppressions=$top/tests/lsan.supp \
        meson test -C build-asan --print-errorlogs --num-processes 1 --suite unit \
        --suite integration --suite hostile --timeout-multiplier 3 || rc=1
    # libFuzzer targets: replay the committed seeds, then fuzz each briefly.
    CC=clang build build-fuzz -Dfuzz=true -Dbuildtype=debug
    meson test -C build-fuzz --print-errorlogs --suite fuzz || rc=1
    for target in fuzz_parser fuzz_ws fuzz_session fuzz_auth fuzz_journal fuzz_select; do
        local seeds=tests/fuzz/corpus/${target#fuzz_} work
        work=$(mktemp -d)
        "build-fuzz/tests/fuzz/$target" "$work" "$seeds" -max_total_time=20 \
            -print_final_stats=1 >"build-fuzz/$target.log" 2>&1 || {
            echo "dev.sh: $target found a crash:"
            tail -40 "build-fuzz/$target.log"
            rc=1
        }
        rm -rf "$work"
    done
    tsan_pass || rc=1
    # One line per build (and one for the TSan pass's log in build/), then
    # "N passed, N failed" over all of them.
    python3 scripts/test-summary.py build build-asan build-fuzz build:testlog-tsan
    return $rc
}

# The broker under ThreadSanitizer, driven by the plain build's integration,
# hostile-client and interop suites. Criterion's runner cannot start under
# TSan, so build-tsan holds only `stampede` (clang: gcc refuses
# atomic_thread_fence under -fsanitize=thread with -Werror), and
# STAMPEDE_TEST_BROKER points the harness, the stomp.py tests, the node
# helpers and bench_smoke at it (meson's per-test STAMPEDE_BIN would beat a
# plain outer variable). A report stops the broker
# with exit code 66 (so the test fails) and lands in build-tsan/tsan-reports/:
# any file there fails the run and is printed. The suites' own deadlines are
# unchanged; meson's per-suite timeouts get the ASan run's multiplier.
# tests/tsan.supp names the one third-party race it suppresses, and why.
tsan_pass() {
    local reports=$top/build-tsan/tsan-reports rc=0 t0=$SECONDS
    if [ ! -f build-tsan/build.ninja ]; then
        CC=clang meson setup build-tsan -Dtests=false -Db_sanitize=thread -Db_lundef=false ||
            return 1
    fi
    meson compile -C build-tsan stampede stampede-nats || return 1
    rm -rf "$reports"
    mkdir -p "$reports"
    STAMPEDE_TEST_BROKER=$top/build-tsan/stampede \
        TSAN_OPTIONS="halt_on_error=1:exitcode=66:log_path=$reports/tsan:suppressions=$top/tests/tsan.supp" \
        meson test -C build --print-errorlogs --num-processes 1 --suite integration \
        --suite hostile --suite interop --timeout-multiplier 3 --logbase testlog-tsan || rc=1
    local f
    for f in "$reports"/tsan.*; do
        [ -e "$f" ] || continue
        echo "dev.sh: ThreadSanitizer report ($f):"
        cat "$f"
        rc=1
    done
    echo "dev.sh: ThreadSanitizer pass: $((SECONDS - t0)) s"
    return $rc
}

cmd=${1:-}
shift || true
case "$cmd" in
deps) install_deps ;;
deps-build) install_apt "${BUILD_PACKAGES[@]}" ;;
run)
    install_apt "${BUILD_PACKAGES[@]}"
    build build -Dtests=false
    exec build/stampede "$@"
    ;;
test)
    install_deps
    run_tests
    ;;
compare)
    install_apt "${BUILD_PACKAGES[@]}" "${BENCH_PACKAGES[@]}"
    build build-release -Dtests=false -Dbuildtype=release
    exec benchmarks/compare.sh --build build-release "$@"
    ;;
*)
    echo "usage: scripts/dev.sh run [flags...] | test | compare [options...] | deps | deps-build" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# The test command of the project (README: `bash tests/run.sh`; .ci/run runs it).
#
#   1. tests/setup.sh            install kcat, the Python venv and kafkajs (idempotent)
#   2. cargo build --release     the broker binary target/release/klamm
#   3. Rust tests                cargo nextest (if installed) or cargo test, whole workspace
#   4. client suite              pytest tests/clients with KLAMM_BIN=target/release/klamm
#
# Every step runs (a failed step does not hide the others, except that the client
# suite needs steps 1 and 2); the script exits non-zero if any step failed and
# ends with a summary. Each step has a time limit so that the whole run stays
# within CI's budget.
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
export KLAMM_BIN=${KLAMM_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/klamm}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# One build per run: incremental caches would only cost disk (gigabytes for the
# workspace's test binaries) and never be reused on CI's fresh machine.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

# disk_report WHEN: free space where the build and the tests write, so a run
# that runs out of disk says so plainly.
disk_report() {
    echo "==== disk $1: $(df -h --output=avail "$ROOT" | tail -1 | tr -d ' ') free here," \
        "$(df -h --output=avail "${TMPDIR:-/tmp}" | tail -1 | tr -d ' ') free in ${TMPDIR:-/tmp}," \
        "target $(du -sh "$TARGET_DIR" 2>/dev/null | cut -f1)"
}

declare -a NAMES=() RESULTS=() TIMES=()
FAILED=0

# step NAME LIMIT_SECONDS CMD...: runs CMD with a time limit and records the outcome.
step() {
    local name=$1 limit=$2
    shift 2
    echo
    echo "==== [$name] $* (time limit ${limit}s)"
    local t0=$SECONDS rc
    timeout --kill-after=30 "$limit" "$@"
    rc=$?
    local dt=$((SECONDS - t0))
    NAMES+=("$name")
    TIMES+=("$dt")
    if [[ $rc -eq 0 ]]; then
        RESULTS+=("ok")
    else
        if [[ $rc -eq 124 ]]; then RESULTS+=("FAILED (timed out after ${limit}s)"); else RESULTS+=("FAILED (exit $rc)"); fi
        FAILED=1
    fi
    echo "==== [$name] ${RESULTS[-1]} in ${dt}s"
    return $rc
}

skip() {
    NAMES+=("$1")
    TIMES+=(0)
    RESULTS+=("FAILED (not run: $2)")
    FAILED=1
    echo "==== [$1] not run: $2"
}

setup_ok=0
build_ok=0
disk_report "at start"
step setup 600 bash tests/setup.sh && setup_ok=1
step build 1200 cargo build --release -p klamm-broker && build_ok=1
if [[ $build_ok -eq 1 && ! -x $KLAMM_BIN ]]; then
    echo "build succeeded but $KLAMM_BIN is missing"
    build_ok=0
    FAILED=1
fi

if cargo nextest --version >/dev/null 2>&1; then
    step rust-tests 2100 cargo nextest run --workspace --no-fail-fast
else
    step rust-tests 2100 cargo test --workspace --no-fail-fast
fi

disk_report "after the Rust tests"
# The client suite needs only the release binary. Where disk is short (CI's
# machines differ), the debug build's test binaries go before brokers start
# writing data; with room to spare they stay for the next local run.
avail_kb=$(df --output=avail "$TARGET_DIR" 2>/dev/null | tail -1 | tr -d ' ')
if [[ -n $avail_kb && $avail_kb -lt $((8 * 1024 * 1024)) && -d $TARGET_DIR/debug ]]; then
    echo "==== less than 8 GiB free: removing $TARGET_DIR/debug before the client suite"
    rm -rf "$TARGET_DIR/debug"
    disk_report "after removing the debug build"
fi

if [[ $setup_ok -eq 1 && $build_ok -eq 1 ]]; then
    step client-tests 1800 tests/.venv/bin/pytest -q tests/clients -p no:cacheprovider --timeout 300 -rfEs
else
    skip client-tests "needs a successful setup and build"
fi

disk_report "at the end"
echo
echo "==== summary (KLAMM_BIN=$KLAMM_BIN)"
for i in "${!NAMES[@]}"; do
    printf '  %-13s %-40s %5ss\n' "${NAMES[$i]}" "${RESULTS[$i]}" "${TIMES[$i]}"
done
echo "  total         $((SECONDS))s"
if [[ $FAILED -ne 0 ]]; then
    echo "tests/run.sh: FAILED"
    exit 1
fi
echo "tests/run.sh: all steps passed"

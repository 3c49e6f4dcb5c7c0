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

if [[ $setup_ok -eq 1 && $build_ok -eq 1 ]]; then
    step client-tests 1800 tests/.venv/bin/pytest -q tests/clients -p no:cacheprovider --timeout 300 -rfEs
else
    skip client-tests "needs a successful setup and build"
fi

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

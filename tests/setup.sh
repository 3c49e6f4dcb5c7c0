#!/usr/bin/env bash
# Installs what the client-compatibility tests (tests/clients) need, on a fresh
# Debian 12 machine that already has Rust, Node 20/npm and Python 3.11/pip:
#   - kcat from Debian (1.7.1, linking librdkafka 2.0.2), only if kcat is missing;
#   - the openssl CLI (test_security.py makes its certificates with it), only if missing;
#   - chromium from Debian (test_ops_page.py loads the ops page headless), only if missing;
#   - a Python venv at tests/.venv with the pinned packages of
#     tests/clients/requirements.txt (confluent-kafka, kafka-python, pytest, ...);
#   - kafkajs 2.2.4 and its snappy/lz4 codec packages into tests/clients/node/node_modules (from package-lock.json).
# Idempotent: each step is skipped when what it installs is already there.
# Network steps are retried a bounded number of times.
set -euo pipefail

cd "$(dirname "$0")"
TESTS_DIR=$PWD
VENV=$TESTS_DIR/.venv
REQS=$TESTS_DIR/clients/requirements.txt
NODE_DIR=$TESTS_DIR/clients/node

log() { printf '[setup] %s\n' "$*" >&2; }

# retry N CMD...: runs CMD up to N times, sleeping 3, 6, 9... seconds between tries.
retry() {
    local tries=$1 n=1
    shift
    until "$@"; do
        if ((n >= tries)); then
            log "giving up after $n tries: $*"
            return 1
        fi
        log "try $n failed: $*; retrying in $((n * 3))s"
        sleep $((n * 3))
        n=$((n + 1))
    done
}

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# --- Debian tools: kcat, chromium (headless, for the ops page test), the openssl CLI ---
APT_UPDATED=0
# debian_tool CMD PACKAGE: installs PACKAGE from Debian unless CMD is on the PATH
# (the package index is refreshed once, before the first install).
debian_tool() {
    local cmd=$1 pkg=$2
    if command -v "$cmd" >/dev/null 2>&1; then
        log "$cmd present: $(command -v "$cmd")"
        return
    fi
    log "installing $pkg from Debian"
    export DEBIAN_FRONTEND=noninteractive
    if ((APT_UPDATED == 0)); then
        retry 3 as_root apt-get update -qq
        APT_UPDATED=1
    fi
    retry 3 as_root apt-get install -y -qq "$pkg"
    command -v "$cmd" >/dev/null 2>&1 || { log "$cmd still missing after apt-get install $pkg"; exit 1; }
}
debian_tool kcat kcat
debian_tool chromium chromium
debian_tool openssl openssl

# --- Python venv -------------------------------------------------------------
PY=${PYTHON:-python3}
if [[ ! -x $VENV/bin/python ]]; then
    log "creating venv $VENV"
    if ! "$PY" -m venv "$VENV"; then
        # Debian's own python3 needs python3-venv for `-m venv`.
        log "python3 -m venv failed; installing python3-venv"
        rm -rf "$VENV"
        export DEBIAN_FRONTEND=noninteractive
        retry 3 as_root apt-get update -qq
        retry 3 as_root apt-get install -y -qq python3-venv
        "$PY" -m venv "$VENV"
    fi
fi
STAMP=$VENV/.klamm-requirements.sha256
WANT=$(sha256sum "$REQS" | cut -d' ' -f1)
if [[ -f $STAMP && $(cat "$STAMP") == "$WANT" ]] &&
    "$VENV/bin/python" -c 'import confluent_kafka, kafka, pytest, pytest_timeout, crc32c, snappy, lz4.frame, zstandard' 2>/dev/null; then
    log "python packages up to date"
else
    log "installing python packages from $REQS"
    export PIP_DISABLE_PIP_VERSION_CHECK=1
    retry 3 "$VENV/bin/python" -m pip install -q --timeout 60 -r "$REQS"
    "$VENV/bin/python" -c 'import confluent_kafka, kafka, pytest, pytest_timeout, crc32c, snappy, lz4.frame, zstandard'
    echo "$WANT" >"$STAMP"
fi

# --- kafkajs -----------------------------------------------------------------
have_kafkajs() {
    [[ -f $NODE_DIR/node_modules/kafkajs/package.json ]] &&
        node -e 'process.exit(require(process.argv[1]).version === "2.2.4" ? 0 : 1)' \
            "$NODE_DIR/node_modules/kafkajs/package.json" &&
        [[ -f $NODE_DIR/node_modules/kafkajs-snappy/package.json && -f $NODE_DIR/node_modules/kafkajs-lz4/package.json ]]
}
# The lock file's hash, stored after a successful install: a changed package-lock.json
# (a package added) installs again even where kafkajs is already there.
NODE_STAMP=$NODE_DIR/node_modules/.klamm-lock-sha256
NODE_WANT=$(sha256sum "$NODE_DIR/package-lock.json" 2>/dev/null | cut -d' ' -f1 || true)
if have_kafkajs && [[ -f $NODE_STAMP && $(cat "$NODE_STAMP") == "$NODE_WANT" ]]; then
    log "node packages of package-lock.json present (kafkajs 2.2.4 and its snappy/lz4 codecs, ...)"
else
    log "installing kafkajs into $NODE_DIR"
    if [[ -f $NODE_DIR/package-lock.json ]]; then
        (cd "$NODE_DIR" && retry 3 npm ci --no-audit --no-fund --loglevel=error)
    else
        (cd "$NODE_DIR" && retry 3 npm install --no-audit --no-fund --loglevel=error)
    fi
    have_kafkajs || { log "kafkajs 2.2.4 or its codecs missing after npm"; exit 1; }
    echo "$NODE_WANT" >"$NODE_STAMP"
fi

log "ok: kcat $(kcat -V 2>&1 | head -n1 | tr -s ' ' | cut -c1-80); python $("$VENV/bin/python" -c 'import confluent_kafka, kafka; print("confluent-kafka", confluent_kafka.__version__, "librdkafka", confluent_kafka.libversion()[0], "kafka-python", kafka.__version__)'); kafkajs 2.2.4"

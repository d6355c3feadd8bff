#!/usr/bin/env bash
# Builds the Python package (a dev-profile wheel, once per change of its sources) into a cached
# virtual environment and runs its pytest suite against real brokers. scripts/test.sh calls it
# after `cargo test`; it also runs alone:
#
#   python/run-tests.sh [pytest args]
#
# Cache ($DFT_CACHE, default ~/.cache/datafusion-topics):
#   python-venv/     the environment: requirements-test.txt (pinned) and the wheel
#   python-wheels/   the last wheel built, with the hash of the sources it was built from
# Build output goes to $CARGO_TARGET_DIR (default: the repository's target/). The brokers come
# from KAFKA_BOOTSTRAP / NATS_URL when both are set; otherwise the tests start Apache Kafka and
# nats-server (scripts/install-brokers.sh installs them) with test-support's dft-brokers
# program, built here against the wheel's dependencies.
set -euo pipefail
cd "$(dirname "$0")"
PY_DIR=$(pwd -P)
REPO=$(cd .. && pwd -P)
DFT_CACHE=${DFT_CACHE:-$HOME/.cache/datafusion-topics}
VENV=$DFT_CACHE/python-venv
WHEELS=$DFT_CACHE/python-wheels
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
started=$(date +%s)
log() { printf 'python tests: %s\n' "$*" >&2; }

# Kafka, nats-server, and the Debian packages the build and python3-venv need (idempotent).
"$REPO/scripts/install-brokers.sh" >/dev/null

# The interpreter: $DFT_PYTHON, else python3 (3.10 or later; the wheel is abi3-py310).
PYTHON=${DFT_PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { log "need Python 3.10 or later (set DFT_PYTHON)"; exit 1; }

if ! cmp -s requirements-test.txt "$VENV/.requirements" || [[ ! -x $VENV/bin/python ]]; then
    log "creating $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r requirements-test.txt
    cp requirements-test.txt "$VENV/.requirements"
fi

# Everything the wheel is built from; an unchanged hash reuses the installed wheel. The builds
# are not --locked: python/Cargo.lock follows the main crate's lock, and cargo adds what a
# dependency change of the main crate needs to it without moving the versions it pins.
sources_hash() {
    (cd "$REPO" && find src Cargo.toml python/src python/Cargo.toml python/Cargo.lock \
        python/pyproject.toml python/datafusion_topics -type f -not -name '*.pyc' \
        -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1
}
hash=$(sources_hash)
if [[ $(cat "$WHEELS/.sources" 2>/dev/null) != "$hash" ]] \
    || ! (cd / && "$VENV/bin/python" -c 'import datafusion_topics._native') 2>/dev/null; then
    log "building the wheel (dev profile) into $WHEELS"
    build_started=$(date +%s)
    rm -rf "$WHEELS"
    mkdir -p "$WHEELS"
    "$VENV/bin/maturin" build --profile dev --auditwheel skip \
        --interpreter "$VENV/bin/python" --out "$WHEELS" --manifest-path Cargo.toml
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
        --force-reinstall "$WHEELS"/*.whl
    echo "$hash" >"$WHEELS/.sources"
    log "wheel built and installed in $(( $(date +%s) - build_started )) s"
fi

if [[ -z ${KAFKA_BOOTSTRAP:-} || -z ${NATS_URL:-} ]]; then
    # The same features as the wheel's build (see test-brokers/Cargo.toml): links only.
    PYO3_BUILD_EXTENSION_MODULE=1 PYO3_PYTHON="$VENV/bin/python" \
        cargo build --quiet --manifest-path Cargo.toml -p dft-py-brokers
    export DFT_BROKERS=$CARGO_TARGET_DIR/debug/dft-py-brokers
fi

# From tests/: `python -m pytest` puts the working directory on sys.path, and python/ would
# shadow the installed package with its sources (which lack the compiled module).
cd "$PY_DIR/tests"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "$@"
log "passed in $(( $(date +%s) - started )) s"

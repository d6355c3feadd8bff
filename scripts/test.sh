#!/usr/bin/env bash
# Runs the whole test suite: installs the services on first use (scripts/install-brokers.sh:
# Apache Kafka, nats-server, an S3 server, a schema registry), then `cargo test`, whose test
# support starts them on free loopback ports and stops them when the tests end. Set
# KAFKA_BOOTSTRAP / NATS_URL to use running brokers instead. Extra arguments go to `cargo test`.
# Then the Python package's tests (python/run-tests.sh: a dev wheel built once per change of
# its sources, into a cached virtual environment); DFT_SKIP_PYTHON=1 leaves them out.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
scripts/install-brokers.sh
# The `distributed` feature adds the worker command and its tests (two worker processes).
cargo test --locked --workspace --features distributed "$@"
if [[ ${DFT_SKIP_PYTHON:-} != 1 ]]; then
    python/run-tests.sh
fi
echo "test.sh: passed in $(( $(date +%s) - started )) s"

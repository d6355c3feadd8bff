#!/usr/bin/env bash
# Starts Apache Kafka and nats-server on free loopback ports (installing them on first use),
# prints KAFKA_BOOTSTRAP=… and NATS_URL=…, and keeps them running until Ctrl-C. Data and logs
# live in a temporary directory (printed as BROKERS_DIR) and go away with the brokers.
#
#   scripts/brokers.sh                      # in one terminal
#   export KAFKA_BOOTSTRAP=… NATS_URL=…     # in another, then datafusion-topics, cargo test …
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-brokers.sh >/dev/null
cargo run --quiet --locked -p dft-test-support --bin dft-brokers -- "$@"

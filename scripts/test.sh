#!/usr/bin/env bash
# Runs the whole test suite against real brokers: local tansu + nats-server + noida-db (Kafka
# with transactions), installed on first use, started on free loopback ports and stopped
# afterwards; or the ones in KAFKA_BOOTSTRAP / NATS_URL (and KAFKA_TXN_BOOTSTRAP) when set.
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${KAFKA_BOOTSTRAP:-}" || -z "${NATS_URL:-}" ]]; then
  scripts/install-brokers.sh
  dir=$(mktemp -d -t dft-brokers.XXXXXX)
  trap 'scripts/stop-brokers.sh "$dir" >/dev/null 2>&1 || true' EXIT
  scripts/start-brokers.sh --dir "$dir" --owner-pid $$ >/dev/null
  set -a
  # shellcheck disable=SC1091
  source "$dir/env"
  DFT_LOCAL_BROKERS=1
  set +a
  echo "brokers: kafka $KAFKA_BOOTSTRAP, nats $NATS_URL, kafka with transactions $KAFKA_TXN_BOOTSTRAP (logs in $dir)"
else
  echo "brokers from the environment: kafka $KAFKA_BOOTSTRAP, nats $NATS_URL"
fi

cargo test --locked "$@"

# The examples run too, so the embedding programs the README points to keep working.
for example in demo embedded_sql; do
  echo "example $example"
  cargo run --locked --quiet --example "$example" -- "$KAFKA_BOOTSTRAP" >/dev/null
done

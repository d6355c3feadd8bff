#!/usr/bin/env bash
# The main demo: starts local brokers (installing them on first use), creates and fills a
# topic, and queries it with SQL through datafusion-topics, embedded and in the SQL shell.
# Brokers stop when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${KAFKA_BOOTSTRAP:-}" ]]; then
  scripts/install-brokers.sh
  dir=$(mktemp -d -t dft-demo.XXXXXX)
  trap 'scripts/stop-brokers.sh "$dir" >/dev/null 2>&1 || true' EXIT
  scripts/start-brokers.sh --dir "$dir" --owner-pid $$ >/dev/null
  set -a
  # shellcheck disable=SC1091
  source "$dir/env"
  set +a
fi

cargo run --quiet --locked --example demo -- "$KAFKA_BOOTSTRAP"

echo
echo "== the same brokers through the SQL shell: datafusion-topics -f sql-examples/01_quickstart.sql"
export KAFKA_BOOTSTRAP NATS_URL
cargo run --quiet --locked --bin datafusion-topics -- -q -f sql-examples/01_quickstart.sql

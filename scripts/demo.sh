#!/usr/bin/env bash
# The main demo: starts Apache Kafka and nats-server on free loopback ports (installing them on
# first use), creates and fills a topic, and queries it with SQL through datafusion-topics,
# embedded and in the SQL shell. The brokers stop when the demo ends.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --locked -p dft-test-support --bin dft-brokers
cargo build --quiet --locked --example demo --bin datafusion-topics
target=${CARGO_TARGET_DIR:-target}
if [[ -z "${KAFKA_BOOTSTRAP:-}" || -z "${NATS_URL:-}" ]]; then
  scripts/install-brokers.sh >/dev/null
  dir=$(mktemp -d -t dft-demo.XXXXXX)
  trap 'rm -rf "$dir"' EXIT
  # The brokers live while this script holds fd 3 open: they stop when it ends, however it ends.
  exec 3> >(exec "$target/debug/dft-brokers" --env-file "$dir/env" --until-stdin-closes >/dev/null)
  for _ in $(seq 1 600); do [[ -f $dir/env ]] && break; sleep 0.2; done
  [[ -f $dir/env ]] || { echo "demo: the brokers did not start within 2 minutes" >&2; exit 1; }
  set -a
  # shellcheck disable=SC1091
  source "$dir/env"
  set +a
fi

"$target/debug/examples/demo" "$KAFKA_BOOTSTRAP"

echo
echo "== the same brokers through the SQL shell: datafusion-topics -f sql-examples/01_quickstart.sql"
export KAFKA_BOOTSTRAP NATS_URL
"$target/debug/datafusion-topics" -q -f sql-examples/01_quickstart.sql

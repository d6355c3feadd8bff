#!/usr/bin/env bash
# Regenerates public-api.txt, the checked-in list of every public item of the crate, so API
# changes show in review. Needs cargo-public-api (cargo install cargo-public-api --locked) and a
# nightly toolchain (rustup toolchain install nightly --profile minimal); neither is needed to
# build or test.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo public-api -sss -p datafusion-topics > public-api.txt
echo "public-api.txt: $(wc -l < public-api.txt) items"

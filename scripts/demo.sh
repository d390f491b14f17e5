#!/usr/bin/env bash
# Runs the deepwatch demo on this machine, installing what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo build --release --bin deepwatch
exec ./target/release/deepwatch demo "$@"

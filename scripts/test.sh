#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests (real Prometheus,
# Alertmanager, promtool and amtool from Debian packages). CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --all-targets
cargo test --workspace --doc

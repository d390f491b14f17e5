#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests (real Prometheus,
# Alertmanager, promtool and amtool from Debian packages). CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
# The gateway's SDK test needs the official openai package (PyPI) in a venv; make it now so a
# failure stops the suite here instead of skipping that test.
./scripts/python-env.sh >/dev/null
# The manifest schema checks need the pinned npm packages of scripts/k8s-validate.
./scripts/node-env.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace --all-targets
cargo test --workspace --doc

#!/usr/bin/env bash
# Runs the deepwatch demo on this machine, installing what it needs first: three simulated
# engines behind the gateway, the agent, the analyzer, Prometheus and Alertmanager, load, two
# faults and a live timeline of alerts, notifications and self-healing. Ctrl-C stops it all.
# Arguments go to `deepwatch demo` (try --help; e.g. --duration 3m --fault latency).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cargo build --release --bin deepwatch
exec "${CARGO_TARGET_DIR:-target}/release/deepwatch" demo "$@"

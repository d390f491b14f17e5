#!/usr/bin/env bash
# Root-cause ranking on injected-fault scenarios (50 seeds per fault): top-1 and top-3 of the
# injected cause. Prints a Markdown table for docs/benchmarks.md.
#   bench/analyzer_rca.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release -p deepwatch-analyzer --test integration -- \
  --ignored analytics_rca::evaluation_report --nocapture --test-threads 1 2>/dev/null | grep '^|'

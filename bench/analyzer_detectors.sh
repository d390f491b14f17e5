#!/usr/bin/env bash
# Detector evaluation on labelled synthetic series (10 seeds x 3 noise levels per row), scored
# through the `deepwatch analyze detect` path: precision, recall, detection delay and false
# alerts per normal week. Prints a Markdown table for docs/benchmarks.md.
#   bench/analyzer_detectors.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release -p deepwatch-analyzer --test integration -- \
  --ignored analytics_detectors::evaluation_report --nocapture --test-threads 1 2>/dev/null | grep '^|'

#!/usr/bin/env bash
# Baseline fit and scoring for SERIES (default 10,000) synthetic seasonal series x 7 days of
# 1-minute points on 2 threads, then Prophet 1.x (cmdstan) fitted on the first PROPHET_SERIES
# (default 20) of the same series in the same run. Prophet comes from PyPI into a venv under
# ~/.cache (pip install prophet; the wheel ships cmdstan).
#   bench/analyzer_baseline.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SERIES="${SERIES:-10000}"
PROPHET_SERIES="${PROPHET_SERIES:-20}"
OUT="target/analyzer-bench"
VENV="${PROPHET_VENV:-$HOME/.cache/deepwatch-prophet-venv}"
rm -rf "$OUT/csv" && mkdir -p "$OUT"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
cargo bench -p deepwatch-analyzer --bench analyzer_scale -- \
  --series "$SERIES" --threads 2 --dump-csv "$PWD/$OUT/csv" --dump "$PROPHET_SERIES" 2>/dev/null
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q prophet
fi
"$VENV/bin/python" bench/analyzer_prophet.py "$OUT/csv"

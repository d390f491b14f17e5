#!/usr/bin/env bash
# Scores `deepwatch analyze detect` (default detectors unless DETECTORS is set) on every series
# of the labelled NAB subset in ../shared/data/nab-dev with ../shared/tools/nab_score.py, all
# three NAB profiles (standard, reward_low_FP_rate, reward_low_FN_rate). Builds the release
# binary first unless DEEPWATCH is given; pandas and numpy come from PyPI into a venv.
#   bench/analyzer_nab.sh                      # default detectors
#   DETECTORS=band,shift bench/analyzer_nab.sh # another detector set
#   NAB_DATA=/path/to/nab NAB_LABELS=/path/to/labels.json bench/analyzer_nab.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${SHARED:-$(cd .. && pwd)/shared}"
[ -d "$SHARED/data/nab-dev" ] || SHARED=/work/shared
NAB_DATA="${NAB_DATA:-$SHARED/data/nab-dev/data}"
NAB_LABELS="${NAB_LABELS:-$SHARED/data/nab-dev/labels.json}"
SCORER="${NAB_SCORER:-$SHARED/tools/nab_score.py}"
VENV="${NAB_VENV:-$HOME/.cache/deepwatch-nab-venv}"
TARGET="${CARGO_TARGET_DIR:-target}"
if [ -z "${DEEPWATCH:-}" ]; then
  cargo build --release -q -p deepwatch
  DEEPWATCH="$TARGET/release/deepwatch"
fi
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "pandas<2" "numpy<2"
fi
ARGS=""
[ -n "${DETECTORS:-}" ] && ARGS="--detectors $DETECTORS"
echo "detector: $DEEPWATCH analyze detect ${ARGS:-(defaults)}"
SAVED="$(mktemp -d)"
trap 'rm -rf "$SAVED"' EXIT
start=$(date +%s.%N)
"$VENV/bin/python" "$SCORER" --data "$NAB_DATA" --labels "$NAB_LABELS" \
  --detector-cmd "$DEEPWATCH analyze detect --csv {csv} $ARGS" --save-results "$SAVED" "${@}"
echo "wall: $(echo "$(date +%s.%N) - $start" | bc) s (scoring included)"
echo
echo "false alerts (onsets with anomaly_score >= 0.5) outside the labelled windows:"
"$VENV/bin/python" bench/analyzer_nab_alerts.py "$SAVED" "$NAB_LABELS" 0.5

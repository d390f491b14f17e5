#!/usr/bin/env bash
# Time to page at default settings: `deepwatch demo --time-scale 1 --fault latency` (the blue
# engine takes 3 s more to the first token) with the generated Prometheus and Alertmanager
# configs unscaled, repeated RUNS times per binary. From the demo's timeline.jsonl it reports,
# in seconds after the fault was injected, when RequestLatencyCritical went pending and firing
# in Prometheus and when the phone/SMS webhook received it.
#
# Usage: bench/time_to_page.sh
#   DEEPWATCH="a b"  deepwatch binaries to compare, run alternately (default target/debug/deepwatch)
#   RUNS=n           runs per binary (default 3)
#   OUT=dir          timelines, logs and results.md (default a temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."
DEEPWATCH="${DEEPWATCH:-target/debug/deepwatch}"
RUNS="${RUNS:-3}"
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
echo "| binary | run | pending | firing | phone webhook | load avg |" > "$OUT/results.md"
echo "|---|---|---|---|---|---|" >> "$OUT/results.md"
for run in $(seq 1 "$RUNS"); do
  for bin in $DEEPWATCH; do
    name="$(basename "$(dirname "$bin")")-$(basename "$bin")-$run"
    state="$OUT/$name"
    load="$(cut -d' ' -f1 /proc/loadavg)"
    # 75 s of warm-up fill the 1-minute rate windows; the fault stays 40 s; the demo stops
    # (and stops every child) after 150 s, long before the 10-minute recovery hold ends.
    "$bin" demo --time-scale 1 --fault latency --warmup 75s --fault-for 40s --duration 150s \
      --state-dir "$state" > "$OUT/$name.log" 2>&1 || true
    python3 - "$state/timeline.jsonl" "$bin" "$run" "$load" >> "$OUT/results.md" <<'PY'
import json, sys
path, binary, run, load = sys.argv[1:5]
events = [json.loads(l) for l in open(path) if l.strip()]
fault = next(e["t"] for e in events if e["kind"] == "fault" and e["detail"].get("state") == "injected")
def first(pred):
    t = next((e["t"] for e in events if e["t"] >= fault and pred(e)), None)
    return "-" if t is None else f"{t - fault:.1f} s"
def alert(state):
    return lambda e: (e["kind"] == "alert" and e["detail"].get("state") == state
                      and e["detail"].get("labels", {}).get("alertname") == "RequestLatencyCritical")
phone = lambda e: (e["kind"] == "notification" and e["detail"].get("receiver") == "phone-sms"
                   and e["detail"].get("alert") == "RequestLatencyCritical"
                   and e["detail"].get("status") == "firing")
print(f"| {binary} | {run} | {first(alert('pending'))} | {first(alert('firing'))} | {first(phone)} | {load} |")
PY
  done
done
cat "$OUT/results.md"

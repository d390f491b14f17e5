#!/usr/bin/env bash
# GPU alert scenario on a real NVIDIA GPU: the agent reads NVML, a real Prometheus scrapes it
# and evaluates the rules `deepwatch rules` generates (time-scaled), while
# bench/gpu_alert_phases.py loads the GPU: idle -> compute (GPUUtilizationHigh must fire) ->
# memory held at 93 % with compute stopped (GPUUtilizationHigh must resolve, GPUMemoryHigh must
# fire) -> released (everything resolves). Records when each alert went pending, firing and
# resolved relative to the phase that caused it.
#
# Usage: bench/gpu_alert_scenario.sh
#   DEEPWATCH=path     the deepwatch binary (default target/release/deepwatch)
#   PROMETHEUS=path    the prometheus binary (default: prometheus on PATH)
#   TIME_SCALE=n       divides `for`, windows and intervals of the generated rules (default 6)
#   OUT=dir            results (gpu_alerts.md, gpu_alerts.json, logs)
set -euo pipefail
cd "$(dirname "$0")/.."
DEEPWATCH="${DEEPWATCH:-target/release/deepwatch}"
PROMETHEUS="${PROMETHEUS:-$(command -v prometheus || true)}"
TIME_SCALE="${TIME_SCALE:-6}"
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
[[ -x "$PROMETHEUS" ]] || { echo "prometheus binary not found (set PROMETHEUS=)" >&2; exit 2; }
command -v nvidia-smi >/dev/null || { echo "nvidia-smi not found: this needs an NVIDIA GPU" >&2; exit 2; }
work="$(mktemp -d)"
cleanup() { for p in ${agent_pid:-} ${prom_pid:-} ${load_pid:-}; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
agent_port="$(free_port)"; prom_port="$(free_port)"

cat > "$work/deepwatch.toml" <<TOML
[agent]
listen = "127.0.0.1:$agent_port"
[agent.collectors]
host = false
process = false
engine = false
logs = false
peers = false
[rules.targets]
agents = ["127.0.0.1:$agent_port"]
gateways = []
analyzer = []
node_exporter = []
pushgateway = []
alertmanager = []
kubernetes_sd = false
TOML
"$DEEPWATCH" rules --config "$work/deepwatch.toml" --out "$work/deploy" --time-scale "$TIME_SCALE" > "$OUT/rules.log" 2>&1
"$DEEPWATCH" agent --config "$work/deepwatch.toml" 2> "$OUT/agent.log" &
agent_pid=$!
"$PROMETHEUS" --config.file="$work/deploy/prometheus/prometheus.yml" --storage.tsdb.path="$work/data" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn 2> "$OUT/prometheus.log" &
prom_pid=$!
python3 bench/gpu_alert_phases.py > "$OUT/phases.jsonl" 2> "$OUT/load.log" &
load_pid=$!

python3 - "$prom_port" "$agent_port" "$OUT" "$load_pid" "$TIME_SCALE" <<'PY'
import json, os, sys, time, urllib.parse, urllib.request
prom, agent, out, load_pid, scale = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
def q(expr):
    url = f"http://127.0.0.1:{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    return json.load(urllib.request.urlopen(url, timeout=5))["data"]["result"]
events, last, series = [], {}, []
def alive(pid):
    try: os.kill(pid, 0); return True
    except OSError: return False
start = time.time()
while alive(load_pid) or time.time() - start < 5:
    now = time.time()
    try:
        alerts = q('ALERTS{alertname=~"GPU.*"}')
        util = q("max(deepwatch_gpu_utilization_ratio)")
        mem = q("max(deepwatch_gpu_memory_used_bytes / deepwatch_gpu_memory_total_bytes)")
    except OSError:
        time.sleep(0.5); continue
    state = {}
    for a in alerts:
        m = a["metric"]; state[(m["alertname"], m.get("severity", ""))] = m["alertstate"]
    for key in set(last) | set(state):
        if last.get(key) != state.get(key):
            events.append({"t": now, "alert": key[0], "severity": key[1], "state": state.get(key, "resolved")})
    last = state
    if util and mem:
        series.append({"t": now, "util": float(util[0]["value"][1]), "mem": float(mem[0]["value"][1])})
    time.sleep(0.5)
phases = [json.loads(l) for l in open(os.path.join(out, "phases.jsonl")) if l.strip()]
def phase_at(t):
    cur = None
    for p in phases:
        if p["t"] <= t: cur = p
    return cur
lines = [f"time scale {scale}; times relative to the start of the phase in force", "",
         "| alert | severity | state | phase | s after phase start |", "|---|---|---|---|---|"]
for e in events:
    p = phase_at(e["t"])
    lines.append(f"| {e['alert']} | {e['severity']} | {e['state']} | {p['phase'] if p else '-'} | {e['t'] - p['t'] if p else 0:.1f} |")
peak = lambda k, ph: max((s[k] for s in series if (phase_at(s['t']) or {}).get('phase') == ph), default=None)
lines += ["", "peak GPU utilization / memory ratio by phase:"]
for ph in ["idle", "compute", "memory", "cooldown"]:
    lines.append(f"- {ph}: util {peak('util', ph)}, memory {peak('mem', ph)}")
text = "\n".join(lines)
print(text)
open(os.path.join(out, "gpu_alerts.md"), "w").write(text + "\n")
json.dump({"events": events, "phases": phases, "series": series}, open(os.path.join(out, "gpu_alerts.json"), "w"), indent=1)
PY

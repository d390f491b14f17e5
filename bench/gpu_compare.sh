#!/usr/bin/env bash
# Compares the agent's GPU values with nvidia-smi under a PyTorch matmul load, on a machine with
# a real NVIDIA GPU (x86-64, PyTorch, no network needed), and times the gpu collector's cost per
# scrape against one nvidia-smi query.
#
# Usage: bench/gpu_compare.sh [SAMPLES]            (default 10 samples, 1 s apart)
#   AGENT_BIN=path   agent binary taking --config/--listen (default target/release/deepwatch
#                    agent, else target/release/examples/serve)
#   LOAD_SECONDS=n   length of the matmul load (default: enough for the samples + warm-up)
#   OUT=dir          results (gpu_compare.md, gpu_compare.json, logs) are written there
set -euo pipefail
cd "$(dirname "$0")/.."
SAMPLES="${1:-10}"
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
if [[ -z "${AGENT_BIN:-}" ]]; then
  if [[ -x target/release/deepwatch ]]; then AGENT_BIN="target/release/deepwatch agent"
  else AGENT_BIN=target/release/examples/serve; fi
fi
command -v nvidia-smi >/dev/null || { echo "nvidia-smi not found: this needs a machine with an NVIDIA GPU" >&2; exit 2; }
python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' || { echo "PyTorch with CUDA not available" >&2; exit 2; }
LOAD_SECONDS="${LOAD_SECONDS:-$((SAMPLES * 2 + 40))}"
work="$(mktemp -d)"
cleanup() { for p in ${agent_pid:-} ${load_pid:-}; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat > "$work/agent.toml" <<TOML
[agent]
listen = "127.0.0.1:$port"
[agent.collectors]
host = false
process = false
engine = false
logs = false
peers = false
TOML
nvidia-smi -L | tee "$OUT/gpus.txt"
RUST_LOG=info $AGENT_BIN --config "$work/agent.toml" 2> "$OUT/agent.log" &
agent_pid=$!
python3 bench/gpu_matmul_load.py --seconds "$LOAD_SECONDS" > "$OUT/load.log" 2>&1 &
load_pid=$!
python3 - "$port" "$SAMPLES" "$OUT" "$load_pid" <<'PY'
import concurrent.futures as cf, json, os, statistics, subprocess, sys, time, urllib.request
port, samples, out, load_pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
URL = f"http://127.0.0.1:{port}/metrics"
FIELDS = "utilization.gpu,utilization.memory,memory.used,power.draw,temperature.gpu,clocks.sm,clocks.mem"
QUERY = ["nvidia-smi", f"--query-gpu={FIELDS}", "--format=csv,noheader,nounits"]
# agent metric -> (nvidia-smi column, factor from agent units to nvidia-smi units, unit)
MAP = [("deepwatch_gpu_utilization_ratio", 0, 100, "%"),
       ("deepwatch_gpu_memory_utilization_ratio", 1, 100, "%"),
       ("deepwatch_gpu_memory_used_bytes", 2, 1 / 2**20, "MiB"),
       ("deepwatch_gpu_power_watts", 3, 1, "W"),
       ("deepwatch_gpu_temperature_celsius", 4, 1, "C"),
       ("deepwatch_gpu_sm_clock_hertz", 5, 1e-6, "MHz"),
       ("deepwatch_gpu_memory_clock_hertz", 6, 1e-6, "MHz")]

def scrape():
    t = time.perf_counter()
    body = urllib.request.urlopen(URL, timeout=10).read().decode()
    return time.perf_counter() - t, body

def value(body, name, gpu="0"):
    for line in body.splitlines():
        if line.startswith(name + "{") and f'gpu="{gpu}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None

def smi():
    t = time.perf_counter()
    row = subprocess.run(QUERY, capture_output=True, text=True, check=True).stdout.splitlines()[0]
    return time.perf_counter() - t, [float(x) if x.strip() not in ("[N/A]", "N/A") else None for x in row.split(",")]

for _ in range(100):
    try:
        scrape(); break
    except OSError:
        time.sleep(0.1)
# Let the matmul load ramp up.
time.sleep(15)
rows, scrape_times, smi_times = [], [], []
pool = cf.ThreadPoolExecutor(2)
for i in range(samples):
    fa, fs = pool.submit(scrape), pool.submit(smi)   # read at the same moment
    (ts, body), (tn, s) = fa.result(), fs.result()
    scrape_times.append(ts); smi_times.append(tn)
    rows.append({"agent": {m: value(body, m) for m, *_ in MAP}, "smi": s})
    time.sleep(1)
_, body = scrape()
def hist(name):
    s = c = None
    for line in body.splitlines():
        if line.startswith(f'deepwatch_collector_duration_seconds_sum{{collector="gpu"}}'): s = float(line.split()[-1])
        if line.startswith(f'deepwatch_collector_duration_seconds_count{{collector="gpu"}}'): c = float(line.split()[-1])
    return s, c
gsum, gcount = hist("gpu")
# Sequential timings, without the other reader running: 20 scrapes, 20 nvidia-smi queries.
seq_scrape = [scrape()[0] for _ in range(20)]
seq_smi = [smi()[0] for _ in range(20)]
up = [l for l in body.splitlines() if l.startswith("deepwatch_collector_up")]
procs = [l for l in body.splitlines() if l.startswith("deepwatch_gpu_process_memory_used_bytes")]
apps = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,process_name,used_memory", "--format=csv,noheader,nounits"], capture_output=True, text=True).stdout
lines = ["| value | agent (mean) | nvidia-smi (mean) | mean abs diff | max abs diff |", "|---|---|---|---|---|"]
summary = {}
for m, col, factor, unit in MAP:
    pairs = [(r["agent"][m] * factor, r["smi"][col]) for r in rows if r["agent"][m] is not None and r["smi"][col] is not None]
    if not pairs:
        lines.append(f"| {m} | n/a | n/a | | |"); continue
    diffs = [abs(a - b) for a, b in pairs]
    summary[m] = {"agent_mean": statistics.mean(a for a, _ in pairs), "smi_mean": statistics.mean(b for _, b in pairs),
                  "mean_abs_diff": statistics.mean(diffs), "max_abs_diff": max(diffs), "unit": unit, "n": len(pairs)}
    s = summary[m]
    lines.append(f"| {m} ({unit}) | {s['agent_mean']:.1f} | {s['smi_mean']:.1f} | {s['mean_abs_diff']:.2f} | {s['max_abs_diff']:.2f} |")
ms = lambda xs: statistics.median(xs) * 1e3
timing = {"gpu_collector_mean_ms": gsum / gcount * 1e3 if gcount else None,
          "agent_scrape_median_ms": ms(seq_scrape), "nvidia_smi_query_median_ms": ms(seq_smi),
          "agent_scrape_p_max_ms": max(seq_scrape) * 1e3, "nvidia_smi_max_ms": max(seq_smi) * 1e3}
lines += ["", f"samples: {samples}, 1 s apart, agent scrape and nvidia-smi started together in two threads",
          f"gpu collector run (agent's own deepwatch_collector_duration_seconds, mean over {int(gcount or 0)} runs): {timing['gpu_collector_mean_ms']:.2f} ms",
          f"whole agent /metrics scrape (gpu only), median of 20: {timing['agent_scrape_median_ms']:.2f} ms (max {timing['agent_scrape_p_max_ms']:.2f})",
          f"one `nvidia-smi --query-gpu=...` process, median of 20: {timing['nvidia_smi_query_median_ms']:.2f} ms (max {timing['nvidia_smi_max_ms']:.2f})",
          "", "collector up:", *up, "", "per-process GPU memory (agent):", *procs, "", "nvidia-smi --query-compute-apps:", apps.strip()]
text = "\n".join(lines)
print(text)
open(os.path.join(out, "gpu_compare.md"), "w").write(text + "\n")
json.dump({"rows": rows, "summary": summary, "timing": timing}, open(os.path.join(out, "gpu_compare.json"), "w"), indent=2)
PY
wait "$load_pid" || true
cat "$OUT/load.log"

#!/usr/bin/env bash
# Scrape cost of the deepwatch agent (host + process collectors) against
# prometheus-node-exporter with its default collectors, same machine, same run, scrapes
# interleaved: latency per scrape (p50/p99), server CPU seconds per 1,000 scrapes (from
# /proc/<pid>/stat utime+stime) and resident memory after the run.
#
# Usage: bench/agent_scrape.sh [SCRAPES]        (default 2000 per server)
#   AGENT_BIN=path  agent binary taking --config/--listen (default: target/release/deepwatch if
#                   built, else target/release/examples/serve; build with
#                   `cargo build --release -p deepwatch-agent --example serve`)
#   OUT=dir         also write results.json and results.md there
set -euo pipefail
cd "$(dirname "$0")/.."
SCRAPES="${1:-2000}"
NODE_EXPORTER="${NODE_EXPORTER:-/usr/bin/prometheus-node-exporter}"
if [[ -z "${AGENT_BIN:-}" ]]; then
  if [[ -x target/release/deepwatch ]]; then AGENT_BIN="target/release/deepwatch agent"
  else AGENT_BIN=target/release/examples/serve; fi
fi
work="$(mktemp -d)"
cleanup() { [[ -n "${agent_pid:-}" ]] && kill "$agent_pid" 2>/dev/null; [[ -n "${ne_pid:-}" ]] && kill "$ne_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
agent_port="$(free_port)"; ne_port="$(free_port)"
cat > "$work/agent.toml" <<TOML
[agent]
listen = "127.0.0.1:$agent_port"
[agent.collectors]
gpu = false
engine = false
logs = false
peers = false
TOML
RUST_LOG=warn $AGENT_BIN --config "$work/agent.toml" --listen "127.0.0.1:$agent_port" 2> "$work/agent.log" &
agent_pid=$!
"$NODE_EXPORTER" --web.listen-address="127.0.0.1:$ne_port" --log.level=warn 2> "$work/ne.log" &
ne_pid=$!
python3 - "$agent_pid" "$agent_port" "$ne_pid" "$ne_port" "$SCRAPES" "${OUT:-}" <<'PY'
import http.client, json, os, sys, time
agent_pid, agent_port, ne_pid, ne_port, n, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
ACCEPT = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
tick = os.sysconf("SC_CLK_TCK")
def cpu(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tick
def rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"): return int(line.split()[1]) * 1024
def wait(port):
    for _ in range(200):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5); c.request("GET", "/metrics"); c.getresponse().read(); return
        except OSError: time.sleep(0.05)
    sys.exit(f"server on {port} never answered")
servers = {"deepwatch agent": (agent_pid, agent_port), "node_exporter": (ne_pid, ne_port)}
for _, (pid, port) in servers.items(): wait(port)
conns = {k: http.client.HTTPConnection("127.0.0.1", port, timeout=10) for k, (_, port) in servers.items()}
lat = {k: [] for k in servers}; size = {}
def scrape(k):
    t = time.perf_counter()
    conns[k].request("GET", "/metrics", headers={"Accept": ACCEPT})
    r = conns[k].getresponse(); body = r.read()
    assert r.status == 200, (k, r.status)
    return time.perf_counter() - t, len(body)
for _ in range(100):  # warm-up
    for k in servers: scrape(k)
cpu0 = {k: cpu(pid) for k, (pid, _) in servers.items()}
for _ in range(n):
    for k in servers:
        d, size[k] = scrape(k); lat[k].append(d)
res = {}
for k, (pid, _) in servers.items():
    l = sorted(lat[k])
    res[k] = {"p50_ms": l[len(l)//2]*1e3, "p99_ms": l[int(len(l)*0.99)-1]*1e3,
              "cpu_s_per_1000": (cpu(pid) - cpu0[k]) / n * 1000, "rss_mib": rss(pid) / 2**20,
              "bytes": size[k], "series": None}
a, b = res["deepwatch agent"], res["node_exporter"]
ratio = b["cpu_s_per_1000"] / a["cpu_s_per_1000"] if a["cpu_s_per_1000"] > 0 else float("inf")
lines = [f"scrapes per server: {n} (interleaved, after 100 warm-up each), Accept: Prometheus 2.42's header",
         "| server | p50 latency | p99 latency | CPU s / 1,000 scrapes | RSS | payload |",
         "|---|---|---|---|---|---|"]
for k, r in res.items():
    lines.append(f"| {k} | {r['p50_ms']:.3f} ms | {r['p99_ms']:.3f} ms | {r['cpu_s_per_1000']:.3f} | {r['rss_mib']:.1f} MiB | {r['bytes']/1024:.1f} KiB |")
lines.append(f"node_exporter CPU per scrape / agent CPU per scrape: {ratio:.1f}x")
print("\n".join(lines))
if out:
    os.makedirs(out, exist_ok=True)
    json.dump({"scrapes": n, "results": res, "cpu_ratio": ratio}, open(os.path.join(out, "agent_scrape.json"), "w"), indent=2)
    open(os.path.join(out, "agent_scrape.md"), "w").write("\n".join(lines) + "\n")
PY

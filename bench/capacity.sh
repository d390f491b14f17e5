#!/usr/bin/env bash
# `deepwatch analyze capacity` against a short real run: two `deepwatch sim` replicas of model
# `bench` behind `deepwatch gateway`, `deepwatch agent` scraping both as engines every second,
# Debian's Prometheus scraping agent and gateway every second, and `deepwatch load` at a
# constant open-loop rate (streamed chat, 64 prompt and 128 output tokens). Then the plan over
# the run's history at a 1 s step, as a table and as JSON: the peak demand (running + waiting
# sequences), the replicas now, the recommendation and the decision now, which must agree.
# Usage: bench/capacity.sh   (env: RATE=20 SECS=90 REPLICA_CAPACITY=32;
#                             DEEPWATCH_BIN=path to skip the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
RATE="${RATE:-20}"; SECS="${SECS:-90}"; REPLICA_CAPACITY="${REPLICA_CAPACITY:-32}"
SIM0=18900; SIM0_ADMIN=18901; SIM1=18902; SIM1_ADMIN=18903; GW=18910; GW_ADMIN=18911
AGENT=18920; PROM=18930
BIN="${DEEPWATCH_BIN:-}"
if [ -z "$BIN" ]; then
    cargo build --release -p deepwatch >&2
    BIN="${CARGO_TARGET_DIR:-target}/release/deepwatch"
fi
for tool in prometheus python3 curl; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install prometheus)" >&2; exit 1; }
done
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$work"; }
trap cleanup EXIT

cat >"$work/deepwatch.toml" <<TOML
[agent]
listen = "127.0.0.1:$AGENT"
[agent.collectors]
gpu = false
process = false
logs = false
peers = false
[[agent.engines]]
name = "sim-0"
url = "http://127.0.0.1:$SIM0/metrics"
interval_ms = 1000
[[agent.engines]]
name = "sim-1"
url = "http://127.0.0.1:$SIM1/metrics"
interval_ms = 1000

[gateway]
listen = "127.0.0.1:$GW"
admin_listen = "127.0.0.1:$GW_ADMIN"
[[gateway.pools]]
name = "blue"
upstreams = ["http://127.0.0.1:$SIM0", "http://127.0.0.1:$SIM1"]

[analyzer]
prometheus_url = "http://127.0.0.1:$PROM"
TOML
cat >"$work/prometheus.yml" <<YML
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: deepwatch-agent
    static_configs: [{targets: ["127.0.0.1:$AGENT"]}]
  - job_name: deepwatch-gateway
    static_configs: [{targets: ["127.0.0.1:$GW_ADMIN"]}]
YML
for i in 0 1; do
    port=$((SIM0 + 2 * i)); admin=$((SIM0_ADMIN + 2 * i))
    "$BIN" sim --listen 127.0.0.1:$port --admin-listen 127.0.0.1:$admin --model bench \
        --admin-token bench --seed $((i + 1)) >"$work/sim-$i.log" 2>&1 & pids+=($!)
done
"$BIN" gateway --config "$work/deepwatch.toml" >"$work/gw.log" 2>&1 & pids+=($!)
"$BIN" agent --config "$work/deepwatch.toml" >"$work/agent.log" 2>&1 & pids+=($!)
prometheus --config.file "$work/prometheus.yml" --storage.tsdb.path "$work/tsdb" \
    --web.listen-address 127.0.0.1:$PROM >"$work/prom.log" 2>&1 & pids+=($!)
wait_up() { for _ in $(seq 150); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "not up: $1" >&2; exit 1; }
wait_up http://127.0.0.1:$SIM0/health; wait_up http://127.0.0.1:$SIM1/health
wait_up http://127.0.0.1:$GW_ADMIN/healthz; wait_up http://127.0.0.1:$AGENT/healthz
wait_up http://127.0.0.1:$PROM/-/ready

"$BIN" load --target "http://127.0.0.1:$GW" --model bench --rate "$RATE" --duration "${SECS}s" \
    --requests 1000000 --prompt-tokens 64 --output-tokens 128 --no-progress \
    --json "$work/load.json" >"$work/load.log" 2>&1
sleep 3
window="$((SECS + 10))s"
plan=(analyze capacity --config "$work/deepwatch.toml" --window "$window" --step 1s
      --replica-capacity "$REPLICA_CAPACITY")
echo "load: $RATE req/s for ${SECS}s; plan: deepwatch ${plan[*]/$work\//}"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["summary"]; print("load:", s["succeeded"], "of", s["sent"], "requests succeeded")' "$work/load.json"
"$BIN" "${plan[@]}"
"$BIN" "${plan[@]}" --format json

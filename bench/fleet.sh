#!/usr/bin/env bash
# Fleet-size costs of the generated rules and dashboards (docs/scaling.md): a simulated fleet of
# NODES nodes x GPUS GPUs x 1 engine (real agents in one process, crates/deepwatch-agent/
# examples/fleet.rs) scraped every 5 s by Debian's Prometheus with the committed rules of
# deploy/prometheus/rules. After MINUTES it reports: series per node and in total, scrape payload
# size, Prometheus memory (peak RSS and Go heap), rule-evaluation time per group and the slowest
# rules, the latency of every dashboard panel query (6 h range, 20 s step, variables = All), and
# the analyzer's evaluation round (crates/deepwatch-analyzer/examples/tick.rs) alone and as one
# of two shards.
#
# Build first, then run alone on the machine:
#   flock -s /work/cpu.lock cargo build --release -p deepwatch-agent --example fleet \
#     -p deepwatch-analyzer --example tick
#   flock -x /work/cpu.lock bench/fleet.sh [NODES] [GPUS] [MINUTES] > bench-fleet.txt
set -euo pipefail
cd "$(dirname "$0")/.."
NODES=${1:-1000}
GPUS=${2:-8}
MINUTES=${3:-5}
TARGET=${CARGO_TARGET_DIR:-target}
FLEET=$TARGET/release/examples/fleet
TICK=$TARGET/release/examples/tick
for b in "$FLEET" "$TICK"; do
  [ -x "$b" ] || { echo "fleet.sh: $b missing; build it first (see the header)" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/deepwatch-fleet.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
FLEET_PORT=$(free_port)
PROM_PORT=$(free_port)
PROM=http://127.0.0.1:$PROM_PORT

"$FLEET" --nodes "$NODES" --gpus "$GPUS" --listen "127.0.0.1:$FLEET_PORT" \
  --targets "$TMP/targets.json" 2> "$TMP/fleet.log" &
PIDS+=($!)
FLEET_PID=$!
for _ in $(seq 1 600); do [ -s "$TMP/targets.json" ] && break; sleep 0.1; done
[ -s "$TMP/targets.json" ] || { echo "fleet did not start:"; cat "$TMP/fleet.log"; exit 1; }

mkdir -p "$TMP/rules"
cp deploy/prometheus/rules/*.yml "$TMP/rules/"
cat > "$TMP/prometheus.yml" <<EOF
global:
  scrape_interval: 5s
  scrape_timeout: 4s
  evaluation_interval: 5s
rule_files:
- rules/*.yml
scrape_configs:
- job_name: prometheus
  static_configs:
  - targets: ['127.0.0.1:$PROM_PORT']
- job_name: deepwatch-agent
  file_sd_configs:
  - files: ['$TMP/targets.json']
EOF
prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" --storage.tsdb.retention.time=1d \
  --log.level=warn 2> "$TMP/prometheus.log" &
PIDS+=($!)
PROM_PID=$!
for _ in $(seq 1 300); do curl -sf "$PROM/-/ready" >/dev/null && break; sleep 0.2; done

cat > "$TMP/values.py" <<'PY'
import json, sys
result = json.load(sys.stdin)["data"]["result"]
print(" ".join("%.6g" % float(x["value"][1]) for x in result) or "none")
PY
q() { curl -s "$PROM/api/v1/query" --data-urlencode "query=$1" | python3 "$TMP/values.py"; }
rss_mib() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }

echo "# deepwatch fleet benchmark: $NODES nodes x $GPUS GPUs x 1 engine, ${MINUTES} min, $(nproc) cores"
echo "# prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}')"
PEAK=0
END=$(( $(date +%s) + MINUTES * 60 ))
while [ "$(date +%s)" -lt "$END" ]; do
  sleep 15
  r=$(rss_mib "$PROM_PID"); [ "$r" -gt "$PEAK" ] && PEAK=$r
done

echo
echo "## series and payload"
echo "targets up: $(q 'sum(up{job="deepwatch-agent"})') of $NODES"
echo "series per node (samples per scrape, avg min max): $(q 'avg(scrape_samples_scraped{job="deepwatch-agent"})') $(q 'min(scrape_samples_scraped{job="deepwatch-agent"})') $(q 'max(scrape_samples_scraped{job="deepwatch-agent"})')"
echo "head series in total: $(q 'prometheus_tsdb_head_series')"
echo "recording-rule series: $(q 'count({__name__=~"[a-zA-Z_]+:[^:]+:.+"})')"
BYTES=$(curl -s "http://127.0.0.1:$FLEET_PORT/node/0/metrics" | wc -c)
GZIP=$(curl -s "http://127.0.0.1:$FLEET_PORT/node/0/metrics" | gzip -c | wc -c)
echo "scrape payload per node: $BYTES bytes text, $GZIP bytes gzip"
echo "scrape duration per node (avg max, s): $(q 'avg(scrape_duration_seconds{job="deepwatch-agent"})') $(q 'max(scrape_duration_seconds{job="deepwatch-agent"})')"
echo "ingestion (samples/s): $(q 'sum(rate(prometheus_tsdb_head_samples_appended_total[1m]))')"

echo
echo "## prometheus memory"
echo "peak RSS MiB: $PEAK; now: $(rss_mib "$PROM_PID"); go heap in use MiB: $(q 'go_memstats_heap_inuse_bytes{job="prometheus"} / 2^20')"
echo "fleet simulator RSS MiB: $(rss_mib "$FLEET_PID")"
echo "prometheus CPU (cores, 1m): $(q 'rate(process_cpu_seconds_total{job="prometheus"}[1m])')"

echo
echo "## rule evaluation (last round, seconds)"
curl -s "$PROM/api/v1/rules" | python3 -c "$(cat <<'PY'
import json, sys
groups = json.load(sys.stdin)["data"]["groups"]
total = 0.0
for g in sorted(groups, key=lambda g: -g["evaluationTime"]):
    total += g["evaluationTime"]
    print("group %s: %.4f every %ss, %d rules" % (g["name"], g["evaluationTime"], g["interval"], len(g["rules"])))
print("all groups: %.4f" % total)
rules = [(r["evaluationTime"], r["name"], g["name"]) for g in groups for r in g["rules"]]
for t, name, group in sorted(rules, reverse=True)[:8]:
    print("  slowest rule %s (%s): %.4f" % (name, group, t))
PY
)"
echo "rule group duration p99 over the run (max of groups): $(q 'max(prometheus_rule_group_duration_seconds{quantile="0.99"})')"
echo "missed rule iterations: $(q 'sum(prometheus_rule_group_iterations_missed_total)')"
echo "firing alerts by name (series):"
curl -s "$PROM/api/v1/query" --data-urlencode 'query=count by (alertname) (ALERTS{alertstate="firing"})' \
  | python3 -c 'import json,sys; [print("  %s %s" % (r["metric"]["alertname"], r["value"][1])) for r in json.load(sys.stdin)["data"]["result"]]'

echo
echo "## dashboard queries (6 h range, 20 s step, variables All)"
python3 - "$PROM" deploy/grafana/dashboards/*.json <<'PY'
import json, re, sys, time, urllib.parse, urllib.request
prom, files = sys.argv[1], sys.argv[2:]
now = time.time()
def exprs(panel):
    for t in panel.get("targets") or []:
        if t.get("expr"):
            yield panel.get("title", "?"), t["expr"]
    for p in panel.get("panels") or []:
        yield from exprs(p)
for f in files:
    d = json.load(open(f))
    times = []
    for title, e in exprs(d):
        e = re.sub(r"\$\{?(model_version|model|instance|gpu)\}?", ".*", e)
        e = e.replace("$__rate_interval", "1m").replace("$__range", "6h").replace("$__interval", "20s")
        params = urllib.parse.urlencode({"query": e, "start": now - 6 * 3600, "end": now, "step": 20})
        t0 = time.time()
        try:
            with urllib.request.urlopen(f"{prom}/api/v1/query_range?{params}", timeout=120) as r:
                body = json.load(r)
            n = len(body["data"]["result"])
        except (OSError, ValueError) as err:
            # One query past the limit must not cost the rest of the report; it is counted.
            n = f"failed: {err}"
        times.append((time.time() - t0, title, e, n))
    times.sort(reverse=True)
    total = sum(t for t, *_ in times)
    failed = sum(1 for *_, n in times if isinstance(n, str))
    print(f"{f.split('/')[-1]}: {len(times)} queries, all {total:.3f} s, slowest {times[0][0]:.3f} s, failed {failed}")
    for t, title, e, n in times[:3] + [x for x in times[3:] if isinstance(x[3], str)]:
        print(f"  {t:.3f} s  {title} ({n} series): {e[:150]}")
PY

echo
echo "## analyzer evaluation round (default analyzer config)"
"$TICK" --prometheus "$PROM" --ticks 3
"$TICK" --prometheus "$PROM" --ticks 3 --shard 0/2
"$TICK" --prometheus "$PROM" --ticks 3 --shard 1/2

#!/usr/bin/env bash
# Soak: the real gateway in front of the simulator (`deepwatch sim --fast`) at a constant
# open-loop rate (`deepwatch load`) for a long run, with the JSON request log on. Samples the
# gateway's RSS and open file descriptors every 5 s, then checks that the request log holds one
# line per request the gateway counted (deepwatch_requests_total) and that its own
# deepwatch_gateway_request_log_lines_total says none was dropped or failed.
# Usage: bench/soak.sh [SECONDS]   (default 600; env: RATE=300 DEEPWATCH_BIN=path)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-600}"; RATE="${RATE:-300}"
SIM=18800; SIM_ADMIN=18801; GW=18810; GW_ADMIN=18811
BIN="${DEEPWATCH_BIN:-}"
if [ -z "$BIN" ]; then
    cargo build --release -p deepwatch >&2
    BIN="${CARGO_TARGET_DIR:-target}/release/deepwatch"
fi
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$work"; }
trap cleanup EXIT

"$BIN" sim --listen 127.0.0.1:$SIM --admin-listen 127.0.0.1:$SIM_ADMIN --model soak --fast \
    --admin-token soak >"$work/sim.log" 2>&1 & pids+=($!)
cat >"$work/deepwatch.toml" <<TOML
[gateway]
listen = "127.0.0.1:$GW"
admin_listen = "127.0.0.1:$GW_ADMIN"
admin_token = "soak"
[gateway.request_log]
path = "$work/requests.jsonl"
[[gateway.pools]]
name = "blue"
weight = 100
upstreams = ["http://127.0.0.1:$SIM"]
TOML
"$BIN" gateway --config "$work/deepwatch.toml" >"$work/gw.log" 2>&1 & gw=$!; pids+=($gw)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$GW_ADMIN/healthz" >/dev/null && break; sleep 0.1; done

sample() {
    local rss fds
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$gw/status")
    fds=$(ls "/proc/$gw/fd" | wc -l)
    echo "$1 $rss $fds"
}
sample 0 >"$work/samples"
"$BIN" load --target "http://127.0.0.1:$GW" --model soak --rate "$RATE" --duration "${SECS}s" \
    -n 100000000 --prompt-tokens 64 --output-tokens 16 --no-progress \
    --json "$work/load.json" >"$work/load.log" 2>&1 & load=$!; pids+=($load)
t=0
while kill -0 "$load" 2>/dev/null; do
    sleep 5; t=$((t + 5))
    kill -0 "$load" 2>/dev/null && sample "$t" >>"$work/samples"
done
sleep 2  # the writer thread flushes within a second
sample end >>"$work/samples"

metrics="$(curl -sf "http://127.0.0.1:$GW_ADMIN/metrics")"
requests=$(echo "$metrics" | awk '/^deepwatch_requests_total\{/ {s += $NF} END {printf "%d", s}')
written=$(echo "$metrics" | awk '/^deepwatch_gateway_request_log_lines_total\{outcome="written"\}/ {printf "%d", $NF}')
lost=$(echo "$metrics" | awk '/^deepwatch_gateway_request_log_lines_total\{outcome="(dropped|failed)"\}/ {s += $NF} END {printf "%d", s}')
lines=$(wc -l <"$work/requests.jsonl")
echo "soak: ${SECS}s at ${RATE} req/s through the gateway"
tail -n 3 "$work/load.log" | sed 's/^/load: /'
awk 'NR == 2 {first = $2} $1 != "end" && $1 > 0 {n++; if ($2 > max) max = $2; if (min == "" || $2 < min) min = $2; fmax = ($3 > fmax ? $3 : fmax)}
     {last = $2; lastfd = $3}
     END {printf "gateway RSS KiB: after 5 s %d, min %d, max %d, end %d (%d samples); fds max %d, end %d\n", first, min, max, last, n, fmax, lastfd}' "$work/samples"
# The trajectory: RSS each minute, and its slope over the second half (a leak keeps growing;
# allocator warm-up levels off).
awk '$1 != "end" && $1 > 0 && $1 % 60 == 0 {printf "%s%ds %d", sep, $1, $2; sep = ", "} END {print ""}' "$work/samples" |
    sed 's/^/gateway RSS KiB by minute: /'
awk -v half=$((SECS / 2)) '$1 != "end" && $1 >= half {n++; sx += $1; sy += $2; sxx += $1 * $1; sxy += $1 * $2}
     END {if (n > 2) printf "gateway RSS slope over the second half: %.1f KiB/min\n", 60 * (n * sxy - sx * sy) / (n * sxx - sx * sx)}' "$work/samples"
echo "requests counted by the gateway: $requests; request-log lines: $lines; written counter: $written; dropped+failed: $lost"
if [ "$lines" -ne "$requests" ] || [ "$lost" -ne 0 ]; then
    echo "FAIL: request log and request counter disagree" >&2
    exit 1
fi
echo "OK: one log line per request"

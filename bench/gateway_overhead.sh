#!/usr/bin/env bash
# Gateway overhead on loopback: the simulator with zero added latency (`deepwatch sim --fast`)
# called directly, through `deepwatch gateway`, and through nginx as a plain reverse proxy, in
# the same run on the same machine.
#   1. latency at a constant open-loop rate (`deepwatch load --rate`): p50/p99/p99.9 end to end,
#      non-streaming and streaming; added latency = proxy minus direct;
#   2. maximum throughput (wrk, closed loop, 64 connections), non-streaming and streaming, in
#      interleaved rounds (median and range per target);
#   3. the gateway's own overhead histogram (deepwatch_gateway_overhead_seconds) from /metrics.
# Usage: bench/gateway_overhead.sh   (env: RATE=2000 SECS=20 TPUT_SECS=5 ROUNDS=5 CONNS=64 OUTPUT_TOKENS=16)
# Before/after: DEEPWATCH_BIN_B=<other build> adds its gateway as target `gateway-b` (same
# simulator, own port) to the throughput rounds, interleaved with the others, and reports
# gateway-b / nginx and gateway / gateway-b per round.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE="${RATE:-2000}"; SECS="${SECS:-20}"; TPUT_SECS="${TPUT_SECS:-5}"; ROUNDS="${ROUNDS:-5}"; CONNS="${CONNS:-64}"
OUT_TOK="${OUTPUT_TOKENS:-16}"
SIM=18700; SIM_ADMIN=18701; GW=18710; GW_ADMIN=18711; NGX=18720; GW_B=18730; GW_B_ADMIN=18731
BIN_B="${DEEPWATCH_BIN_B:-}"
BIN="${DEEPWATCH_BIN:-}"
if [ -z "$BIN" ]; then
    cargo build --release -p deepwatch >&2
    BIN="${CARGO_TARGET_DIR:-target}/release/deepwatch"
fi
for tool in wrk /usr/sbin/nginx python3 curl; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install wrk nginx-light curl)" >&2; exit 1; }
done
work="$(mktemp -d)"; chmod 0777 "$work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$work"; }
trap cleanup EXIT

"$BIN" sim --listen 127.0.0.1:$SIM --admin-listen 127.0.0.1:$SIM_ADMIN --model bench --fast \
    --admin-token bench >"$work/sim.log" 2>&1 & pids+=($!)
"$BIN" gateway --listen 127.0.0.1:$GW --admin-listen 127.0.0.1:$GW_ADMIN --admin-token bench \
    --upstream http://127.0.0.1:$SIM >"$work/gw.log" 2>&1 & pids+=($!)
if [ -n "$BIN_B" ]; then
    "$BIN_B" gateway --listen 127.0.0.1:$GW_B --admin-listen 127.0.0.1:$GW_B_ADMIN --admin-token bench \
        --upstream http://127.0.0.1:$SIM >"$work/gw-b.log" 2>&1 & pids+=($!)
fi
cat >"$work/nginx.conf" <<NGINX
worker_processes auto;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $work/body; proxy_temp_path $work/proxy;
    fastcgi_temp_path $work/fcgi; uwsgi_temp_path $work/uwsgi; scgi_temp_path $work/scgi;
    upstream sim { server 127.0.0.1:$SIM; keepalive 256; }
    server {
        listen 127.0.0.1:$NGX;
        location / {
            proxy_pass http://sim;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }
    }
}
NGINX
as_nobody=()
if [ "$(id -u)" = 0 ] && command -v runuser >/dev/null; then as_nobody=(runuser -u nobody --); fi
"${as_nobody[@]}" /usr/sbin/nginx -c "$work/nginx.conf" -p "$work" -g 'daemon off;' & pids+=($!)

wait_up() { for _ in $(seq 100); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "not up: $1" >&2; exit 1; }
wait_up http://127.0.0.1:$SIM/health; wait_up http://127.0.0.1:$GW_ADMIN/healthz; wait_up http://127.0.0.1:$NGX/health
[ -z "$BIN_B" ] || wait_up http://127.0.0.1:$GW_B_ADMIN/healthz

declare -A URL=([direct]=http://127.0.0.1:$SIM [gateway]=http://127.0.0.1:$GW [nginx]=http://127.0.0.1:$NGX)
targets=(direct gateway nginx)
tput_targets=("${targets[@]}")
if [ -n "$BIN_B" ]; then
    URL[gateway-b]=http://127.0.0.1:$GW_B
    tput_targets=(direct gateway gateway-b nginx)
    "$BIN_B" load --target "${URL[gateway-b]}" --model bench --rate 500 -n 1000 -d 2s --prompt-tokens 64 \
        --output-tokens 16 --no-stream --no-progress >/dev/null 2>&1
    echo "# gateway-b: $BIN_B"
fi

echo "# gateway overhead, $(date -u +%FT%TZ), $(nproc) cores, $(uname -r)"
echo "# rate $RATE req/s for $SECS s per run, $OUT_TOK output tokens, 64 prompt tokens"
# Warm-up: connection pools, page cache, CPU frequency.
for t in "${targets[@]}"; do
    "$BIN" load --target "${URL[$t]}" --model bench --rate 500 -n 1000 -d 2s --prompt-tokens 64 \
        --output-tokens "$OUT_TOK" --no-stream --no-progress >/dev/null 2>&1
done

echo
echo "## latency at $RATE req/s (ms, end to end as the load generator sees it)"
echo
echo "| mode | target | ok | failed | p50 | p99 | p99.9 | added p50 | added p99 | added p99.9 |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for mode in non-streaming streaming; do
    flag=(); [ "$mode" = non-streaming ] && flag=(--no-stream)
    for t in "${targets[@]}"; do
        "$BIN" load --target "${URL[$t]}" --model bench --rate "$RATE" -n $((RATE * SECS)) -d "${SECS}s" \
            --prompt-tokens 64 --output-tokens "$OUT_TOK" "${flag[@]}" --no-progress \
            --json "$work/$mode-$t.json" >/dev/null 2>&1
    done
    python3 - "$work" "$mode" <<'PY'
import json, sys
work, mode = sys.argv[1], sys.argv[2]
s = {t: json.load(open(f"{work}/{mode}-{t}.json"))["summary"] for t in ("direct", "gateway", "nginx")}
d = s["direct"]["e2e_ms"]
for t in ("direct", "gateway", "nginx"):
    e = s[t]["e2e_ms"]
    added = "| - | - | -" if t == "direct" else "| %+.3f | %+.3f | %+.3f" % (e["p50"] - d["p50"], e["p99"] - d["p99"], e["p999"] - d["p999"])
    print("| %s | %s | %d | %d | %.3f | %.3f | %.3f %s |" % (mode, t, s[t]["succeeded"], s[t]["failed"], e["p50"], e["p99"], e["p999"], added))
PY
done

echo
echo "## gateway's own overhead histogram (deepwatch_gateway_overhead_seconds, all runs above)"
echo
curl -s http://127.0.0.1:$GW_ADMIN/metrics | python3 -c '
import sys, re
b = {}; n = 0; total = 0.0
for line in sys.stdin:
    if "endpoint=\"/v1/chat/completions\"" not in line: continue
    m = re.match(r"deepwatch_gateway_overhead_seconds_bucket\{.*le=\"([^\"]+)\"\} (\S+)", line)
    if m: b[m.group(1)] = b.get(m.group(1), 0) + float(m.group(2))
    elif line.startswith("deepwatch_gateway_overhead_seconds_count"): n += float(line.split()[-1])
    elif line.startswith("deepwatch_gateway_overhead_seconds_sum"): total += float(line.split()[-1])
edges = sorted(((float(k), v) for k, v in b.items() if k != "+Inf"))
def q(p):
    want = p * n; prev_e, prev_c = 0.0, 0.0
    for e, c in edges:
        if c >= want:
            return (prev_e + (e - prev_e) * ((want - prev_c) / max(c - prev_c, 1e-9))) * 1e3
        prev_e, prev_c = e, c
    return float("inf")
print("| requests | mean | p50 | p99 | p99.9 | share <= 1 ms |")
print("|---|---|---|---|---|---|")
le1 = dict(edges).get(0.001, 0)
print("| %d | %.4f ms | %.4f ms | %.4f ms | %.4f ms | %.4f %% |" % (n, total / max(n, 1) * 1e3, q(0.5), q(0.99), q(0.999), 100 * le1 / max(n, 1)))
'

echo
echo "## maximum throughput (wrk, 1 thread, $CONNS connections, $TPUT_SECS s per run, $ROUNDS interleaved rounds)"
echo
echo "Each round runs direct, gateway and nginx back to back, so slow spells of a shared machine"
echo "hit all three; the table gives each target's median over the rounds and its range."
echo
echo "| mode | target | median req/s | min | max | median p99 ms | errors | gateway / nginx (median) | per round |"
echo "|---|---|---|---|---|---|---|---|---|"
for mode in non-streaming streaming; do
    stream=false; [ "$mode" = streaming ] && stream=true
    cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"bench","stream":$stream,"max_tokens":$OUT_TOK,"messages":[{"role":"user","content":"Summarise the meeting notes in three bullet points for the team."}]}'
LUA
    : >"$work/tput-$mode.tsv"
    for round in $(seq "$ROUNDS"); do
        for t in "${tput_targets[@]}"; do
            out="$(wrk -t1 -c"$CONNS" -d"${TPUT_SECS}s" --latency -s "$work/post.lua" "${URL[$t]}/v1/chat/completions")"
            rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
            p99="$(awk '$1=="99%" {print $2}' <<<"$out")"
            errs="$(awk '/Non-2xx|Socket errors/ {printf "%s ", $0}' <<<"$out")"
            printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$t" "$rps" "$p99" "${errs:-0}" >>"$work/tput-$mode.tsv"
        done
    done
    python3 - "$work/tput-$mode.tsv" "$mode" <<'PY'
import re, statistics, sys
path, mode = sys.argv[1], sys.argv[2]
rows = [l.rstrip("\n").split("\t") for l in open(path)]
def ms(v):
    m = re.match(r"([0-9.]+)(us|ms|s)$", v)
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)] if m else float("nan")
by = {}
for rnd, t, rps, p99, errs in rows:
    by.setdefault(t, []).append((int(rnd), float(rps), ms(p99), errs.strip()))
med = {t: statistics.median(r[1] for r in v) for t, v in by.items()}
def per_round(a, b):
    num = {r[0]: r[1] for r in by[a]}
    return " ".join("%.2f" % (num[r[0]] / r[1]) for r in by[b])
for t in ("direct", "gateway", "gateway-b", "nginx"):
    if t not in by:
        continue
    v = by[t]
    errs = ", ".join(sorted({r[3] for r in v if r[3] != "0"})) or "0"
    ratio = ("", "")
    if t == "nginx":
        ratio = ("%.2f" % (med["gateway"] / med["nginx"]), per_round("gateway", "nginx"))
    elif t == "gateway-b":
        ratio = ("%.2f (b)" % (med["gateway-b"] / med["nginx"]), per_round("gateway-b", "nginx"))
    print("| %s | %s | %.0f | %.0f | %.0f | %.2f | %s | %s | %s |" % (mode, t, med[t], min(r[1] for r in v),
          max(r[1] for r in v), statistics.median(r[2] for r in v), errs, *ratio))
if "gateway-b" in by:
    print("| %s | gateway / gateway-b | | | | | | %.2f | %s |" % (mode, med["gateway"] / med["gateway-b"], per_round("gateway", "gateway-b")))
PY
done

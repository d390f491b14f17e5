#!/usr/bin/env bash
# The load generator's own ceiling: how many requests per second `deepwatch load` can drive and
# measure on this machine, open loop (Poisson) and closed loop, against
#   1. nginx returning a static SSE body (the cheapest possible server), and
#   2. `deepwatch sim --fast` (zero-latency simulator, the target of the gateway benchmark).
# Peer in the same run: wrk (C, closed loop, no SSE parsing) against the same nginx, with the
# same request body, as the raw HTTP ceiling of this machine.
#
# Usage: bench/load_ceiling.sh [SECONDS_PER_STEP] [RATES...]
#   defaults: 5 s per step, rates 1000 2000 4000 6000 8000
# Needs: cargo, nginx (nginx-light), wrk (installed with apt-get when missing and root), python3.
set -euo pipefail
cd "$(dirname "$0")/.."

STEP=${1:-5}
shift || true
RATES=${*:-1000 2000 4000 6000 8000}
TOKENS=16

if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ]; then apt-get install -y wrk >/dev/null; else echo "install wrk" >&2; exit 1; fi
fi
# DEEPWATCH_BIN=path skips the build (use a release binary of this tree).
BIN=${DEEPWATCH_BIN:-}
if [ -z "$BIN" ]; then
  cargo build --release -p deepwatch >&2
  BIN=target/release/deepwatch
fi

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$TMP/nginx.pid" ] && kill "$(cat "$TMP/nginx.pid")" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
NGINX_PORT=$(free_port)
SIM_PORT=$(free_port)
ADMIN_PORT=$(free_port)

# A static chat stream like the simulator's: role chunk, 16 tokens, usage chunk, [DONE].
python3 - "$TMP" "$NGINX_PORT" "$TOKENS" <<'PY'
import json, sys
tmp, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
head = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "bench"}
def chunk(delta, finish=None):
    return "data: " + json.dumps({**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}, separators=(",", ":")) + "\n\n"
body = chunk({"role": "assistant", "content": ""})
for i in range(n):
    body += chunk({"content": " tok"}, "length" if i == n - 1 else None)
body += "data: " + json.dumps({**head, "choices": [], "usage": {"prompt_tokens": 68, "completion_tokens": n, "total_tokens": 68 + n}}, separators=(",", ":")) + "\n\n"
body += "data: [DONE]\n\n"
open(f"{tmp}/body.sse", "w").write(body)
conf = f"""
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp};
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      default_type "text/event-stream";
      return 200 '{body}';
    }}
  }}
}}
"""
open(f"{tmp}/nginx.conf", "w").write(conf)
PY
nginx -c "$TMP/nginx.conf" -p "$TMP" -e "$TMP/error.log"

"$BIN" sim --fast --listen "127.0.0.1:$SIM_PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" \
  --model bench --admin-token bench 2>"$TMP/sim.log" &
PIDS+=($!)
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$SIM_PORT/health" >/dev/null && curl -sf "http://127.0.0.1:$NGINX_PORT/" >/dev/null && break
  sleep 0.1
done

summarize() { # json-file label mode
  python3 - "$@" <<'PY'
import json, sys
path, label, mode = sys.argv[1:4]
s = json.load(open(path))["summary"]
e2e = s["e2e_ms"] or {}
errors = ",".join(f"{k}={v}" for k, v in s["errors"].items()) or "0"
print(f"| {label} | {mode} | {s['sent']} | {s['offered_rate']:.0f} | {s['request_throughput']:.0f} | "
      f"{s['output_token_throughput']:.0f} | {errors} | {s['skipped']} | "
      f"{e2e.get('p50', float('nan')):.2f} | {e2e.get('p99', float('nan')):.2f} |")
PY
}

echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "command: bench/load_ceiling.sh $STEP $RATES"
echo
echo "| target | mode | sent | offered req/s | ok req/s | output tok/s | errors | skipped | e2e p50 ms | e2e p99 ms |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for target in "nginx:$NGINX_PORT" "sim:$SIM_PORT"; do
  name=${target%%:*}
  url="http://127.0.0.1:${target##*:}"
  for rate in $RATES; do
    "$BIN" load --target "$url" --model bench --rate "$rate" -n $((rate * STEP)) -d "${STEP}s" \
      --prompt-tokens 64 --output-tokens "$TOKENS" --no-progress --timeout 10s \
      --json "$TMP/run.json" >/dev/null
    summarize "$TMP/run.json" "$name" "open $rate/s"
  done
  "$BIN" load --target "$url" --model bench --concurrency 64 -n 100000000 -d "${STEP}s" \
    --prompt-tokens 64 --output-tokens "$TOKENS" --no-progress --timeout 10s \
    --json "$TMP/run.json" >/dev/null
  summarize "$TMP/run.json" "$name" "closed c=64"
done

cat >"$TMP/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"bench","messages":[{"role":"user","content":"' .. string.rep("abcd", 64) .. '"}],"max_tokens":16,"stream":true,"stream_options":{"include_usage":true}}'
LUA
echo
echo "peer: wrk -t2 -c64 -d${STEP}s (closed loop, no SSE parsing), same body:"
for target in "nginx:$NGINX_PORT" "sim:$SIM_PORT"; do
  rps=$(wrk -t2 -c64 -d"${STEP}s" -s "$TMP/post.lua" "http://127.0.0.1:${target##*:}/v1/chat/completions" | awk '/Requests\/sec/ {print $2}')
  echo "- wrk -> ${target%%:*}: $rps req/s"
done

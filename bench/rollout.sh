#!/usr/bin/env bash
# Canary rollouts with the default [gateway.rollout] settings, through the real binaries: two
# `deepwatch sim` (blue v1 and green v2, same latency model), `deepwatch gateway` (blue 100,
# green 0) and `deepwatch load` (open loop, streamed chat, 64 prompt and 16 output tokens).
# For each rate and canary kind the rollout is started with `POST /admin/rollouts
# {"pool": "green"}` a few seconds into the load, and polled every 0.25 s until it ends:
#   healthy      green as blue                         -> time to promote
#   latency-bad  green's TTFT +300 ms (sim fault)      -> time to roll back after the fault
#   error-bad    green answers 50 % of requests 500    -> time to roll back after the fault
# The fault is set on green just before the rollout starts, so "after the fault" is from the
# start of the rollout (the canary's first traffic). Client failures come from the load
# generator's summary; the gateway retries a canary's 5xx on blue (gateway.retry).
# Usage: bench/rollout.sh   (env: RATES="10 100" KINDS="healthy latency-bad error-bad";
#                            DEEPWATCH_BIN=path to skip the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
RATES="${RATES:-10 100}"
KINDS="${KINDS:-healthy latency-bad error-bad}"
BLUE=18800; BLUE_ADMIN=18801; GREEN=18802; GREEN_ADMIN=18803; GW=18810; GW_ADMIN=18811
TOKEN=bench
BIN="${DEEPWATCH_BIN:-}"
if [ -z "$BIN" ]; then
    cargo build --release -p deepwatch >&2
    BIN="${CARGO_TARGET_DIR:-target}/release/deepwatch"
fi
for tool in python3 curl; do
    command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$work"; }
trap cleanup EXIT

cat >"$work/deepwatch.toml" <<TOML
[gateway]
listen = "127.0.0.1:$GW"
admin_listen = "127.0.0.1:$GW_ADMIN"
admin_token = "$TOKEN"
[[gateway.pools]]
name = "blue"
weight = 100
model_version = "v1"
upstreams = ["http://127.0.0.1:$BLUE"]
[[gateway.pools]]
name = "green"
weight = 0
model_version = "v2"
upstreams = ["http://127.0.0.1:$GREEN"]
TOML
"$BIN" sim --listen 127.0.0.1:$BLUE --admin-listen 127.0.0.1:$BLUE_ADMIN --model bench \
    --model-version v1 --admin-token $TOKEN --seed 1 >"$work/blue.log" 2>&1 & pids+=($!)
"$BIN" sim --listen 127.0.0.1:$GREEN --admin-listen 127.0.0.1:$GREEN_ADMIN --model bench \
    --model-version v2 --admin-token $TOKEN --seed 2 >"$work/green.log" 2>&1 & pids+=($!)
"$BIN" gateway --config "$work/deepwatch.toml" >"$work/gw.log" 2>&1 & pids+=($!)
wait_up() { for _ in $(seq 100); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "not up: $1" >&2; exit 1; }
wait_up http://127.0.0.1:$BLUE/health; wait_up http://127.0.0.1:$GREEN/health
wait_up http://127.0.0.1:$GW_ADMIN/healthz

gw_admin() { curl -sf -X "$1" -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    ${3:+-d "$3"} "http://127.0.0.1:$GW_ADMIN$2"; }
green_fault() { curl -sf -X PUT -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \
    -d "$1" "http://127.0.0.1:$GREEN_ADMIN/admin/faults" >/dev/null; }
now() { date +%s.%N; }

# How long the load runs: enough for the rollout to end, with the defaults.
load_secs() {
    case "$1/$2" in
        10/healthy) echo 240 ;; 10/*) echo 60 ;; */healthy) echo 60 ;; *) echo 30 ;;
    esac
}

printf '| rate | canary | outcome | time | time per step | canary / stable requests at the last look | client failures / requests | reason |\n'
printf '|---|---|---|---|---|---|---|---|\n'
for rate in $RATES; do
    for kind in $KINDS; do
        curl -sf -X POST -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$GREEN_ADMIN/admin/reset" >/dev/null
        gw_admin PUT /admin/pools/green/weight '{"weight": 0}' >/dev/null
        gw_admin PUT /admin/pools/blue/weight '{"weight": 100}' >/dev/null
        secs="$(load_secs "$rate" "$kind")"
        "$BIN" load --target "http://127.0.0.1:$GW" --model bench --rate "$rate" --duration "${secs}s" \
            --requests 1000000 --prompt-tokens 64 --output-tokens 16 --timeout 30s --no-progress \
            --json "$work/load.json" >"$work/load.log" 2>&1 &
        load_pid=$!; pids+=($load_pid)
        sleep 5
        case "$kind" in
            latency-bad) green_fault '{"ttft_added_ms": 300}' ;;
            error-bad) green_fault '{"error_rate": 0.5, "error_status": 500}' ;;
        esac
        t0="$(now)"
        gw_admin POST /admin/rollouts '{"pool": "green", "stable": "blue"}' >/dev/null
        polls=0
        while gw_admin GET /admin/rollouts | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["current"] else 1)'; do
            sleep 0.25; polls=$((polls + 1))
            if [ "$polls" -gt $((secs * 4)) ]; then
                gw_admin POST /admin/rollouts/rollback '{"reason": "bench: not finished while the load ran"}' >/dev/null
            fi
        done
        t1="$(now)"
        gw_admin GET /admin/rollouts >"$work/rollout.json"
        gw_admin GET '/admin/events?limit=20' >"$work/events.json"
        wait "$load_pid" || true
        python3 - "$rate" "$kind" "$t0" "$t1" "$work/load.json" "$work/rollout.json" "$work/events.json" <<'PY'
import json, sys
from datetime import datetime
rate, kind, t0, t1, load = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
doc = json.load(open(sys.argv[6]))["history"][0]
# Seconds spent at each weight, from this rollout's deploy events.
events = json.load(open(sys.argv[7]))["events"]
start = max(i for i, e in enumerate(events) if e["event"] == "start" and e["pool"] == "green")
ts = lambda e: datetime.fromisoformat(e["ts"].replace("Z", "+00:00")).timestamp()
mine = [e for e in events[start:] if e["pool"] == "green" and e["event"] in ("step", "promote", "rollback")]
steps = " ".join(f"{s['detail'].split()[-1]} {ts(n) - ts(s):.0f} s" for s, n in zip(mine, mine[1:]))
s = json.load(open(load))["summary"]
a = doc.get("last_analysis") or {}
c, st = a.get("canary", {}), a.get("stable", {})
print(f"| {rate} req/s | {kind} | {doc['status']} | {t1 - t0:.1f} s | {steps or '-'} | {c.get('requests', 0)} / {st.get('requests', 0)} "
      f"| {s['failed']} / {s['sent']} | {doc.get('reason', '')} |")
PY
    done
done

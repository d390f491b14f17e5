#!/usr/bin/env bash
# Gateway CPU per request, two builds side by side: one `deepwatch sim --fast`, gateway A and
# gateway B in front of it, `deepwatch load` at a fixed open-loop rate through each in
# interleaved pairs; CPU = utime+stime of the gateway process from /proc/<pid>/stat.
# Usage: bench/gateway_cpu_ab.sh A_BINARY B_BINARY   (env: RATE=3000 N=15000 PAIRS=3)
set -euo pipefail
A="$1"; B="$2"
RATE="${RATE:-3000}"; N="${N:-15000}"; PAIRS="${PAIRS:-3}"
work="$(mktemp -d)"; pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
"$A" sim --listen 127.0.0.1:18800 --admin-listen 127.0.0.1:18801 --model bench --fast \
    --admin-token b >"$work/sim.log" 2>&1 & pids+=($!)
"$A" gateway --listen 127.0.0.1:18810 --admin-listen 127.0.0.1:18811 --admin-token b \
    --upstream http://127.0.0.1:18800 >"$work/a.log" 2>&1 & pids+=($!); pid_a=$!
"$B" gateway --listen 127.0.0.1:18820 --admin-listen 127.0.0.1:18821 --admin-token b \
    --upstream http://127.0.0.1:18800 >"$work/b.log" 2>&1 & pids+=($!); pid_b=$!
for url in 18800/health 18811/healthz 18821/healthz; do
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$url" >/dev/null && break; sleep 0.1; done
done
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz="$(getconf CLK_TCK)"
echo "| mode | pair | A µs/request | B µs/request |"
echo "|---|---|---|---|"
for mode in streaming non-streaming; do
    flag=(); [ "$mode" = non-streaming ] && flag=(--no-stream)
    for pair in $(seq "$PAIRS"); do
        row="| $mode | $pair"
        for side in a b; do
            port=18810; pid=$pid_a; [ "$side" = b ] && port=18820 && pid=$pid_b
            before="$(ticks "$pid")"
            "$A" load --target "http://127.0.0.1:$port" --model bench --rate "$RATE" -n "$N" \
                --prompt-tokens 64 --output-tokens 16 "${flag[@]}" --no-progress >/dev/null 2>&1
            after="$(ticks "$pid")"
            row="$row | $(awk -v t=$((after - before)) -v hz="$hz" -v n="$N" 'BEGIN {printf "%.1f", t / hz / n * 1e6}')"
        done
        echo "$row |"
    done
done

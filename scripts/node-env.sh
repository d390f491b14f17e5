#!/usr/bin/env bash
# Installs (once) the npm packages scripts/validate-k8s.py uses for the prometheus-operator and
# KEDA schemas: `npm ci` in scripts/k8s-validate from its committed package-lock.json.
# Idempotent and safe to run concurrently: an install made from the same lock file is kept.
set -euo pipefail
dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/k8s-validate"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "node-env: node and npm are needed (Debian: apt-get install nodejs npm)" >&2
    exit 1
fi
exec 9>"$dir/.install.lock"
flock 9
stamp="$dir/node_modules/.deepwatch-lock-sha256"
want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
echo "node-env: npm ci in $dir" >&2
(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
echo "$want" >"$stamp"

#!/usr/bin/env bash
# Installs what deepwatch's demo and tests need on Debian/Ubuntu: the Prometheus stack from the
# distribution's packages, VictoriaMetrics, an SMTP sink and nginx (peer in benchmarks).
# Idempotent: installs only what is missing. Runs as root or through sudo.
set -euo pipefail

# Debian package name -> a binary or file that proves it is installed.
declare -A WANT=(
  [prometheus]=/usr/bin/prometheus
  [prometheus-alertmanager]=/usr/bin/prometheus-alertmanager
  [prometheus-node-exporter]=/usr/bin/prometheus-node-exporter
  [prometheus-pushgateway]=/usr/bin/prometheus-pushgateway
  # VictoriaMetrics and vmalert: the global view of the scale-out test (crates/deepwatch/tests/scaleout.rs)
  # and the remote_write receiver of the agent's push mode.
  [victoria-metrics]=/usr/bin/vmalert
  [python3-aiosmtpd]=/usr/lib/python3/dist-packages/aiosmtpd
  [python3-venv]=checked-below
  [nginx-light]=/usr/sbin/nginx
  [curl]=/usr/bin/curl
  # `systemd-analyze verify` checks the generated units (deploy/systemd).
  [systemd]=/usr/bin/systemd-analyze
  # The prometheus-operator and KEDA schema checks of the generated manifests run on node.
  [nodejs]=/usr/bin/node
  [npm]=/usr/bin/npm
)

missing=()
for pkg in "${!WANT[@]}"; do
  if [ "$pkg" = python3-venv ]; then
    /usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=("$pkg")
    continue
  fi
  [ -e "${WANT[$pkg]}" ] || missing+=("$pkg")
done

if ! command -v cargo >/dev/null 2>&1; then
  echo "install-deps: cargo is not installed. Install Rust with https://rustup.rs (stable, 1.85 or newer), then run this again." >&2
  exit 1
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: everything is installed"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1 || [ ! -r /etc/debian_version ]; then
  echo "install-deps: this is not a Debian/Ubuntu system (no apt-get). Install these by hand: ${missing[*]}" >&2
  echo "install-deps: deepwatch needs prometheus, alertmanager, amtool, promtool, node_exporter, pushgateway, victoria-metrics and python3 with aiosmtpd on PATH or in /usr/bin." >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "install-deps: need root or sudo to install: ${missing[*]}" >&2
    exit 1
  fi
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Refresh the package index only when it is missing or older than a day.
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -n 1)" ]; then
  $SUDO apt-get update -qq
fi
# Packages start their services under systemd; we run our own instances on free ports, so keep
# the packaged daemons from starting where policy-rc.d is honoured.
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"

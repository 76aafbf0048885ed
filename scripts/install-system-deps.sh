#!/usr/bin/env bash
# Installs the Debian packages mcp-slo's demo and tests run for real, when missing.
# Usage: scripts/install-system-deps.sh [test|demo]
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have prometheus || need+=(prometheus)
have prometheus-alertmanager || need+=(prometheus-alertmanager)
have node || need+=(nodejs)
have npm || need+=(npm)
if [ "${1:-test}" = test ]; then
    have chromium || need+=(chromium)
    have chromedriver || need+=(chromium-driver)
    have victoria-metrics || need+=(victoria-metrics)  # the engine's second PromQL backend
fi
[ ${#need[@]} -eq 0 ] && exit 0

echo "installing Debian packages: ${need[*]}"
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif have sudo && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
else
    echo "error: need root or passwordless sudo to run:" >&2
    echo "  apt-get install -y --no-install-recommends ${need[*]}" >&2
    echo "run that yourself, then run make again." >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"

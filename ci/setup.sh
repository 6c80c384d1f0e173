#!/usr/bin/env bash
# Set up a fresh machine for sflowlab: the Debian packages the tests use (tshark, pmacct,
# iproute2, tcpdump, iptables, openvswitch-switch, ieee-data, chromium and its driver for the
# web UI's browser test) and a virtualenv in .venv with sflowlab and its lab, host, live
# (locust) and test extras.
# Idempotent: a second run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(tshark pmacct iproute2 tcpdump iptables openvswitch-switch ieee-data chromium
      chromium-driver)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing Debian packages: ${missing[*]}"
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.sflowlab-installed
# reinstalled when the packaging, the extras installed here or a C accelerator changed (pip
# builds them in place)
changed() {
  find pyproject.toml setup.py ci/setup.sh sflowlab -newer "$stamp" \
    \( -name pyproject.toml -o -name setup.py -o -name setup.sh -o -name '*.c' \) -print -quit
}
if [ ! -f "$stamp" ] || [ -n "$(changed)" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[lab,host,live,test]"
  touch "$stamp"
fi

# a Docker engine for the tests marked docker; without one they skip and say why
ci/start_dockerd.sh || echo "setup: no Docker engine (see above); the docker tests will skip" >&2

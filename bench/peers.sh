#!/usr/bin/env bash
# Installs the peers the benchmark compares against, inside bench/peers/ (gitignored):
#   - ccusage@20.0.24 from npm (20.0.26, the newest, ships no Linux binary);
#   - ClawMetry from PyPI in its own venv (it pins its own dependencies).
# Safe to re-run: each step is skipped when its peer is already there.
set -euo pipefail
cd "$(dirname "$0")"
PEERS="$PWD/peers"
CCUSAGE_VERSION="20.0.24"
CLAWMETRY_VERSION="${CLAWMETRY_VERSION:-0.12.937}"
mkdir -p "$PEERS"

if [ -x "$PEERS/node_modules/.bin/ccusage" ] \
  && "$PEERS/node_modules/.bin/ccusage" --version 2>/dev/null | grep -q "$CCUSAGE_VERSION"; then
  echo "ccusage $CCUSAGE_VERSION already installed"
else
  if ! command -v npm >/dev/null; then
    echo "npm not found: install Node.js (Debian: apt-get install -y nodejs npm)" >&2
    exit 1
  fi
  npm install --prefix "$PEERS" --no-audit --no-fund --save-exact "ccusage@$CCUSAGE_VERSION"
fi
"$PEERS/node_modules/.bin/ccusage" --version

PY="${PYTHON:-python3}"
if [ -x "$PEERS/clawmetry-venv/bin/clawmetry" ]; then
  echo "clawmetry already installed"
else
  "$PY" -m venv "$PEERS/clawmetry-venv"
  "$PEERS/clawmetry-venv/bin/pip" install -q --disable-pip-version-check \
    "clawmetry==$CLAWMETRY_VERSION"
fi
"$PEERS/clawmetry-venv/bin/pip" show clawmetry | sed -n '1,2p'

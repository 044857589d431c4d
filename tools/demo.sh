#!/usr/bin/env bash
# npm run demo: on a fresh Debian machine, install what is missing, build, start the all-in-one
# local cluster, run a sample array job to completion, show it, stop, exit 0.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v etcd >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "demo: installing etcd-server from Debian" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
  else
    echo "demo: etcd is not installed. Install it with: sudo apt-get install -y etcd-server (or put etcd 3.4+ on PATH), then run npm run demo again." >&2
    exit 1
  fi
fi
if [ ! -d node_modules/@nestjs/core ]; then
  echo "demo: npm install" >&2
  npm install --no-audit --no-fund --loglevel=error
fi
echo "demo: building" >&2
npx tsc -b tsconfig.build.json
exec node apps/cli/dist/main.js dev --demo

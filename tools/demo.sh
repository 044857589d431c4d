#!/usr/bin/env bash
# npm run demo: on a fresh Debian machine, install what is missing (etcd from Debian when root,
# npm packages), build, start the all-in-one local cluster, run a sample workflow to the end,
# show it, stop everything (with --keep: stay up for the console). Exits 0 when it succeeded.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null 2>&1; then
  echo "demo: Node.js 20 is needed (node is not on PATH): see https://nodejs.org/en/download" >&2
  exit 1
fi

# PostgreSQL keeps the history of finished jobs (optional: without it the cluster runs, history off).
if ! command -v initdb >/dev/null 2>&1 && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "demo: PostgreSQL is not installed; installing Debian's postgresql for the history store" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null || echo "demo: could not install postgresql: running without history" >&2
  else
    echo "demo: PostgreSQL is not installed: running without history (apt-get install postgresql to keep finished jobs there)" >&2
  fi
fi

if ! command -v etcd >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "demo: etcd is not on PATH; installing Debian's etcd-server" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
  else
    echo "demo: etcd is not on PATH. Install it, then run npm run demo again:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y etcd-server" >&2
    echo "(or put an etcd 3.4+ binary on PATH)" >&2
    exit 1
  fi
fi

if [ ! -d node_modules ] || [ ! -e node_modules/.bin/tsc ]; then
  echo "demo: npm install" >&2
  npm install --no-audit --no-fund --loglevel=error
fi

echo "demo: building" >&2
npx --no-install tsc -b tsconfig.build.json

exec node apps/cli/dist/main.js dev --demo --fresh "$@"

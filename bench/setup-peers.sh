#!/usr/bin/env bash
# Installs what bench/peers.ts and bench/http.ts need beyond npm: PostgreSQL server binaries
# (initdb, pg_ctl, postgres) from Debian's packages when they are missing. The benchmarks start a
# throwaway cluster themselves (temp dir, 127.0.0.1, a free port; as root they run it as `postgres`).
set -euo pipefail

have_pg() {
  command -v initdb >/dev/null 2>&1 && return 0
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

if have_pg; then
  echo "postgresql: present ($(compgen -G '/usr/lib/postgresql/*/bin/postgres' | head -1 || command -v postgres))"
else
  if [ "$(id -u)" -ne 0 ]; then
    echo "postgresql is missing; run as root (or: sudo apt-get install -y postgresql)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  # The Debian package creates the `postgres` user; its own cluster is not used (and not started here).
  apt-get install -y --no-install-recommends postgresql
fi

if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  echo "the 'postgres' user is missing: initdb refuses to run as root" >&2
  exit 1
fi

# npm peers (dev dependencies): MiniSearch, Orama, FlexSearch, wink-bm25-text-search, pg, autocannon.
node -e "for (const m of ['minisearch','@orama/orama','flexsearch','wink-bm25-text-search','pg','autocannon']) require.resolve(m)" \
  || { echo "npm dev dependencies missing: run npm install" >&2; exit 1; }
echo "peers ready"

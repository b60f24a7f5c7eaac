#!/usr/bin/env bash
# crash.sh: spec/crash_spec.lua with CRASH_ROUNDS (default 20) SIGKILL rounds per backend
# SPDX-License-Identifier: MIT
# The SQLite file part and, on a throwaway PostgreSQL (scripts/pg.sh), the
# PostgreSQL part. EVENTSTORE_SEED replays a run.
set -u
cd "$(dirname "$0")/.." || exit 1
tmp=$(mktemp -d /tmp/eventstore-crash.XXXXXX)
chmod 755 "$tmp"   # the postgres user keeps its data folder inside
trap 'scripts/pg.sh stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT INT TERM
if url=$(scripts/pg.sh start "$tmp/pg"); then
    export EVENTSTORE_PG_URL=$url
else
    echo "!! could not start PostgreSQL: its crash rounds will be pending"
fi
export ES_CRASH_ROUNDS=${CRASH_ROUNDS:-20}
echo "crash-test: $ES_CRASH_ROUNDS rounds per backend, seed ${EVENTSTORE_SEED:-20261128}"
lua5.4 /usr/bin/busted --run=default spec/crash_spec.lua

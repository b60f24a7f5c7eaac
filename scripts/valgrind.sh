#!/usr/bin/env bash
# valgrind.sh BUILD_DIR: the whole busted suite under memcheck with the module of BUILD_DIR
# SPDX-License-Identifier: MIT
# luv's flags: definite leaks and invalid reads/writes are errors (exit 99).
# Child processes the specs start (crash writers, contention workers, the
# CLI) run natively on build/5.4; only the busted process is checked.
set -u
cd "$(dirname "$0")/.." || exit 1
b=$1
shift
tmp=$(mktemp -d /tmp/eventstore-valgrind.XXXXXX)
chmod 755 "$tmp"   # the postgres user keeps its data folder inside
trap 'scripts/pg.sh stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT INT TERM
if url=$(scripts/pg.sh start "$tmp/pg"); then export EVENTSTORE_PG_URL=$url; fi
out=$tmp/out
start=$(date +%s)
valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --keep-debuginfo=yes \
    --suppressions=scripts/valgrind.supp \
    lua5.4 /usr/bin/busted --cpath="$b/5.4/?.so" --run=default "$@" >"$out" 2>&1
rc=$?
cat "$out"
echo "valgrind: exit $rc after $(( $(date +%s) - start )) s"
if grep -qE '^==[0-9]+== (Invalid|Conditional|Mismatched|Syscall param|Source and destination)|definitely lost in' "$out"; then
    echo "valgrind: memcheck report above"
    exit 1
fi
exit $rc

#!/usr/bin/env bash
# test.sh: runs every suite (busted specs, C programs, examples) against memory,
# SQLite and a throwaway PostgreSQL, and ends with one line "N passed, N failed".
# SPDX-License-Identifier: MIT
set -u
cd "$(dirname "$0")/.."

passed=0
failed=0
tmp=$(mktemp -d /tmp/eventstore-test.XXXXXX)
chmod 755 "$tmp"   # the postgres user keeps its data folder inside
pgdir=$tmp/pg

cleanup() {
    scripts/pg.sh stop "$pgdir" >/dev/null 2>&1
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

note() { printf '== %s\n' "$*"; }

# A busted run: adds its successes and failures+errors to the totals.
busted_suite() {
    local name=$1; shift
    local out=$tmp/busted.out line s f e
    note "busted: $name"
    "$@" >"$out" 2>&1
    local rc=$?
    cat "$out"
    line=$(grep -E '^[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors?' "$out" | tail -n 1)
    if [ -z "$line" ]; then
        echo "!! $name: busted printed no summary (exit $rc)"
        failed=$((failed + 1))
        return
    fi
    s=$(sed -E 's/^([0-9]+) success.*/\1/' <<<"$line")
    f=$(sed -E 's/.* ([0-9]+) failures?.*/\1/' <<<"$line")
    e=$(sed -E 's/.* ([0-9]+) errors?.*/\1/' <<<"$line")
    passed=$((passed + s))
    failed=$((failed + f + e))
    if [ "$rc" -ne 0 ] && [ $((f + e)) -eq 0 ]; then
        echo "!! $name: busted exited $rc"
        failed=$((failed + 1))
    fi
}

# A program that must exit 0 counts as one test.
program() {
    local name=$1; shift
    note "$name"
    if "$@"; then passed=$((passed + 1)); else echo "!! $name failed"; failed=$((failed + 1)); fi
}

if url=$(scripts/pg.sh start "$pgdir"); then
    export EVENTSTORE_PG_URL=$url
    note "PostgreSQL for the specs: ${url//:es@/:***@}"
else
    echo "!! could not start PostgreSQL: its specs will be pending"
    failed=$((failed + 1))
fi

busted_suite "Lua 5.4" lua5.4 /usr/bin/busted --run=default
program "C example (sqlite)" build/c_example "sqlite:$tmp/c_example.db"
program "C example (memory)" build/c_example memory:
for t in build/tests/*_check; do
    [ -x "$t" ] || continue
    program "C check $(basename "$t")" "$t"
done
for t in examples/*.lua; do
    [ -f "$t" ] || continue
    program "example $(basename "$t")" env EVENTSTORE_EXAMPLE_DIR="$tmp" lua5.4 \
        -e 'package.path="lua/?.lua;lua/?/init.lua;"..package.path package.cpath="build/5.4/?.so;"..package.cpath' "$t"
done

# Suites owned by parts of the project (LuaJIT, nginx, CLI, ...): each file
# calls busted_suite/program above.
for f in scripts/test.d/*.sh; do
    [ -f "$f" ] || continue
    # shellcheck source=/dev/null
    . "$f"
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

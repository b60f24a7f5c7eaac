#!/usr/bin/env bash
# asan.sh BUILD_DIR: runs the busted suite with the ASan/UBSan build of the module.
# SPDX-License-Identifier: MIT
set -u
cd "$(dirname "$0")/.."
b=$1
tmp=$(mktemp -d /tmp/eventstore-asan.XXXXXX)
chmod 755 "$tmp"   # the postgres user keeps its data folder inside
trap 'scripts/pg.sh stop "$tmp/pg" >/dev/null 2>&1; rm -rf "$tmp"' EXIT INT TERM
if url=$(scripts/pg.sh start "$tmp/pg"); then export EVENTSTORE_PG_URL=$url; fi
preload="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so) $PWD/$b/nodlclose.so"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export LSAN_OPTIONS=suppressions=$PWD/scripts/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
out=$tmp/out
LD_PRELOAD="$preload" stdbuf -oL lua5.4 /usr/bin/busted --cpath="$b/5.4/?.so" --run=default >"$out" 2>&1
rc=$?
cat "$out"
line=$(grep -E '^[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors?' "$out" | tail -n 1)
passed=$(sed -E 's/^([0-9]+) success.*/\1/' <<<"${line:-0 successes}")
failed=$(( $(sed -E 's/.* ([0-9]+) failures?.*/\1/' <<<"${line:-x 0 failures}") + $(sed -E 's/.* ([0-9]+) errors?.*/\1/' <<<"${line:-x 0 errors}") ))
if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$out"; then
    echo "asan: sanitizer report above"
    failed=$((failed + 1))
    rc=1
fi
[ -n "$line" ] || { echo "asan: busted printed no summary"; failed=$((failed + 1)); rc=1; }
echo "asan: $passed passed, $failed failed"
exit $rc

# reliability.sh (sourced by scripts/test.sh): the fuzz targets over their committed corpus
# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# The short crash round (3 SIGKILLs per backend), contention, disk full,
# hostile input and leak specs run with the other busted specs; make
# crash-test, make valgrind and make fuzz are the long runs (mk/reliability.mk).

fuzz_regress() {
    local t rc=0
    for t in build/fuzz/fuzz_*; do
        [ -x "$t" ] || continue
        scripts/fuzz.sh regress "$(basename "$t")" || rc=1
    done
    [ -x build/fuzz/fuzz_json ] || { echo "build/fuzz has no targets (make fuzz-build)"; rc=1; }
    return $rc
}

program "fuzz-regress: every libFuzzer target over its committed corpus (fuzz/corpus)" fuzz_regress

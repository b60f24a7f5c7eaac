#!/usr/bin/env bash
# fuzz.sh run|regress|merge TARGET...: the libFuzzer targets of fuzz/ (built by make fuzz-build)
# SPDX-License-Identifier: MIT
#
#   run      each target for FUZZ_SECONDS (default 60) starting from its committed
#            corpus fuzz/corpus/<target>; new inputs go to build/fuzz/corpus/<target>,
#            a crash leaves build/fuzz/artifacts/<target>-crash-* and fails the run
#   regress  each target once over every input of fuzz/corpus/<target> (seconds)
#   merge    adds the new inputs of build/fuzz/corpus/<target> that cover something
#            new to fuzz/corpus/<target> (libFuzzer -merge=1)
# A crash found by `run` becomes a regression input: copy the artifact into
# fuzz/corpus/<target>/ (named after what it found) and fix the bug.
set -u
cd "$(dirname "$0")/.." || exit 1
mode=${1:-}
shift || true
bin=build/fuzz
rc=0
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

for t in "$@"; do
    corpus=fuzz/corpus/$t
    mkdir -p "$corpus"
    case $mode in
        run)
            work=$bin/corpus/$t
            mkdir -p "$work" "$bin/artifacts"
            echo "== fuzz $t for ${FUZZ_SECONDS:-60} s"
            dict=()
            [ -f "fuzz/$t.dict" ] && dict=(-dict="fuzz/$t.dict")
            if ! "$bin/$t" "${dict[@]}" -max_total_time="${FUZZ_SECONDS:-60}" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
                    -print_final_stats=1 -artifact_prefix="$bin/artifacts/$t-" "$work" "$corpus" \
                    >"$bin/$t.log" 2>&1; then
                tail -n 40 "$bin/$t.log"
                echo "!! fuzz $t found a problem: $(find "$bin/artifacts" -name "$t-*" | tr '\n' ' ')"
                rc=1
            else
                grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::new_units_added)' "$bin/$t.log" | tr '\n' ' '
                echo
            fi
            ;;
        regress)
            n=$(find "$corpus" -type f | wc -l)
            if [ "$n" -eq 0 ]; then echo "!! $corpus is empty"; rc=1; continue; fi
            mkdir -p "$bin/artifacts"
            if ! "$bin/$t" -runs=0 -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$bin/artifacts/$t-" "$corpus" >"$bin/$t.regress.log" 2>&1; then
                tail -n 40 "$bin/$t.regress.log"
                echo "!! fuzz-regress $t failed"
                rc=1
            else
                echo "fuzz-regress $t: $n inputs ok"
            fi
            ;;
        merge)
            work=$bin/corpus/$t
            mkdir -p "$work"
            "$bin/$t" -merge=1 "$corpus" "$work" >"$bin/$t.merge.log" 2>&1 || { tail -n 20 "$bin/$t.merge.log"; rc=1; }
            echo "fuzz-merge $t: $(find "$corpus" -type f | wc -l) inputs"
            ;;
        *)
            echo "usage: fuzz.sh run|regress|merge TARGET..." >&2
            exit 2
            ;;
    esac
done
exit $rc

#!/usr/bin/env bash
# bench.sh: runs WORKLOAD.md on every backend and its raw C limit, medians over runs
# SPDX-License-Identifier: MIT
#
#   bench/bench.sh            (from anywhere; `make bench` and `make bench-quick` call it)
#
# Environment:
#   BENCH_RUNS=3      runs per backend; each run is a fresh process per backend
#   BENCH_SCALE=1     0 < x <= 1 scales the stream counts (each keeps 100 events)
#   BENCH_BACKENDS    space-separated subset of: raw-sqlite-full sqlite-full
#                     raw-sqlite-normal sqlite-normal memory raw-pg pg; each raw
#                     loop runs right before or after its store (even runs go
#                     in reverse order), so neither side is always first
#   BENCH_CPU=auto    the CPU the SQLite and memory processes (raw loops and
#                     stores alike) are pinned to with taskset; auto: at the
#                     start of each run, the CPU this shell may use that runs
#                     a short calibration loop fastest; none: no pinning.
#                     PostgreSQL's client and server are never pinned
#   BENCH_PG_URL      use this server for raw-pg and pg instead of starting one;
#                     the bench drops everything its user owns in that database
#   BENCH_GROWTH=1    0 skips the growth step: append cost on an empty store
#                     versus one holding 1,000,000 events (once per backend)
#   BENCH_GROWTH_BACKENDS  default: memory sqlite-normal sqlite-full pg
#   BENCH_STRICT=1    exit 3 when a row is below the bar
#   BENCH_TIMEOUT=1800  seconds after which one hung process is killed (a
#                     watchdog against deadlocks, not a performance limit)
#
# Tools are expected in build/bench (mk/bench.mk builds them) and the module in
# build/5.4. The DB files go to a temporary folder; the PostgreSQL server it
# starts is always stopped on exit. Output: the table on stdout,
# bench/out/results.json, and every raw line in bench/out/lines.jsonl.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
RUNS=${BENCH_RUNS:-3}
BACKENDS=${BENCH_BACKENDS:-raw-sqlite-full sqlite-full raw-sqlite-normal sqlite-normal memory raw-pg pg}
OUT=$ROOT/bench/out
TOOLS=$ROOT/build/bench
LUA=${LUA:-lua5.4}
WATCH=(timeout -k 10 "${BENCH_TIMEOUT:-1800}")

# Pinning. The two vCPUs of the machine this was written on differ in speed
# by up to 50%, and which one is slow changes within minutes (a busy
# neighbour on the host): a raw loop on the fast CPU and our store on the
# slow one made a ratio out of two machines. The one-process backends
# (SQLite, memory) run on one CPU, raw loop and store alike. PostgreSQL is
# two processes that wait for each other, the raw loop bound by the server
# and our store by its client: pinning them to different CPUs favoured
# whichever side got the fast one (our W3 went from 0.38 to 0.22 of the
# raw loop with the client on the slow CPU), so they are left to the
# scheduler. With BENCH_CPU=auto each run takes the CPU that is fastest
# when it starts (a raw loop and its store run back to back in a run, on
# that CPU): a run pinned to CPU 0 while CPU 0 was the slow one measured
# another machine than the runs before it.
ALLOWED=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status)
CLIENT_CPU=${BENCH_CPU:-auto}
AUTO_CPU=
if [ "$CLIENT_CPU" = auto ]; then
    AUTO_CPU=1
    CLIENT_CPU=$(echo "$ALLOWED" | sed 's/[-,].*//')
fi

# The allowed CPUs one by one ("0-3,6" -> 0 1 2 3 6).
allowed_cpus() {
    local part
    for part in $(echo "$ALLOWED" | tr ',' ' '); do
        case $part in *-*) seq "${part%-*}" "${part#*-}" ;; *) echo "$part" ;; esac
    done
}

# Sets CLIENT_CPU to the allowed CPU that runs a 20-million-step Lua loop
# fastest now, and CALIBRATION to what each took.
pick_cpu() {
    local c t best_t=
    CALIBRATION=
    for c in $(allowed_cpus); do
        t=$(taskset -c "$c" "$LUA" -e 'local t0 = os.clock() local s = 0
            for i = 1, 2e7 do s = s + i end io.write(string.format("%.3f", os.clock() - t0))' 2>/dev/null) || continue
        CALIBRATION="$CALIBRATION CPU $c ${t}s"
        if [ -z "$best_t" ] || awk -v a="$t" -v b="$best_t" 'BEGIN { exit !(a < b) }'; then
            best_t=$t
            CLIENT_CPU=$c
        fi
    done
}
PIN=()
if [ -n "$CLIENT_CPU" ] && [ "$CLIENT_CPU" != none ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
    # a CPU this shell may not use would fail every run: say so once
    if ! taskset -c "$CLIENT_CPU" true 2>/dev/null; then
        echo "bench: BENCH_CPU=$CLIENT_CPU is not a CPU this shell may use (allowed: $ALLOWED; or none)" >&2
        exit 2
    fi
    PIN=(taskset -c "$CLIENT_CPU")
fi
RUN=("${WATCH[@]}" "${PIN[@]}")

TMP=$(mktemp -d "${TMPDIR:-/tmp}/es-bench.XXXXXX") || exit 1
chmod 755 "$TMP"   # the postgres user must reach its data folder inside
PG_DIR=$TMP/pg
PG_STARTED=
PG_URL=${BENCH_PG_URL:-}

cleanup() {
    if [ -n "$PG_STARTED" ]; then
        if [ -x scripts/pg.sh ]; then
            scripts/pg.sh stop "$PG_DIR" || echo "bench: could not stop PostgreSQL in $PG_DIR" >&2
        else
            runuser -u postgres -- "$(pg_config --bindir)/pg_ctl" -D "$PG_DIR" -m fast -w stop \
                >/dev/null 2>&1 || echo "bench: could not stop PostgreSQL in $PG_DIR" >&2
        fi
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for t in raw_sqlite raw_pg esbench.so; do
    [ -e "$TOOLS/$t" ] || { echo "bench: $TOOLS/$t is missing; run make bench" >&2; exit 1; }
done

# A throwaway server as TOOLCHAIN.md describes, for when scripts/pg.sh is absent.
start_own_pg() {
    local bin port
    bin=$(pg_config --bindir) || return 1
    port=54400
    while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
    mkdir -p "$PG_DIR" && chown postgres: "$PG_DIR" || return 1
    runuser -u postgres -- "$bin/initdb" -D "$PG_DIR" -U postgres --auth-local=trust \
        --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null || return 1
    PG_STARTED=1
    runuser -u postgres -- "$bin/pg_ctl" -D "$PG_DIR" -l "$PG_DIR/log" -w \
        -o "-k $PG_DIR -p $port -c listen_addresses=127.0.0.1" start >/dev/null || return 1
    "$bin/psql" -X -q -h "$PG_DIR" -p "$port" -U postgres -d postgres \
        -c "CREATE ROLE es LOGIN PASSWORD 'es'" -c "CREATE DATABASE es OWNER es" >/dev/null || return 1
    echo "postgresql://es:es@127.0.0.1:$port/es"
}

wants() { case " $BACKENDS " in *" $1 "*) return 0 ;; esac; return 1; }

if [ -z "$PG_URL" ] && { wants raw-pg || wants pg; }; then
    if [ -x scripts/pg.sh ]; then
        PG_STARTED=1
        PG_URL=$(scripts/pg.sh start "$PG_DIR") || PG_URL=
    else
        PG_URL=$(start_own_pg) || PG_URL=
    fi
    [ -n "$PG_URL" ] || echo "bench: PostgreSQL did not start; the raw-pg and pg rows are skipped" >&2
fi

# Our store needs the Lua module; without it only the raw limits run.
HAVE_MODULE=1
if ! "$LUA" -e 'package.path="lua/?.lua;lua/?/init.lua;"..package.path
                package.cpath="build/5.4/?.so;"..package.cpath
                require("eventstore")' 2>"$TMP/module.err"; then
    HAVE_MODULE=
    echo "bench: the eventstore module does not load; our rows are skipped:" >&2
    head -n 3 "$TMP/module.err" >&2
fi

# Lines gather in the private folder: two benches in one tree must not mix.
mkdir -p "$OUT"
LINES=$TMP/lines.jsonl
: >"$LINES"
FAILED=0

# Runs one backend once, as a fresh process; its JSON lines go to LINES.
run_one() {
    local b=$1 run=$2 d=$TMP/run$2-$1 rc
    mkdir -p "$d"
    case $b in
        raw-sqlite-full)   "${RUN[@]}" "$TOOLS/raw_sqlite" full "$d/w1.db" "$d/w2.db" ;;
        raw-sqlite-normal) "${RUN[@]}" "$TOOLS/raw_sqlite" normal "$d/w1.db" "$d/w2.db" ;;
        memory)            "${RUN[@]}" "$LUA" bench/run.lua memory memory: memory: - ;;
        sqlite-full)       "${RUN[@]}" "$LUA" bench/run.lua sqlite-full "sqlite:$d/w1.db" "sqlite:$d/w2.db" full ;;
        sqlite-normal)     "${RUN[@]}" "$LUA" bench/run.lua sqlite-normal "sqlite:$d/w1.db" "sqlite:$d/w2.db" normal ;;
        raw-pg)            "${WATCH[@]}" "$TOOLS/raw_pg" "$PG_URL" ;;
        pg)                BENCH_RESET="'$TOOLS/raw_pg' reset '$PG_URL'" \
                               "${WATCH[@]}" "$LUA" bench/run.lua pg "$PG_URL" "$PG_URL" - ;;
    esac >"$d/out" 2>"$d/err"
    rc=$?
    sed "s/^{/{\"run\":$run,/" "$d/out" >>"$LINES"
    if [ $rc -ne 0 ]; then
        FAILED=$((FAILED + 1))
        printf '{"backend":"%s","workload":"run%d","status":"failed","reason":"exit %d: %s"}\n' \
            "$b" "$run" "$rc" "$(tail -n 1 "$d/err" | tr -d '"\\' | tr -c '[:print:]' ' ' | cut -c1-160)" >>"$LINES"
        echo "bench: $b (run $run) failed with exit $rc:" >&2
        tail -n 5 "$d/err" >&2
    fi
    case $b in raw-pg|pg) "$TOOLS/raw_pg" reset "$PG_URL" >/dev/null 2>&1 ;; esac
    rm -rf "$d"
}

START=$(date +%s)
CPUS_USED=
REVERSED=
for b in $BACKENDS; do REVERSED="$b $REVERSED"; done
for run in $(seq 1 "$RUNS"); do
    order=$BACKENDS
    [ $((run % 2)) -eq 1 ] || order=$REVERSED
    if [ -n "$AUTO_CPU" ] && [ ${#PIN[@]} -gt 0 ]; then
        pick_cpu
        PIN=(taskset -c "$CLIENT_CPU")
        RUN=("${WATCH[@]}" "${PIN[@]}")
        CPUS_USED="$CPUS_USED $CLIENT_CPU"
        echo "bench: run $run on CPU $CLIENT_CPU (calibration:$CALIBRATION)" >&2
    fi
    for b in $order; do
        case $b in
            memory|sqlite-full|sqlite-normal|pg) [ -n "$HAVE_MODULE" ] || continue ;;
        esac
        case $b in raw-pg|pg) [ -n "$PG_URL" ] || continue ;; esac
        printf 'bench: run %d/%d %-18s' "$run" "$RUNS" "$b" >&2
        t0=$(date +%s.%N)
        run_one "$b" "$run"
        awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf " %6.1fs\n", b - a }' >&2
    done
done

# Growth: RUNS times per backend (fsync latency on a shared disk moved a
# single run's ratio from 0.73 to 1.41), a fresh process and a fresh store
# each; the report takes the median of the runs' ratios.
if [ "${BENCH_GROWTH:-1}" != 0 ] && [ -n "$HAVE_MODULE" ]; then
    for run in $(seq 1 "$RUNS"); do
        for b in ${BENCH_GROWTH_BACKENDS:-memory sqlite-normal sqlite-full pg}; do
            d=$TMP/growth-$b
            mkdir -p "$d"
            case $b in
                memory)        set -- "${RUN[@]}" "$LUA" bench/growth.lua memory memory: - ;;
                sqlite-full)   set -- "${RUN[@]}" "$LUA" bench/growth.lua sqlite-full "sqlite:$d/g.db" full ;;
                sqlite-normal) set -- "${RUN[@]}" "$LUA" bench/growth.lua sqlite-normal "sqlite:$d/g.db" normal ;;
                pg)            [ -n "$PG_URL" ] || continue
                               set -- "${WATCH[@]}" "$LUA" bench/growth.lua pg "$PG_URL" - ;;
                *)             echo "bench: no growth step for $b" >&2; continue ;;
            esac
            printf 'bench: growth %d/%d %-18s' "$run" "$RUNS" "$b" >&2
            t0=$(date +%s.%N)
            if [ "$b" = pg ]; then
                BENCH_RESET="'$TOOLS/raw_pg' reset '$PG_URL'" "$@" >"$d/out" 2>"$d/err"
            else
                "$@" >"$d/out" 2>"$d/err"
            fi
            rc=$?
            awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf " %6.1fs\n", b - a }' >&2
            cat "$d/out" >>"$LINES"
            if [ $rc -ne 0 ]; then
                FAILED=$((FAILED + 1))
                printf '{"backend":"%s","workload":"growth","status":"failed","reason":"exit %d: %s"}\n' \
                    "$b" "$rc" "$(tail -n 1 "$d/err" | tr -d '"\\' | tr -c '[:print:]' ' ' | cut -c1-160)" >>"$LINES"
                echo "bench: growth $b failed with exit $rc:" >&2
                tail -n 5 "$d/err" >&2
            fi
            [ "$b" != pg ] || "$TOOLS/raw_pg" reset "$PG_URL" >/dev/null 2>&1
            rm -rf "$d"
        done
    done
fi

echo
if [ ${#PIN[@]} -gt 0 ] && [ -n "$AUTO_CPU" ]; then
    PINNED="SQLite and memory on the CPU fastest at each run's start:$CPUS_USED; PostgreSQL not pinned"
elif [ ${#PIN[@]} -gt 0 ]; then
    PINNED="SQLite and memory on CPU $CLIENT_CPU, PostgreSQL not pinned"
else
    PINNED="not pinned"
fi
echo "eventstore bench: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($PINNED), runs=$RUNS," \
     "scale=${BENCH_SCALE:-1}, medians; $(( $(date +%s) - START ))s"
BENCH_RUNS=$RUNS "$LUA" bench/report.lua "$LINES" "$TMP/results.json"
rc=$?
cp "$LINES" "$OUT/lines.jsonl" && cp "$TMP/results.json" "$OUT/results.json" &&
    echo "wrote bench/out/results.json (every run's lines: bench/out/lines.jsonl)"
[ $FAILED -eq 0 ] || { echo "bench: $FAILED run(s) failed" >&2; exit 1; }
exit $rc

#!/usr/bin/env bash
# pg.sh: a throwaway PostgreSQL server for tests and benchmarks
# SPDX-License-Identifier: MIT
#
#   scripts/pg.sh start DIR   initdb into DIR, start on a free port of 127.0.0.1,
#                             create role es/es and database es, print the URL
#                             (also written to DIR/url)
#   scripts/pg.sh stop DIR    stop that server (fast mode) and remove DIR;
#                             does nothing when DIR is gone
#
# Debian's PostgreSQL refuses to run as root, so as root every server command
# runs as the postgres user. Durability settings (fsync, synchronous_commit,
# full_page_writes) stay at their defaults: benchmarks measure durable commits.
set -euo pipefail

# pg_config comes with libpq-dev; without it, the newest installed server.
PGBIN=${PGBIN:-$(pg_config --bindir 2>/dev/null ||
    find /usr/lib/postgresql -maxdepth 2 -name bin 2>/dev/null | sort -V | tail -n 1)}
FIRST_PORT=${ES_PG_FIRST_PORT:-54329}
MARKER=.eventstore-pg

die() { echo "pg.sh: $*" >&2; exit 1; }

# Runs a server command as the postgres user when we are root.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

running() {
    [ -f "$1/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$1" status >/dev/null 2>&1
}

stop() {
    local dir=$1
    [ -e "$dir" ] || return 0
    # Only a folder this script set up is stopped and removed.
    [ -f "$dir/$MARKER" ] || die "stop: $dir was not set up by pg.sh; leaving it alone"
    if running "$dir"; then
        as_pg "$PGBIN/pg_ctl" -D "$dir" -m fast -w -t 30 stop >/dev/null
    fi
    rm -rf "$dir"
}

start() {
    local dir=$1 port url tries=0
    [ -x "$PGBIN/initdb" ] || die "start: no initdb in $PGBIN (apt-get install postgresql)"
    mkdir -p "$dir"
    [ -z "$(ls -A "$dir")" ] || die "start: $dir is not empty"
    dir=$(cd "$dir" && pwd)
    touch "$dir/$MARKER"
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir"; fi
    chmod 700 "$dir"
    as_pg test -w "$dir" || { rm -rf "$dir"; die "start: the postgres user cannot write $dir (is a parent folder private?)"; }

    # initdb wants an empty folder: the marker waits outside while it runs.
    rm -f "$dir/$MARKER"
    if ! as_pg "$PGBIN/initdb" -D "$dir" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
            -E UTF8 --locale=C.UTF-8 --no-sync --no-instructions >"$dir.initdb.log" 2>&1; then
        cat "$dir.initdb.log" >&2; rm -f "$dir.initdb.log"; rm -rf "$dir"
        die "start: initdb failed"
    fi
    rm -f "$dir.initdb.log"
    touch "$dir/$MARKER"

    # Probe for a free port; a server that loses a race for it fails to start
    # and the next port is tried.
    port=$FIRST_PORT
    while :; do
        while port_in_use "$port"; do port=$((port + 1)); done
        if as_pg "$PGBIN/pg_ctl" -D "$dir" -l "$dir/log" -w -t 30 \
                -o "-k $dir -p $port -c listen_addresses=127.0.0.1 -c max_connections=100" \
                start >/dev/null 2>&1; then
            break
        fi
        tries=$((tries + 1))
        if [ "$tries" -ge 10 ]; then
            tail -n 20 "$dir/log" >&2 || true
            stop "$dir"
            die "start: the server did not start"
        fi
        port=$((port + 1))
    done

    if ! "$PGBIN/psql" -X -q -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
            -c "CREATE ROLE es LOGIN PASSWORD 'es'" -c "CREATE DATABASE es OWNER es" >/dev/null; then
        stop "$dir"
        die "start: could not create role and database es"
    fi
    url="postgresql://es:es@127.0.0.1:$port/es"
    echo "$url" >"$dir/url"
    echo "$url"
}

case "${1:-}" in
    start) [ -n "${2:-}" ] || die "usage: pg.sh start DIR"; start "$2" ;;
    stop)  [ -n "${2:-}" ] || die "usage: pg.sh stop DIR"; stop "$2" ;;
    *)     die "usage: pg.sh start DIR | pg.sh stop DIR" ;;
esac

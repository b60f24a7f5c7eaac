#!/usr/bin/env bash
# nginx-test.sh: examples/openresty under Debian's nginx + lua module, with a bounded load on loopback
# SPDX-License-Identifier: MIT
#
# Starts nginx (2 workers sharing one SQLite file) from a temporary prefix on
# a free loopback port, runs CLIENTS concurrent clients doing APPENDS appends
# each (examples/openresty/loadtest.lua), checks the store and the HTTP reads,
# and always stops nginx. With EVENTSTORE_PG_URL it also drives the
# PostgreSQL route (appends in nginx's thread pool): 4 clients x PG_APPENDS.
# Needs `make build-luajit`. Exits 0 when all is well.
#   NGINX_TEST_CLIENTS (8), NGINX_TEST_APPENDS (250 per client),
#   NGINX_TEST_PG_APPENDS (100 per client), NGINX_TEST_KEEP=1 keeps the folder
set -u
cd "$(dirname "$0")/.."

clients=${NGINX_TEST_CLIENTS:-8}
appends=${NGINX_TEST_APPENDS:-250}
pg_appends=${NGINX_TEST_PG_APPENDS:-100}
streams=8
nginx=${NGINX:-/usr/sbin/nginx}
module=build/luajit/eventstore/core.so
[ -x "$nginx" ] || { echo "nginx-test: $nginx not found (make deps-lua)"; exit 1; }
[ -f "$module" ] || { echo "nginx-test: $module not built (make build-luajit)"; exit 1; }

dir=$(mktemp -d /tmp/eventstore-nginx.XXXXXX)
prefix=$dir/prefix
chmod 755 "$dir"
master=""

stop_nginx() {
    [ -n "$master" ] || return 0
    if kill -0 "$master" 2>/dev/null; then
        kill -QUIT "$master" 2>/dev/null            # graceful: workers finish their requests
        for _ in $(seq 50); do kill -0 "$master" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$master" 2>/dev/null && kill -TERM "$master" 2>/dev/null
        for _ in $(seq 30); do kill -0 "$master" 2>/dev/null || break; sleep 0.1; done
    fi
    master=""
}
cleanup() {
    stop_nginx
    if [ "${NGINX_TEST_KEEP:-0}" = 1 ]; then echo "nginx-test: kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The prefix: the workers (nobody, when the master is root) read lua/ and
# lib/ and write data/, so everything is a copy in a folder they can reach.
mkdir -p "$prefix"/{conf,lua/eventstore,lib/eventstore,data,logs,temp,out}
cp lua/eventstore/*.lua "$prefix/lua/eventstore/"
cp examples/openresty/eventstore_http.lua examples/openresty/eventstore_pg.lua "$prefix/lua/"
cp "$module" "$prefix/lib/eventstore/core.so"
chmod -R a+rX "$prefix"
if [ "$(id -u)" = 0 ]; then chown nobody "$prefix/data"; fi

export LUA_PATH="lua/?.lua;lua/?/init.lua;;" LUA_CPATH="build/luajit/?.so;;"
port=$(luajit -e 'local s = assert(require("socket").bind("127.0.0.1", 0)) local _, p = s:getsockname() print(p) s:close()')
sed -E "s/listen 127\.0\.0\.1:[0-9]+;/listen 127.0.0.1:$port;/" examples/openresty/nginx.conf > "$prefix/conf/nginx.conf"
grep -q "listen 127.0.0.1:$port;" "$prefix/conf/nginx.conf" || { echo "nginx-test: no listen line to rewrite"; exit 1; }
export EVENTSTORE_DB=$prefix/data/events.db
run_nginx() { "$nginx" -p "$prefix/" -c conf/nginx.conf -e "$prefix/logs/error.log" "$@"; }

run_nginx -t -q || { cat "$prefix/logs/error.log"; exit 1; }
run_nginx || { cat "$prefix/logs/error.log"; exit 1; }
for _ in $(seq 50); do [ -s "$prefix/logs/nginx.pid" ] && break; sleep 0.1; done
master=$(cat "$prefix/logs/nginx.pid" 2>/dev/null)
[ -n "$master" ] || { echo "nginx-test: nginx wrote no pid"; cat "$prefix/logs/error.log"; exit 1; }
ready=0
for _ in $(seq 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then ready=1; break; fi
    sleep 0.1
done
[ "$ready" = 1 ] || { echo "nginx-test: nothing listens on $port"; cat "$prefix/logs/error.log"; exit 1; }
workers=$(pgrep -P "$master" | wc -l)
users=$(pgrep -P "$master" | xargs -r ps -o user= -p | sort -u | tr '\n' ' ')
echo "nginx-test: nginx $master on 127.0.0.1:$port, $workers workers (user: $users), $clients clients x $appends appends"
[ "$workers" -eq 2 ] || { echo "nginx-test: expected 2 workers"; exit 1; }

# load NAME CLIENTS APPENDS STORE_URL: concurrent clients, then the check.
load() {
    local name=$1 n=$2 per=$3 url=$4 i p ok=0 pids=() t0 t1
    t0=$(date +%s%N)
    for i in $(seq "$n"); do
        timeout 120 luajit examples/openresty/loadtest.lua client "$port" "$i" "$per" "$streams" \
            "$prefix/out/$name$i.log" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || ok=1; done
    t1=$(date +%s%N)
    echo "nginx-test: $name: $n clients x $per requests done in $(( (t1 - t0) / 1000000 )) ms"
    [ "$ok" = 0 ] || echo "nginx-test: $name: a client failed"
    timeout 60 luajit examples/openresty/loadtest.lua check "$port" "$url" "$streams" "$prefix/out/$name"*.log || ok=1
    return "$ok"
}

rc=0
load sqlite "$clients" "$appends" "sqlite:$EVENTSTORE_DB" || rc=1
if [ -n "${EVENTSTORE_PG_URL:-}" ]; then
    LOADTEST_ROUTE=/pg/streams/ LOADTEST_PREFIX="pgload$(date +%s%N)-" \
        load postgres 4 "$pg_appends" "$EVENTSTORE_PG_URL" || rc=1
else
    echo "nginx-test: EVENTSTORE_PG_URL not set: the PostgreSQL route is not driven"
fi

stop_nginx
if grep -E '\[(error|crit|alert|emerg)\]' "$prefix/logs/error.log"; then
    echo "nginx-test: errors in nginx's error log (above)"
    rc=1
fi
[ "$rc" = 0 ] && echo "nginx-test: ok"
exit "$rc"

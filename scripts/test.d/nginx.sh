# nginx.sh: examples/openresty inside Debian's nginx with 2 workers, a bounded load, checked
# SPDX-License-Identifier: MIT
# Sourced by scripts/test.sh (program). See scripts/nginx-test.sh.
program "nginx + lua module: 2 workers on one SQLite file (8 clients x 250 appends), PostgreSQL from the thread pool" scripts/nginx-test.sh

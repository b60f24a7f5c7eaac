# nginx.sh: examples/openresty inside Debian's nginx with 2 workers, a bounded load, checked
# SPDX-License-Identifier: MIT
# Sourced by scripts/test.sh (program). See scripts/nginx-test.sh.
program "nginx + lua module: 2 workers, one SQLite file, 8 clients x 250 appends" scripts/nginx-test.sh

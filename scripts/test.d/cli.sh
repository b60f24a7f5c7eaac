# cli.sh (sourced by scripts/test.sh): the README's path through the CLI on
# the demo's store, with real shell pipes. spec/cli_spec.lua (run with the
# other specs) covers every command on SQLite and PostgreSQL.
# SPDX-License-Identifier: MIT

cli_on_demo() {
    local db=$tmp/cli-demo.db copy=$tmp/cli-demo-copy.db rules=$tmp/cli-balance.lua
    local es="bin/eventstore --url sqlite:$db"
    rm -f "$db" "$copy"
    EVENTSTORE_DEMO_DB=$db lua5.4 -e 'package.path="lua/?.lua;lua/?/init.lua;"..package.path package.cpath="build/5.4/?.so;"..package.cpath' \
        examples/demo.lua >/dev/null || return 1
    $es stats | grep -q '"events":3' || { echo "stats: expected 3 events"; return 1; }
    [ "$($es read account-42 | wc -l)" -eq 3 ] || { echo "read: expected 3 lines"; return 1; }
    cat >"$rules" <<'RULES'
return {
  ["*"] = "drop",
  balance = { { "sum", from = "amount", when = "Deposited" },
              { "sum", from = "amount", when = "Withdrawn", scale = -1 } },
}
RULES
    $es state account-42 --rules "$rules" | grep -q '"balance":7' || { echo "state: expected balance 7"; return 1; }
    # export | import through a pipe, then the same lines from both stores
    # but for the timestamps (the time of the import); keys are sorted
    $es export | bin/eventstore --url "sqlite:$copy" import 2>/dev/null || { echo "export | import failed"; return 1; }
    diff <($es all | sed -E 's/"timestamp":[0-9]+,//') \
         <(bin/eventstore --url "sqlite:$copy" all | sed -E 's/"timestamp":[0-9]+,//') ||
        { echo "export | import: the stores differ"; return 1; }
    # a conflict exits 3 and writes nothing
    $es append account-42 --type Opened --expected no_stream 2>/dev/null
    [ $? -eq 3 ] || { echo "append: expected exit 3 on a conflict"; return 1; }
    $es stats | grep -q '"events":3'
}

program "CLI on the demo's store (stats, read, state, export | import, conflict)" cli_on_demo

# bench.mk: `make bench` and `make bench-quick`, WORKLOAD.md against the raw C limits
# SPDX-License-Identifier: MIT
#
# bench        3 runs of every backend and raw baseline, medians, bench/out/results.json
# bench-quick  1 run; BENCH_SCALE=0.1 (say) also shrinks the data
# Both build the module first; if that fails, only the raw baselines run.

BENCH_DIR := $(BUILD)/bench
BENCH_CFLAGS := -O2 -g -std=c99 -D_GNU_SOURCE -Wall -Wextra
BENCH_TOOLS := $(BENCH_DIR)/raw_sqlite $(BENCH_DIR)/raw_pg $(BENCH_DIR)/esbench.so

.PHONY: bench bench-quick bench-tools

$(BENCH_DIR)/raw_sqlite: bench/raw_sqlite.c bench/common.h
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ $< -lsqlite3

$(BENCH_DIR)/raw_pg: bench/raw_pg.c bench/common.h
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -I$(PG_INC) -o $@ $< -lpq

# The floor of an append writes JSON and ids with the store's own code.
$(BENCH_DIR)/esbench.so: bench/lbench.c csrc/json_text.c csrc/uuid.c bench/common.h csrc/lua_compat.h csrc/es_internal.h
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -fPIC -shared -I/usr/include/lua5.4 -Icsrc -o $@ bench/lbench.c csrc/json_text.c csrc/uuid.c \
		-luuid -lpthread -lm

bench-tools: $(BENCH_TOOLS)

# spec/bench_spec.lua checks the bench's floor of a read (esbench.so) and its
# report; every target that runs the whole busted suite builds the tools
test asan valgrind: bench-tools

bench: bench-tools
	@$(MAKE) --no-print-directory build || echo "bench: make build failed; only the raw baselines will run" >&2
	BENCH_RUNS=$${BENCH_RUNS:-3} bench/bench.sh

bench-quick: bench-tools
	@$(MAKE) --no-print-directory build || echo "bench: make build failed; only the raw baselines will run" >&2
	BENCH_RUNS=1 bench/bench.sh

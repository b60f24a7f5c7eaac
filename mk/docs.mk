# docs.mk: `make docs` (the LDoc reference), `make lint` (luacheck), `make examples`
# SPDX-License-Identifier: MIT
#
# docs      LDoc (Debian's lua-ldoc) over lua/eventstore and docs/reference into
#           build/docs (config.ld); open build/docs/index.html
# lint      luacheck (Debian's lua-check; .luacheckrc sets std lua54, busted globals in spec/,
#           see .luacheckrc) over lua/, bin/, spec/ and examples/: clean or it fails
# examples  runs every examples/*.lua on the embedded SQLite store, each in a
#           temporary folder, and the C-only example; stops at the first failure
#
# The CLI needs lua-argparse (lua-term for its isatty, optional); the reference
# needs lua-ldoc and lua-markdown.
DEBS += lua-argparse lua-ldoc lua-markdown lua-check lua-term

DOCS_OUT := $(BUILD)/docs
LINT_DIRS := lua bin spec examples

.PHONY: docs lint examples

docs: deps
	@mkdir -p $(DOCS_OUT)
	ldoc -c config.ld -d $(DOCS_OUT) .
	@echo "reference: $(DOCS_OUT)/index.html"

lint: deps
	luacheck --config .luacheckrc $(LINT_DIRS)

examples: deps build
	@d=$$(mktemp -d /tmp/eventstore-examples.XXXXXX); rc=0; \
	for t in examples/*.lua; do \
	  echo "== $$t"; \
	  EVENTSTORE_EXAMPLE_DIR="$$d" lua5.4 -e 'package.path="lua/?.lua;lua/?/init.lua;"..package.path package.cpath="$(OUT)/?.so;"..package.cpath' "$$t" || { echo "!! $$t failed"; rc=1; break; }; \
	done; \
	if [ $$rc -eq 0 ]; then echo "== examples/c_example.c"; $(BUILD)/c_example "sqlite:$$d/c_example.db" || rc=1; fi; \
	rm -rf "$$d"; exit $$rc

# The README's two commands: `make demo` runs the main job end to end on the
# embedded defaults; `make test` runs every test.
CARGO ?= cargo
BIN := target/debug/aspjwt
SHELLS := bash:aspjwt.bash zsh:_aspjwt fish:aspjwt.fish powershell:_aspjwt.ps1 elvish:aspjwt.elv

.PHONY: build test lint completions demo clean-demo

build:
	$(CARGO) build

# Node's jsonwebtoken (from the npm registry, pinned by package-lock.json) for the interop tests.
tests/node/node_modules/jsonwebtoken: tests/node/package-lock.json
	npm ci --prefix tests/node --no-audit --no-fund
	@touch $@

test: tests/node/node_modules/jsonwebtoken
	$(CARGO) test

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

completions: build
	@for pair in $(SHELLS); do \
		shell=$${pair%%:*}; file=$${pair#*:}; \
		$(BIN) completions $$shell > completions/$$file; \
	done
	@echo "completions/ regenerated"

demo: build
	./scripts/demo.sh

clean-demo:
	rm -rf demo

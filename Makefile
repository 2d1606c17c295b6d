# The README's two commands: `make demo` runs the main job end to end on the
# embedded defaults; `make test` runs every test.
CARGO ?= cargo
BIN := target/debug/aspjwt
SHELLS := bash:aspjwt.bash zsh:_aspjwt fish:aspjwt.fish powershell:_aspjwt.ps1 elvish:aspjwt.elv

.PHONY: build test lint completions demo clean-demo postgres

build:
	$(CARGO) build

# Node's jsonwebtoken and playwright-core (npm registry, pinned by package-lock.json)
# for the interop and browser tests.
tests/node/node_modules/jsonwebtoken: tests/node/package-lock.json
	npm ci --prefix tests/node --no-audit --no-fund
	@touch $@

# Debian's Chromium for the browser tests (root, as on every machine of this project).
CHROMIUM ?= /usr/bin/chromium
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

# The PostgreSQL the store and scale-out tests use (each test makes and drops its own
# database): the machine's server at 127.0.0.1:5432, started when it is not running.
# Set ASPJWT_TEST_PG to an admin URL to use another server.
postgres:
	@if [ -z "$$ASPJWT_TEST_PG" ] && ! pg_isready -q -h 127.0.0.1 -p 5432; then \
		echo "starting PostgreSQL"; \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; \
		for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; \
	fi

test: tests/node/node_modules/jsonwebtoken $(CHROMIUM) postgres
	$(CARGO) test
	CHROMIUM=$(CHROMIUM) node --test tests/browser/

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

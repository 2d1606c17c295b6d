# The README's two commands: `make demo` runs the main job end to end on the
# embedded defaults; `make test` runs every test.
CARGO ?= cargo
BIN := target/debug/aspjwt
SHELLS := bash:aspjwt.bash zsh:_aspjwt fish:aspjwt.fish powershell:_aspjwt.ps1 elvish:aspjwt.elv

.PHONY: build release test lint completions demo clean-demo postgres

build:
	$(CARGO) build

# The binary to ship: glibc linked statically (still position-independent, so ASLR
# holds). A dynamically linked aspjwt spends most of a short command's time in the
# dynamic loader; static, `aspjwt generate` starts about 0.3 ms sooner (README,
# Performance). --target keeps the flag off build scripts and proc-macros.
# getrandom's default backend looks glibc's getrandom() up at run time, which a static
# binary cannot do: it would fall back to /dev/urandom (absent in a bare container).
HOST := $(shell rustc -vV | sed -n 's/^host: //p')
RELEASE_RUSTFLAGS := -C target-feature=+crt-static --cfg getrandom_backend="linux_getrandom"
release:
	RUSTFLAGS='$(RELEASE_RUSTFLAGS)' $(CARGO) build --release --locked --target $(HOST) --bin aspjwt
	@echo "target/$(HOST)/release/aspjwt"

# Node's jsonwebtoken, dotenv and playwright-core (npm registry, pinned by
# package-lock.json) for the interop and browser tests.
NODE_MODULES := tests/node/node_modules/.installed
$(NODE_MODULES): tests/node/package-lock.json
	npm ci --prefix tests/node --no-audit --no-fund
	@touch $@

# Debian's Chromium for the browser tests (root, as on every machine of this project).
CHROMIUM ?= /usr/bin/chromium
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

# Prometheus's promtool for the alert-rule unit tests and the /metrics lint (Debian's
# prometheus package; the tests only run promtool, so a daemon the package starts is stopped).
PROMTOOL ?= /usr/bin/promtool
$(PROMTOOL):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus
	-@systemctl disable --now prometheus >/dev/null 2>&1 || true

# The PostgreSQL the store and scale-out tests use (each test makes and drops its own
# database): the server at 127.0.0.1:5432, used as it is when it runs, started when it
# is stopped, installed (Debian's postgresql) and created when there is none.
# Set ASPJWT_TEST_PG to an admin URL to use another server.
postgres:
	./scripts/test-postgres.sh

test: $(NODE_MODULES) $(CHROMIUM) $(PROMTOOL) postgres
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

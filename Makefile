# Two commands do all set-up on a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAM_VENV := .venv-sam
DEMO_STORE := file://.out/demo
export SAM_CLI_TELEMETRY := 0

.PHONY: loop checkov venv sam sam-local demo test test-slow unit pytest lint template-lint package-size bench clean serve console-screenshots eval-real lock venv312 test-py312

# The layer's lock is a constraint: the tests run the exact versions the Lambda layer ships.
venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml layers/recsys/requirements.txt layers/recsys/requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,tools]' -c layers/recsys/requirements.lock
	touch $@

# After changing layers/recsys/requirements.txt (or upgrading a dependency in the venv): rewrite the layer's lock
# from the venv (tests/test_layer_build.py fails until the two agree).
lock: venv
	$(BIN)/python layers/recsys/build_layer.py lock

# Lambda runs python3.12; the dev venv is the machine's python3. CI runs the whole suite under both. pyenv's 3.12 is
# used when no python3.12 is on PATH.
PYTHON312 ?= $(shell for p in $$(command -v python3.12) $(HOME)/.pyenv/versions/3.12*/bin/python3.12; do \
	$$p --version >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV312 := .venv312
venv312: $(VENV312)/.installed
$(VENV312)/.installed: pyproject.toml layers/recsys/requirements.txt layers/recsys/requirements.lock
	@test -n "$(PYTHON312)" || { echo "make: no python3.12 (on PATH or in ~/.pyenv/versions/3.12*): set PYTHON312=..."; exit 1; }
	$(PYTHON312) -m venv $(VENV312)
	$(VENV312)/bin/pip install -q --upgrade pip
	$(VENV312)/bin/pip install -q -e '.[dev,tools]' -c layers/recsys/requirements.lock
	touch $@

# The sam_local smoke runs the functions in python3.12 containers already; it runs once, under `make test`.
test-py312: venv312
	$(VENV312)/bin/pytest -q -p no:cacheprovider -m "not sam_local"

# aws-sam-cli pins its own boto3/pydantic, so it lives in a separate venv (never imports project code).
sam: $(SAM_VENV)/.installed
$(SAM_VENV)/.installed:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q --upgrade pip
	$(SAM_VENV)/bin/pip install -q aws-sam-cli
	touch $@

template-lint: sam
	AWS_DEFAULT_REGION=us-east-1 $(SAM_VENV)/bin/sam validate --lint --template template.yaml

# Security scan of template.yaml (not part of `make test`: checkov is a large install). The checks that do not
# apply are skipped in .checkov.yaml, each with its reason. cfn-lint's informational rules too.
CHECKOV_VENV := .venv-checkov
checkov: sam
	test -x $(CHECKOV_VENV)/bin/checkov || { $(PYTHON) -m venv $(CHECKOV_VENV) && $(CHECKOV_VENV)/bin/pip install -q checkov; }
	$(CHECKOV_VENV)/bin/checkov --config-file .checkov.yaml
	$(SAM_VENV)/bin/cfn-lint --include-checks I --regions us-east-1 -- template.yaml

# Exact deployment sizes (function + layers vs Lambda's 250 MB unzipped limit) from a real arm64/python3.12
# `sam build`; tests/test_package_size.py estimates the same from this venv in `make test`. Needs a python3.12
# (pyenv's 3.12.1 is used when none is on PATH) and network access for the arm64 wheels.
package-size: venv sam
	@if python3.12 --version >/dev/null 2>&1; then \
		$(SAM_VENV)/bin/sam build --template template.yaml; \
	else \
		PYENV_VERSION=3.11.7:3.12.1 $(SAM_VENV)/bin/sam build --template template.yaml; \
	fi
	$(BIN)/python -m tests.test_package_size .aws-sam/build

# The pipeline and the API in Lambda containers through stock `sam local` (docs/how-to/develop-with-sam.md): a
# Docker engine (started, or installed and started as root), the Lambda base image (built here from Debian's
# packages and PyPI when no registry serves AWS's; cached), `sam build` for this machine's architecture, a local S3,
# every events/ file and the state machine through `sam local start-lambda`, the API through `sam local start-api`.
# About 2 minutes once the image exists. SAM_LOCAL_FLAGS: --image public.ecr.aws/lambda/python:3.12, --no-events.
sam-local: venv sam
	$(BIN)/python -m recsys_tools.sam_local $(SAM_LOCAL_FLAGS)

lint: venv
	$(BIN)/ruff check .

# The fast inner loop: everything but the `slow` end-to-end tests (CLI subprocesses, overlapping and killed runs).
unit: venv
	$(BIN)/pytest -m "not slow"

# Only the `slow` tests.
test-slow: venv
	$(BIN)/pytest -m slow

pytest: venv
	$(BIN)/pytest

test: lint template-lint pytest

demo: venv
	rm -rf .out/demo
	$(BIN)/recsys run --tenant demo --surface home --start 2026-01-01 --end 2026-01-07 \
		--raw examples/sample/raw --catalog examples/sample/catalog.csv --store $(DEMO_STORE)
	$(BIN)/recsys manifest show --tenant demo --surface home --store $(DEMO_STORE)
	@echo "--- recommendations for u00008 (k=5) and u00017 (k=5), similar items to i00042 (k=5) ---"
	$(BIN)/recsys recommend --tenant demo --surface home --user u00008 --k 5 --store $(DEMO_STORE)
	$(BIN)/recsys recommend --tenant demo --surface home --user u00017 --k 5 --store $(DEMO_STORE)
	$(BIN)/recsys similar --tenant demo --surface home --item i00042 --k 5 --store $(DEMO_STORE)
	@echo "--- the operator console: make serve, then open http://127.0.0.1:8000/console/ (docs/how-to/use-the-console.md) ---"

serve: venv
	$(BIN)/recsys serve --store $(DEMO_STORE)

# The console's pages as the browser test sees them (headless chromium): renews docs/images/console/*.png.
console-screenshots: venv
	RECSYS_CONSOLE_SCREENSHOTS=docs/images/console $(BIN)/pytest -q tests/serve/test_console_browser.py

# The feedback loop after `make demo`: serve every sample user with exposure logging on, add their clicks, run the
# pipeline on today's lists and clicks, and show the signals moving (docs/tutorials/the-loop.md).
loop: venv
	test -d .out/demo/registry || $(MAKE) demo
	rm -rf .out/loop
	$(BIN)/python -m recsys_tools.loop --store $(DEMO_STORE) --out .out/loop

# Pipeline (100k and 1M events, with the read floor), incremental, API and artifact benchmarks; rewrites
# docs/benchmarks.md (about 15 minutes on 2 cores). Not part of `make test`. Options: benchmarks/run.py --help.
bench: venv
	$(BIN)/python benchmarks/run.py --sizes 100k,1m --out docs/benchmarks.md

# Every figure of docs/evaluation.md: real sessions and user histories (REAL_DATA, read in place) and the synthetic
# datasets, validation and test splits, ours against each baseline with intervals. Reports and summary.md go to
# .out/eval-real (about 15 minutes on 2 cores, most of it EASE; EVAL_REAL_FLAGS=--no-ease skips it).
REAL_DATA ?= ../shared/data/real
eval-real: venv
	$(BIN)/python -m recsys_tools.evaluation.suite --real $(REAL_DATA) --out .out/eval-real $(EVAL_REAL_FLAGS)

clean:
	rm -rf .out .aws-sam

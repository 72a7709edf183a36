# Two commands on a fresh machine (see README):
#   make demo   installs, starts the bundled sandbox APIs, runs every sync job into SQLite
#   make test   installs and runs the whole test suite (Postgres tests need 127.0.0.1:5432)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo ui test lint bench faults clean chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m sync_pipelines.demo

# the live loop: sandbox, Golioth webhook receiver (127.0.0.1:8787), Dagster UI and daemon with
# every schedule and sensor on (the sync schedules due at once); Ctrl-C or SIGTERM stops it all;
# options: make ui UI_ARGS="--port 3001 --receiver-port 8788"
ui: $(STAMP)
	$(PY) -m sync_pipelines.ui $(UI_ARGS)

# the browser test's headless Chromium (Debian's package; CI runs as root)
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

# two phases: most tests on TEST_WORKERS xdist workers (a file per worker), then the tests
# marked `serial` (they measure seconds or minute windows) alone, so load cannot fail them
TEST_WORKERS ?= 4
test: $(STAMP) chromium
	$(PY) -m ruff check sync_pipelines sync_pipelines_tests bench
	$(PY) -m pytest -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile -m "not serial and not faults"
	$(PY) -m pytest -p no:cacheprovider -m "serial and not faults"

# the whole fault suite (README "Fault suite"): the CI cells plus the long ones (database
# restarts, SIGKILL, concurrent runs, the matrix on Postgres); e.g. FAULTS_ARGS="-n 4 --dist loadfile"
faults: $(STAMP)
	SYNC_FAULT_SUITE=full $(PY) -m pytest -p no:cacheprovider $(FAULTS_ARGS) sync_pipelines_tests/faults
	$(PY) -m pytest -p no:cacheprovider -m faults sync_pipelines_tests --ignore=sync_pipelines_tests/faults

# dlt (the peer of bench/dlt_peer.py) lives in a venv of its own: never a product dependency.
DLT_VENV := .venv-dlt
$(DLT_VENV)/.installed:
	$(PYTHON) -m venv $(DLT_VENV)
	$(DLT_VENV)/bin/pip install --quiet 'dlt[postgres]==1.31.*'
	touch $@

# every benchmark runs, then the target fails if any did (bench/README.md); sizes e.g.
# make bench BENCH_SOURCES_ARGS="--golioth-points 100000"
bench: $(STAMP) $(DLT_VENV)/.installed
	@status=0; \
	$(PY) bench/upsert_vs_copy.py $(BENCH_UPSERT_ARGS) || status=1; \
	$(PY) bench/sources.py $(BENCH_SOURCES_ARGS) || status=1; \
	$(PY) bench/dlt_peer.py $(BENCH_DLT_ARGS) || status=1; \
	exit $$status

clean:
	rm -rf $(VENV) .sync_data

# The two commands of the README: `make run` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test faults soak lint bench setup screenshots

# The Python client (client/, its own package) is installed beside taskfleet: the CLI
# uses it and the tests exercise it. It is not in setup.cfg, where a path would be
# looked up on the package index.
$(BIN)/taskfleet: setup.cfg pyproject.toml client/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ./client -e '.[dev,demo]'
	touch $@

setup: $(BIN)/taskfleet

run: setup
	$(BIN)/taskfleet up

# Two pytest processes (pytest-xdist): each starts its own Postgres and Redis, and the
# real-stack tests spend most of their time waiting. The fault and soak runs stay serial.
test: setup
	$(BIN)/pytest -n 2

# pytest exits 5 when no test is selected; that is not a failure here.
faults: setup
	$(BIN)/pytest -m faults || [ $$? -eq 5 ]

# Long runs on the real stack (a 10,000-task job to the end); CI runs them too.
soak: setup
	$(BIN)/pytest -m slow || [ $$? -eq 5 ]

lint: setup
	$(BIN)/ruff check app workers tests migrations beat_schedule.py gunicorn_conf.py client
	$(BIN)/ruff format --check app workers tests migrations beat_schedule.py gunicorn_conf.py client
	$(BIN)/mypy
	luacheck app/store/lua

# The benchmark (about 12 minutes on a 2-core machine): end-to-end and slow-backend
# throughput, added latency, selection, a million records, backend modes; every figure
# against a baseline of the same run. One part: $(BIN)/python -m bench.run --only e2e.
bench: setup
	$(BIN)/python -m bench.run

# The dashboard's screenshots in docs/screenshots/ (linked from the README): the browser
# test against a real stack saves each page there. CI=true makes a missing Chromium
# (apt-get install chromium), Redis or Postgres an error rather than a skip.
screenshots: setup
	TASKFLEET_SCREENSHOTS=$(CURDIR)/docs/screenshots CI=true $(BIN)/pytest -p no:cacheprovider -q tests/dashboard/test_browser.py

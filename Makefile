# Everything runs from a project-local virtualenv that these targets create on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
READY  := $(VENV)/.ready
DEALS  ?= 100000

.PHONY: setup demo browse bench test pytest browser mutate lint format clean

setup: $(READY)

# The emulator extra is installed from emulator/, in the same pip command: the resolver then
# takes that copy and never looks for `recotap-emulator` on an index (it is not published yet).
$(READY): pyproject.toml emulator/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
		{ echo "target-recotap needs Python 3.10 or newer (set PYTHON=python3.x)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,emulator]" -e ./emulator
	@touch $(READY)

demo: $(READY)
	$(BIN)/python demo/run_demo.py

# The emulator's page on the last demo's data, until Ctrl-C (`make browse PORT=0`: any free port).
PORT ?= 8765
browse: $(READY)
	@test -f demo-output/emulator.sqlite || { echo "No demo data yet: run make demo first"; exit 1; }
	$(BIN)/recotap-emulator serve --db demo-output/emulator.sqlite --port $(PORT) --quiet

# CPU vs a stock singer-sdk target, throughput at 100 ms latency (deals, accounts, activities,
# accounts and deals mixed) and under a rate limit, memory.
# A few minutes; `make bench DEALS=20000` for a quicker run. See docs/benchmarks.md.
bench: $(READY)
	$(BIN)/python bench/run_bench.py --deals $(DEALS)

test: lint pytest

# The suite alone (CI's test jobs: lint runs once, in its own job).
pytest: $(READY) browser
	$(BIN)/python -m pytest -n 2 --dist loadgroup

# The page's browser test (tests/test_page_browser.py) drives Debian's Chromium and its
# driver. CI starts on a clean machine, as root: install them there, and wherever apt-get can.
# Where they cannot be had the suite still runs: the test says why it skips (fails in CI).
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			echo "Installing chromium and chromium-driver (Debian) for the browser test"; \
			export DEBIAN_FRONTEND=noninteractive; \
			{ apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; } \
				|| echo "Could not install them: the browser test will be skipped"; \
		else \
			echo "No Chromium: the browser test will be skipped (as root, apt-get installs it)"; \
		fi; \
	fi

# Mutation testing of the modules where a quiet bug loses or corrupts data, against the fast
# tests (tens of minutes on 2 cores; not part of `make test`). Starts afresh each time, so the
# figure is that of the code and tests as they are. See docs/mutation.md.
mutate: $(VENV)/.mutate-ready
	rm -rf mutants
	$(BIN)/mutmut run
	$(BIN)/python scripts/mutation_report.py

$(VENV)/.mutate-ready: $(READY)
	$(BIN)/python -m pip install --quiet -e ".[test,emulator,mutate]" -e ./emulator
	@touch $@

lint: $(READY)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/typos

format: $(READY)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis demo-output mutants

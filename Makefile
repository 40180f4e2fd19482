# missionwatch: `make demo` runs the main job, `make test` runs every test.
# Both create .venv and install what they need.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo demo-replay sysdeps test lint bench bench-replay bench-detection bench-fair-dependence bench-power bench-stream bench-memory bench-throughput bench-transparency golden clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "missionwatch needs Python 3.11 or newer (found $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# the streaming demo: embedded broker, monitor, a gateway that obeys pauses (Ctrl-C stops it all)
demo: $(STAMP)
	$(BIN)/missionwatch demo

# the offline demo: simulate, replay into files and a DuckDB ledger, explain, verify
demo-replay: $(STAMP)
	$(BIN)/python scripts/demo.py

# system packages the tests use: kcat (Debian) talks to the service as any Kafka client would;
# chromium (Debian) is the browser the console's tests drive (never a downloaded one)
sysdeps:
	@command -v kcat >/dev/null && test -x /usr/bin/chromium || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat chromium; }

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/mypy

# two test processes (pytest-xdist), whole files to each: the suite fits CI's 15 minutes on 2 cores
test: lint sysdeps
	$(BIN)/pytest -q -n 2 --dist loadfile

bench: bench-replay bench-detection bench-fair-dependence bench-power bench-stream bench-memory bench-throughput bench-transparency

bench-replay: $(STAMP)
	$(BIN)/python benchmarks/replay.py

bench-detection: $(STAMP)
	$(BIN)/python benchmarks/detection.py

bench-fair-dependence: $(STAMP)
	$(BIN)/python benchmarks/fair_dependence.py

bench-power: $(STAMP)
	$(BIN)/python benchmarks/power.py

bench-stream: $(STAMP)
	$(BIN)/python benchmarks/stream.py

# peak RSS of `missionwatch replay` over 20,000 and 200,000 receipts and 5,000 missions
bench-memory: $(STAMP)
	$(BIN)/python benchmarks/memory.py

# every throughput figure beside its ceiling, produce-to-control latency, recovery after kill -9
# and the RSS of 10,000 missions, in one run (about 15 minutes on 2 cores; --quick: a smoke run)
bench-throughput: $(STAMP)
	$(BIN)/python benchmarks/throughput.py

# the transparency log: proofs at 10^6 leaves, the cost of a checkpoint
bench-transparency: $(STAMP)
	$(BIN)/python benchmarks/transparency.py

# Regenerate the golden example files after an intended change of behaviour;
# review the diff before committing it.
golden: $(STAMP)
	$(BIN)/python scripts/make_golden.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache demo-out

# ssdbook: two commands on a fresh machine (see README.md).
#   make main   — the main job: shapes set -> train the mini SSD on the CPU -> VOC07 mAP -> picture
#   make test   — every test: unit tests, every notebook (nbval), nbdev sync, book build
# Each installs what it needs into .venv (offline apart from the package registry).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.ssdbook-installed

.PHONY: install main test export book run-nbs bench clean

$(STAMP): setup.py settings.ini
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

main: $(STAMP)
	$(BIN)/python -m ssdbook demo

test: $(STAMP)
	$(BIN)/python -m pytest

export: $(STAMP)
	$(BIN)/nbdev_export

book: $(STAMP)
	$(BIN)/jupyter-book build . -W -n --keep-going

# Re-run every chapter with full budgets so the committed outputs come from a real run.
run-nbs: $(STAMP)
	for nb in nbs/*.ipynb; do echo "== $$nb"; $(BIN)/python tools/nbtext.py run $$nb || exit 1; done
	$(BIN)/nbdev_export

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf _build .pytest_cache

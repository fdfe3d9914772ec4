# ssdbook: two commands on a fresh machine (see README.md).
#   make main   — the main job: shapes set -> train the mini SSD on the CPU -> VOC07 mAP -> picture
#   make test   — every test: unit tests, every notebook (nbval), nbdev sync, book build
# Each installs what it needs into .venv (offline apart from the package registry).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.ssdbook-installed

.PHONY: install main test export book book-run run-nbs book-check book-screens bench clean

# --no-compile: pip would byte-compile every installed .py file (about 16,000, ~54 CPU s measured); Python
# compiles the modules it actually imports on first use instead.
$(STAMP): setup.py settings.ini
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --no-compile --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

main: $(STAMP)
	$(BIN)/python -m ssdbook demo

# pytest-xdist: one worker per core (at most 4), each with cores/workers torch threads (conftest.py); --dist
# loadfile keeps a file together, so every cell of a notebook runs in order in one kernel (nbval).
JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ $$n -gt 4 ] && n=4; echo $$n)

test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) --dist loadfile

# nbdev_export writes the modules from the notebooks; ruff formats them (nbdev's long __all__ lines).
export: $(STAMP)
	$(BIN)/nbdev_export
	$(BIN)/ruff format --quiet ssdbook

book: $(STAMP)
	$(BIN)/jupyter-book build . -W -n --keep-going

# One pass makes the book (tools/run_book.py): the main job if its checkpoint is missing or stale, every
# chapter in _toc.yml order with full budgets, a stamp (library commit, machine) on each page, nbdev_export.
book-run: $(STAMP)
	$(BIN)/python tools/run_book.py

run-nbs: book-run

# Which pages are older than the library they use (nothing runs).
book-check: $(STAMP)
	$(BIN)/python tools/run_book.py --check

# A full-page PNG of every page at 1280 px and a table of what a reader would trip over (tools/screenshot_book.py).
book-screens: $(STAMP)
	$(BIN)/python tools/screenshot_book.py --build

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf _build .pytest_cache

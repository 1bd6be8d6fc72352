# The two commands the README opens with: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

$(BIN)/activate: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(BIN)/activate

.PHONY: install demo test test-oldest lint format bench docs docs-quick docs-online docs-clean
install: $(BIN)/activate

demo: install
	$(BIN)/skinfluence demo

test: install
	$(BIN)/python -m ruff check skinfluence tests examples benchmarks
	$(BIN)/python -m ruff format --check skinfluence tests examples benchmarks
	$(BIN)/python -m pytest -n 2 -q

# the lowest versions pyproject.toml allows (numpy 1.x, scikit-learn 1.5, ...),
# pinned in .ci/oldest-constraints.txt, in their own environment; pip moves an
# existing environment to the pins. Needs Python 3.10 or 3.11 (no numpy 1.24
# wheels for 3.12+).
OLDEST := .venv-oldest
OLDEST_PINS := .ci/oldest-constraints.txt
test-oldest:
	test -x $(OLDEST)/bin/python || $(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install --quiet --upgrade pip
	$(OLDEST)/bin/python -m pip install --quiet -c $(OLDEST_PINS) -e ".[test]"
	SKINFLUENCE_PINNED=$(OLDEST_PINS) $(OLDEST)/bin/python -m pytest -n 2 -q -p no:cacheprovider --ignore=tests/test_examples.py

lint: install
	$(BIN)/python -m ruff check skinfluence tests examples benchmarks

format: install
	$(BIN)/python -m ruff format skinfluence tests examples benchmarks
	$(BIN)/python -m ruff check --fix skinfluence tests examples benchmarks

bench: install
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/bench_core.py

# The documentation site (Sphinx, warnings as errors) into doc/_build/html.
# The gallery runs every examples/plot_*.py; docs-quick runs them in their
# quick mode (what CI does); docs-online adds the intersphinx links (network).
DOCS_STAMP := $(VENV)/.docs-installed
# one BLAS thread: the examples' many small fits slowed down by 10x and more
# with OpenBLAS threads competing for a loaded 2-core machine
DOCS_ENV := MPLBACKEND=Agg OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
$(DOCS_STAMP): $(BIN)/activate pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	touch $(DOCS_STAMP)

# autosummary's pages are regenerated each time: stale ones (of renamed or
# removed objects) would fail the build; the gallery keeps its cache
docs: $(DOCS_STAMP)
	rm -rf doc/generated
	$(DOCS_ENV) $(BIN)/python -m sphinx -W --keep-going -b html doc doc/_build/html

docs-quick: $(DOCS_STAMP)
	rm -rf doc/generated
	SKINFLUENCE_QUICK=1 $(DOCS_ENV) $(BIN)/python -m sphinx -W --keep-going -b html doc doc/_build/html

docs-online: $(DOCS_STAMP)
	rm -rf doc/generated
	SKINFLUENCE_DOCS_INTERSPHINX=1 $(DOCS_ENV) $(BIN)/python -m sphinx -W --keep-going -b html doc doc/_build/html

docs-clean:
	rm -rf doc/_build doc/auto_examples doc/generated doc/sg_execution_times.rst

# Quickstart: `make discover` and `make test`; both set up .venv first when needed.
VENV ?= .venv
PY := $(VENV)/bin/python
PROMPT ?= discover me a new model

.PHONY: setup test discover bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/setup.sh
	VENV=$(VENV) bash scripts/setup.sh

# pytest exits 5 when no test is collected; that is a failure of the suite, not a pass.
test: setup
	$(PY) -m pytest -q

discover: setup
	$(VENV)/bin/modis discover "$(PROMPT)"

bench: setup
	$(PY) scripts/bench_lm.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

# Quickstart: `make discover` and `make test`; both set up .venv first when needed.
VENV ?= .venv
PY := $(VENV)/bin/python
PROMPT ?= discover me a new model

.PHONY: setup test discover bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/setup.sh
	VENV=$(VENV) bash scripts/setup.sh

# pytest exits 5 when it collects no test: with this suite that means a broken selection, so it fails, with a reason.
# TEST_WORKERS pytest processes share the tests (pytest-xdist); most of a test's time is a sandboxed child starting.
TEST_WORKERS ?= 2
test: setup
	@$(PY) -m pytest -q -n $(TEST_WORKERS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (check tests/ and the -m filter)"; exit 1; fi; \
	exit $$rc

discover: setup
	$(VENV)/bin/modis discover "$(PROMPT)"

bench: setup
	$(PY) scripts/bench_lm.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

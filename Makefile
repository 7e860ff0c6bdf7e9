# The two commands of the README:  make demo  (set up + short training run)  and  make test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_CONFIG ?= configs/quantum_independent_pong_features.yaml
DEMO_ITERS  ?= 30

.PHONY: setup demo test clean

$(STAMP): pyproject.toml requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/rllib-quantum train $(DEMO_CONFIG) --stop-iters $(DEMO_ITERS)

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) results .pytest_cache

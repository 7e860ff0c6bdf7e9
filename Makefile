# The two commands of the README:  make demo  (set up + train the demo config to its own stop:
# 500k env steps of the quantum features config)  and  make test.  DEMO_ITERS=N stops earlier.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_CONFIG ?= configs/quantum_independent_pong_features.yaml
DEMO_ITERS  ?=

.PHONY: setup demo test clean

$(STAMP): pyproject.toml requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/rllib-quantum train $(DEMO_CONFIG) $(if $(DEMO_ITERS),--stop-iters $(DEMO_ITERS))

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) results .pytest_cache

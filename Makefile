# Two commands do all the set-up on a fresh Debian or Ubuntu machine:
#   make demo   runs the whole stack locally
#   make test   runs the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench venv system-deps clean rules grafana

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

system-deps:
	scripts/install-system-deps.sh test

test: venv system-deps
	$(BIN)/lint-imports --no-cache   # the layers' contracts in pyproject.toml
	$(BIN)/python -m pytest -q --durations=25

bench: venv
	$(BIN)/python -m bench

# Regenerate the demo's Prometheus rules and Alertmanager configuration from the example spec
# (a test fails when they differ).
rules: venv
	$(BIN)/mcp-slo rules --config examples/slo.yaml --out demo/data/rules
	$(BIN)/mcp-slo alertmanager --config examples/slo.yaml --out demo/data/alertmanager.yml

# Regenerate the committed Grafana dashboards and provisioning files (a test fails when they differ).
grafana: venv
	$(BIN)/mcp-slo grafana --config examples/slo.yaml --out grafana

# make demo DEMO_ARGS="--workdir demo-state --scenario regression": options of mcp-slo demo
# (a kept --workdir starts again in seconds, with its history)
demo: venv
	scripts/install-system-deps.sh demo
	$(BIN)/mcp-slo demo $(DEMO_ARGS)

clean:
	rm -rf $(VENV) .cache .pytest_cache

# Thin wrappers around scripts/; the scripts are the source of truth.
VENV := $(if $(WSSS_VENV),$(WSSS_VENV),.venv)
PYTEST_ARGS ?=

.PHONY: setup test demo pipeline

setup:
	bash scripts/setup.sh

test:
	bash scripts/test.sh $(PYTEST_ARGS)

demo:
	bash scripts/setup.sh
	$(VENV)/bin/wsss demo --params params.yaml --out outputs/demo

pipeline:
	bash scripts/run_sample.sh

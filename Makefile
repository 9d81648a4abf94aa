# Thin wrappers around scripts/; the scripts are the source of truth.
VENV := $(if $(WSSS_VENV),$(WSSS_VENV),.venv)
PYTEST_ARGS ?=

.PHONY: setup test demo pipeline plots

setup:
	bash scripts/setup.sh

test:
	bash scripts/test.sh $(PYTEST_ARGS)

demo:
	bash scripts/setup.sh
	$(VENV)/bin/wsss demo --params params.yaml --out outputs/demo

pipeline:
	bash scripts/run_sample.sh

# The charts, offline (setup.sh writes the page; rewritten here if it is missing).
plots:
	test -s .dvc/plots/offline.html || $(VENV)/bin/python -m wsss.plots.offline_html .dvc/plots/offline.html
	$(VENV)/bin/dvc plots show

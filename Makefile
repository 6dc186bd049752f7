# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: demo test test-fast test-mutations bench docs clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# The main pipeline on its defaults: build, reparameterize, export behind the parity gate, profile, report.
# A few other families go through ONNX Runtime beside it, so the report can set latency against MACs.
DEMO_MODEL ?= repvit_m1
DEMO_COMPARE ?= repvit_m0_9 mobilenetv3_large_100 efficientnet_b0 convnext_atto edgenext_x_small
DEMO_RUN := demo-$(shell date -u +%Y%m%dT%H%M%S)
demo: $(STAMP)
	$(PY) -m models info $(DEMO_MODEL)
	$(PY) -m reparam $(DEMO_MODEL) --out artifacts/$(DEMO_MODEL)/$(DEMO_MODEL)_deploy.pt
	$(PY) -m export $(DEMO_MODEL) --formats onnx,coreml,tflite
	$(PY) -m profiling run $(DEMO_MODEL) --formats onnx,tflite,torch --label demo --run-id $(DEMO_RUN)
	$(PY) -m profiling run $(DEMO_COMPARE) --formats onnx --label demo --run-id $(DEMO_RUN)
	$(PY) -m profiling report --run $(DEMO_RUN) --out reports/demo
	@echo "demo done: artifacts/$(DEMO_MODEL)/, results/latency.db (run $(DEMO_RUN)), reports/demo/report.md"

# --durations=15: the 15 slowest tests after the run, so a test that grows slow is seen at once.
# Everything but the mutation matrix (TFLite and Core ML x fp32/fp16 x every family: ~2 CPU-hours here);
# the gate's mutation suite runs here through ONNX for every family; `make test-mutations` runs all of it.
test: $(STAMP)
	$(PY) -m pytest -n $(PYTEST_WORKERS) --durations=15 -m "not mutation_matrix" tests

# every case of the gate's mutation suite (~2.5 CPU-hours), then the mutation tables in README.md and docs/export.md
# written from its report (docs/gen_mutations.py); the pytest status is make's
test-mutations: $(STAMP)
	mkdir -p build
	$(PY) -m pytest -n $(PYTEST_WORKERS) --durations=15 --junitxml=build/mutations.xml tests/test_gate_mutations.py; \
	status=$$?; $(PY) docs/gen_mutations.py build/mutations.xml && exit $$status

test-fast: $(STAMP)
	$(PY) -m pytest -m fast tests

bench: $(STAMP)
	@for f in bench/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

# Regenerates the zoo table in docs/models.md from the registry (tests/test_docs.py fails when it is stale).
docs: $(STAMP)
	$(PY) docs/gen_zoo.py
	$(PY) docs/gen_tolerances.py

clean:
	rm -rf $(VENV) artifacts results reports

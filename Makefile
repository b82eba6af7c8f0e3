# pipeline_seg — the commands people type. `make test` sets up what it needs.
PYTHON ?= python3
VENV := .venv
TRAIN_VENV := .venv-train

.PHONY: test model study help

help:
	@echo "make test   - fast tests: scene generator determinism, the shipped ONNX model's contract"
	@echo "make model  - rebuild data, train, export, calibrate and evaluate the shipped model (~30 min, CPU)"
	@echo "make study  - the dropout-placement study behind the shipped choice"

$(VENV)/.ok: training/requirements-test.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -r training/requirements-test.txt
	touch $@

$(TRAIN_VENV)/.ok: training/requirements.txt
	$(PYTHON) -m venv $(TRAIN_VENV)
	$(TRAIN_VENV)/bin/pip install -q -r training/requirements.txt
	touch $@

test: $(VENV)/.ok
	$(VENV)/bin/python -m pytest -q training/tests

model: $(TRAIN_VENV)/.ok
	$(TRAIN_VENV)/bin/python training/pipeline.py

study: $(TRAIN_VENV)/.ok
	@test -d training/data || $(TRAIN_VENV)/bin/python training/make_data.py --seed 7 --out training/data
	for p in bottleneck bottleneck+decoder last_block head; do \
	  $(TRAIN_VENV)/bin/python training/study.py --placement $$p --steps 1400 --threads 2 || exit 1; done
	$(TRAIN_VENV)/bin/python training/study.py --table

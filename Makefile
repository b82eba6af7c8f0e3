# pipeline_seg — the commands people type. `make demo` and `make test` set up what they need.
SHELL := /bin/bash
PYTHON ?= python3
TRAIN_VENV := .venv-train
ENV := . scripts/env.sh &&
CARGO_RELEASE := cargo build --release --locked
DEMO_OUT := demo_out

PIPELINE_SEG ?= target/release/pipeline_seg
# Targets that run the Rust CLI build it first, unless PIPELINE_SEG points at another binary.
BIN_DEP := $(if $(filter target/release/pipeline_seg,$(PIPELINE_SEG)),build,)
BASE ?= models/pipeline_seg_unet.onnx
ADAPT_OUT := adapt_out

.PHONY: help setup build lint demo test bench model study finetune test-training test-gpu-setup al-study adapt-demo fuzz test-colcon refit-trust

help:
	@echo "make demo   - set up, build, segment tests/data/frames/val/image/ and replay tests/data/sample_bag"
	@echo "make test   - set up, build, run the Rust and Python tests (what CI runs)"
	@echo "make lint   - cargo fmt --check and clippy -D warnings, with and without the ros feature (part of make test)"
	@echo "make bench  - criterion benches, 'pipeline_seg bench' at fixed T = 1, 8, 16, the default (anytime, T <= 16) and the naive loop"
	@echo "make setup  - apt packages, .venv (onnxruntime, test tools, ROS 2 Jazzy wheels); idempotent; GPU=1 adds the GPU ONNX Runtime (CUDA 13, ~2.5 GB on disk)"
	@echo "make model  - the shipped model's recipe: rebuild data, warm-start training from training/base, export, calibrate, evaluate, fit trust, replay the gate into models/ (~60 min, CPU; models/MODEL_CARD.md)"
	@echo "make study  - the dropout-placement study behind the shipped choice"
	@echo "make refit-trust - refit feature_distance and trust on the shipped weights, choose the default gate, replay it (~15 min, no PyTorch)"
	@echo "make finetune LABELS=\"DIR...\" OUT=FILE.onnx [BASE=models/pipeline_seg_unet.onnx] - fine-tune on labelled frames"
	@echo "make test-training - a few-step fine-tune with PyTorch, checked against the model contract"
	@echo "make test-colcon - the README's colcon build on a fresh clone of HEAD, then the installed node in a clean ROS 2 environment segments a frame (minutes; not part of make test)"
	@echo "make test-gpu-setup - install the GPU ONNX Runtime, build with cuda; bench --device cuda runs on a GPU or exits 2 saying there is none"
	@echo "make al-study - does uncertainty selection beat random labelling? (27 fine-tunes of 400 steps, 8-9 min each with scoring on 2 AVX2 cores: about 4 h there; AL_ARGS='--budgets 40 --methods mi,random' runs 6 in about 1 h)"
	@echo "make adapt-demo - record -> replay -> select -> label -> finetune -> calibrate on the sample bag"
	@echo "make fuzz   - coverage-guided fuzzing (cargo-fuzz, stable toolchain; atheris for the label reader), each target FUZZ_SECONDS (600) one after another; not part of make test"

setup:
	@bash scripts/setup.sh $(if $(filter 1,$(GPU)),--gpu,)

build: setup
	$(ENV) $(CARGO_RELEASE)
	$(ENV) $(CARGO_RELEASE) --features ros --bin pipeline_seg_node

demo: build
	rm -rf $(DEMO_OUT)
	$(ENV) target/release/pipeline_seg infer --out $(DEMO_OUT) tests/data/frames/val/image/
	@echo "demo outputs: $(CURDIR)/$(DEMO_OUT)/ (summary.json, <frame>_overlay.png, _mask.png, _entropy.png, .npy maps)"
	$(ENV) target/release/pipeline_seg replay tests/data/sample_bag --topic /camera/image_raw/compressed \
		--gt-topic /camera/mask --samples 4 --write mask,confidence --out $(DEMO_OUT)/replay
	@echo "replay outputs: $(CURDIR)/$(DEMO_OUT)/replay/ (output/ bag, frames.csv, metrics.json, state.json for merge)"
	@echo "replay report:  $(CURDIR)/$(DEMO_OUT)/replay/report.html"

# --release: clippy then reuses the release build's build-script outputs (opencv and r2r bindings).
lint: build
	$(ENV) cargo fmt --check
	$(ENV) cargo clippy --release --locked --all-targets -- -D warnings
	$(ENV) cargo clippy --release --locked --all-targets --features ros -- -D warnings

test: build lint
	$(ENV) cargo test --release --locked
	$(ENV) cargo test --release --locked --features cuda,tensorrt --test providers
	$(ENV) python3 -m pytest -q training/tests tests

bench: build
	$(ENV) cargo bench --locked --bench engine
	$(ENV) for t in 1 8 16; do target/release/pipeline_seg bench --samples $$t --min-samples $$t --frames 50; done
	$(ENV) target/release/pipeline_seg bench --frames 50 --input tests/data/frames/val/image
	$(ENV) target/release/pipeline_seg bench --samples 16 --frames 20 --input tests/data/frames/val/image --one-pass-per-sample

$(TRAIN_VENV)/.ok: training/requirements.txt
	$(PYTHON) -m venv $(TRAIN_VENV)
	$(TRAIN_VENV)/bin/pip install -q -r training/requirements.txt
	touch $@

model: $(TRAIN_VENV)/.ok $(BIN_DEP)
	PIPELINE_SEG=$(PIPELINE_SEG) $(TRAIN_VENV)/bin/python training/pipeline.py

study: $(TRAIN_VENV)/.ok
	@test -d training/data || $(TRAIN_VENV)/bin/python training/make_data.py --seed 7 --out training/data
	for p in bottleneck bottleneck+decoder last_block head; do \
	  $(TRAIN_VENV)/bin/python training/study.py --placement $$p --steps 1400 --threads 2 || exit 1; done
	$(TRAIN_VENV)/bin/python training/study.py --table

finetune: $(TRAIN_VENV)/.ok
	@test -n "$(LABELS)" -a -n "$(OUT)" || { echo 'usage: make finetune LABELS="DIR..." OUT=FILE.onnx [BASE=models/pipeline_seg_unet.onnx] [FINETUNE_ARGS="--steps 200"]' >&2; exit 2; }
	$(TRAIN_VENV)/bin/python training/finetune.py --labels $(LABELS) --out $(OUT) --base $(BASE) $(FINETUNE_ARGS)

# The GPU path: installs onnxruntime-gpu (~2.5 GB on disk), builds with the cuda feature, and checks that
# `bench --device cuda` runs on a GPU or, without one, exits 2 saying so (not part of make test).
test-gpu-setup:
	bash scripts/test_gpu_setup.sh

# The README's colcon steps on a fresh clone of HEAD (commit first), then the installed node, in an
# environment with only ROS 2 and install/setup.bash, must find ONNX Runtime and segment a frame
# published by rclpy. SEED=0: cold cargo build (15+ min); KEEP=1 keeps the workspace.
test-colcon: setup
	bash scripts/test_colcon.sh

# The shipped weights' feature_distance and trust score, and the gate replayed (issue 11; records in
# training/runs/trust and training/runs/gate_check, spliced into the model card).
refit-trust: build
	bash training/refit_trust.sh .venv/bin/python $(PIPELINE_SEG)

test-training: $(TRAIN_VENV)/.ok
	$(TRAIN_VENV)/bin/python -m pytest -q training/tests_torch

# The frames the study and the fine-tunes need, if `make model` has not left them in training/data.
training/data/val_dr/meta.jsonl: | $(TRAIN_VENV)/.ok
	$(TRAIN_VENV)/bin/python training/make_data.py --seed 7 --out training/data --splits val_dr,ho_water,ho_seabed,ho_coating,ho_light
	$(TRAIN_VENV)/bin/python training/make_data.py --seed 7 --out training/data --splits train_dr --max 200

al-study: $(TRAIN_VENV)/.ok $(BIN_DEP) training/data/val_dr/meta.jsonl
	$(ENV) $(TRAIN_VENV)/bin/python training/al_study.py --bin $(PIPELINE_SEG) --base $(BASE) $(AL_ARGS)
	$(TRAIN_VENV)/bin/python training/card.py

adapt-demo: $(TRAIN_VENV)/.ok $(BIN_DEP) training/data/val_dr/meta.jsonl
	$(ENV) BASE=$(BASE) bash training/adapt_demo.sh $(PIPELINE_SEG) $(ADAPT_OUT) $(TRAIN_VENV)/bin/python

# Coverage-guided fuzzing (not part of `make test`, which replays the seeds and every finding:
# tests/fuzz_regressions.rs): each target of fuzz/ for FUZZ_SECONDS, one after another, one
# process. FUZZ_TARGETS="cdr bag" picks some. Installs cargo-fuzz and, into .venv, atheris.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?=
fuzz: setup
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	$(ENV) { python3 -c 'import atheris' 2>/dev/null || python3 -m pip install -q atheris; }
	$(ENV) FUZZ_SECONDS=$(FUZZ_SECONDS) bash fuzz/run.sh $(FUZZ_TARGETS)

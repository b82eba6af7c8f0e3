#!/usr/bin/env bash
# `make test-gpu-setup`: the GPU path installs and fails loudly (not part of `make test`, which
# needs no GPU runtime). Installs the GPU ONNX Runtime (scripts/setup.sh --gpu, ~2.5 GB on disk), builds
# the CLI with the cuda feature and runs `bench --device cuda`:
# - with a GPU (nvidia-smi lists one): it must run on CUDAExecutionProvider;
# - without: exit 2 and a message saying no usable CUDA device or driver, not a missing library.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
bash scripts/setup.sh --gpu
# shellcheck source=/dev/null
. scripts/env.sh
case $ORT_DYLIB_PATH in
  */ort-gpu/*) ;;
  *) echo "FAILED: env.sh points ORT_DYLIB_PATH at $ORT_DYLIB_PATH, not the GPU runtime" >&2; exit 1 ;;
esac
cargo build --release --locked --features cuda,tensorrt --bin pipeline_seg --target-dir target/gpu
rc=0
out=$(target/gpu/release/pipeline_seg bench --device cuda --frames 5 2>&1) || rc=$?
echo "$out"
if nvidia-smi -L >/dev/null 2>&1; then
  [ $rc = 0 ] && grep -q '"execution_provider":"CUDAExecutionProvider"' <<<"$out" ||
    { echo "FAILED: a GPU is present, but bench --device cuda did not run on CUDA (exit $rc)" >&2; exit 1; }
else
  [ $rc = 2 ] || { echo "FAILED: expected exit 2 without a GPU, got $rc" >&2; exit 1; }
  grep -q 'no usable CUDA device or driver' <<<"$out" ||
    { echo "FAILED: the message does not say 'no usable CUDA device or driver'" >&2; exit 1; }
  if grep -q 'library is missing' <<<"$out"; then
    echo "FAILED: the message blames a missing library" >&2; exit 1
  fi
fi
echo "1 passed, 0 failed"

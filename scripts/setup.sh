#!/usr/bin/env bash
# Sets up a machine to build and test pipeline_seg: Debian build packages, the project venv .venv
# and, unless a ROS 2 is already sourced (e.g. /opt/ros/jazzy on the vehicle), ROS 2 Jazzy from
# PyPI wheels inside .venv. Idempotent; a re-run with nothing to do takes well under 2 s.
# Afterwards: `source scripts/env.sh`. PYTHON picks the interpreter (default python3).
# --gpu (or GPU=1, as `make setup GPU=1` passes it) also installs the GPU ONNX Runtime
# (onnxruntime-gpu 1.31.1, a CUDA 13 build, with its CUDA and cuDNN wheels: ~2.5 GB on disk) into
# .venv/ort-gpu, apart from the CPU onnxruntime that the Python tests import.
set -euo pipefail
gpu=${GPU:-0}
for arg in "$@"; do
  case $arg in
    --gpu) gpu=1 ;;
    *) echo "setup.sh: unknown option '$arg' (known: --gpu)" >&2; exit 2 ;;
  esac
done
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
VENV=$ROOT/.venv
PY=${PYTHON:-python3}
cd "$ROOT"

# --- apt. opencv crate: libopencv-dev, pkg-config, libclang (bindgen); r2r: libclang; cmake for
# crates that build C sources. One Python start (pyenv shims are slow) answers the Python questions.
info=$("$PY" -c 'import sys, sysconfig as s, importlib.util as u
print("%d.%d" % sys.version_info[:2], "%s/libpython%s.so" % (s.get_config_var("LIBDIR"), s.get_config_var("LDVERSION")),
      int(u.find_spec("ensurepip") is not None))')
read -r pyver libpython has_ensurepip <<<"$info"
# chromium: the report.html screenshot test renders the replay report headless.
pkgs=(libopencv-dev libclang-dev clang cmake pkg-config chromium)
# Debian's own python3 lacks libpython*.so (the ROS wheels' librcl needs it) and venv support.
[ -e "$libpython" ] || pkgs+=("libpython$pyver-dev")
[ "$has_ensurepip" = 1 ] || pkgs+=("python$pyver-venv")
missing=()
for p in "${pkgs[@]}"; do  # dpkg-query, not `dpkg -s`: a removed package keeping its conffiles is not installed
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# --- ROS: a sourced ROS counts only if its rclpy imports and is not the one in our own venv
# (after `source scripts/env.sh`, ROS_DISTRO is set and python3 is the venv's).
ros=wheels
if [ -n "${ROS_DISTRO:-}" ] &&
   rclpy=$("$PY" -c 'import os, rclpy; print(os.path.realpath(rclpy.__file__))' 2>/dev/null) &&
   [[ $rclpy != "$VENV"/* ]]; then
  ros=sourced
fi

# --- venv: reinstall only when the requirement files (or the ROS choice) change. An existing
# venv without a stamp (e.g. from `make test`) is installed into.
reqs=(training/requirements-test.txt scripts/requirements.txt)
[ $ros = sourced ] || reqs+=(scripts/requirements-ros.txt)
stamp=$VENV/.setup-$(cat "${reqs[@]}" | sha256sum | cut -c1-16)
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
if [ ! -e "$stamp" ]; then
  args=(); for r in "${reqs[@]}"; do args+=(-r "$r"); done
  "$VENV/bin/pip" install -q --disable-pip-version-check "${args[@]}"
  rm -f "$VENV"/.setup-*
  touch "$stamp"
fi
# The wheels link rcl straight to Fast DDS and ship no librmw_implementation.so, which r2r links
# (-lrmw_implementation): a linker script points it at rmw_fastrtps_cpp.
if [ $ros = wheels ] && [ ! -e "$VENV/lib/librmw_implementation.so" ]; then
  echo 'INPUT(-lrmw_fastrtps_cpp)' >"$VENV/lib/librmw_implementation.so"
fi

# --- GPU ONNX Runtime: pip --target keeps it out of the venv's own site-packages (both wheels
# provide the `onnxruntime` module). env.sh points ORT_DYLIB_PATH at its library, which also runs
# the CPU provider, and puts its CUDA/cuDNN libraries on LD_LIBRARY_PATH.
GPU_DIR=$VENV/ort-gpu
if [ "$gpu" = 1 ] && [ ! -e "$GPU_DIR/.ok-1.31.1" ]; then
  rm -rf "$GPU_DIR"
  "$VENV/bin/pip" install -q --disable-pip-version-check --target "$GPU_DIR" "onnxruntime-gpu[cuda,cudnn]==1.31.1"
  touch "$GPU_DIR/.ok-1.31.1"
fi

echo "apt:  ok${missing[*]:+ (installed ${missing[*]})}"
echo "venv: ok ($VENV, Python $pyver)"
if [ $ros = wheels ]; then echo "ROS:  wheels (Jazzy in .venv)"; else echo "ROS:  sourced ($ROS_DISTRO, $rclpy)"; fi
if [ -e "$GPU_DIR/.ok-1.31.1" ]; then
  echo "GPU:  onnxruntime-gpu 1.31.1 (CUDA 13) in $GPU_DIR; needs an NVIDIA driver >= R580 at run time"
fi

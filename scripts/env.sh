# Source me from bash (`source scripts/env.sh`, any cwd), like a ROS setup.bash; run
# scripts/setup.sh first. Puts .venv on PATH, points `ort` (load-dynamic) at the onnxruntime
# wheel's library and, unless a ROS 2 is already sourced (e.g. /opt/ros/jazzy/setup.bash on the
# vehicle), sets up the ROS 2 Jazzy wheels in .venv. Safe to source twice. No `set -e` or `exit`:
# this runs in the caller's shell.

PIPELINE_SEG_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
export PIPELINE_SEG_ROOT
_ps_venv=$PIPELINE_SEG_ROOT/.venv
if [ ! -x "$_ps_venv/bin/python" ]; then
  echo "env.sh: no $_ps_venv; run scripts/setup.sh first" >&2
  unset _ps_venv
  return 1
fi
# Prepend a directory to a colon-separated variable once, so re-sourcing adds no duplicates.
# ${!1:-}: the variable may be unset, and the caller may run `set -u`.
_ps_prepend() { case ":${!1:-}:" in *":$2:"*) ;; *) export "$1=$2${!1:+:${!1}}" ;; esac; }

# A sourced ROS counts only if its rclpy imports and is not the one in our venv (re-sourcing).
_ps_ros=wheels
if [ -n "${ROS_DISTRO:-}" ] &&
   _ps_rclpy=$(python3 -c 'import os, rclpy; print(os.path.realpath(rclpy.__file__))' 2>/dev/null) &&
   [[ $_ps_rclpy != "$_ps_venv"/* ]]; then
  _ps_ros=sourced
fi

# The GPU ONNX Runtime of `scripts/setup.sh --gpu`, when installed: its library also runs the CPU
# provider; the CUDA provider needs the CUDA 13 and cuDNN libraries of the nvidia wheels beside it.
if [ -d "$_ps_venv/ort-gpu/onnxruntime/capi" ]; then
  if [ -z "${ORT_DYLIB_PATH:-}" ]; then
    for _ps_f in "$_ps_venv"/ort-gpu/onnxruntime/capi/libonnxruntime.so.[0-9]*; do
      [ -e "$_ps_f" ] && export ORT_DYLIB_PATH=$_ps_f
    done
  fi
  for _ps_d in "$_ps_venv"/ort-gpu/nvidia/*/lib; do
    [ -d "$_ps_d" ] && _ps_prepend LD_LIBRARY_PATH "$_ps_d"
  done
fi
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
  for _ps_f in "$_ps_venv"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.[0-9]*; do
    [ -e "$_ps_f" ] && export ORT_DYLIB_PATH=$_ps_f
  done
fi

# The wheels' ros_wheels_bootstrapper.pth re-execs every venv python with the wheels' library
# dirs added to LD_LIBRARY_PATH (in random order): redundant with the LD_LIBRARY_PATH set below,
# and wrong next to a sourced ROS. This variable is its "already done" guard.
export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
if [ $_ps_ros = wheels ]; then
  # The wheels' libraries live in <venv>/lib, their vendored dependencies (libssl, tinyxml2, lttng,
  # spdlog... under hashed names) in site-packages/ros_*.libs.
  for _ps_d in "$_ps_venv"/lib/python3*/site-packages/ros_*.libs; do
    [ -d "$_ps_d" ] && _ps_prepend LD_LIBRARY_PATH "$_ps_d"
  done
  _ps_prepend LD_LIBRARY_PATH "$_ps_venv/lib"
  _ps_prepend AMENT_PREFIX_PATH "$_ps_venv"
  export ROS_DISTRO=jazzy RMW_IMPLEMENTATION=rmw_fastrtps_cpp
  # The wheels' librcl needs libpython at run time; the build script links this file (and rpaths
  # its directory) so that binaries need no LD_PRELOAD. Set only in this wheels case.
  PIPELINE_SEG_LIBPYTHON=$("$_ps_venv/bin/python" -c 'import sysconfig as s
print("%s/libpython%s.so" % (s.get_config_var("LIBDIR"), s.get_config_var("LDVERSION")))')
  export PIPELINE_SEG_LIBPYTHON
fi
_ps_prepend PATH "$_ps_venv/bin"

unset -f _ps_prepend
unset _ps_venv _ps_ros _ps_rclpy _ps_f _ps_d

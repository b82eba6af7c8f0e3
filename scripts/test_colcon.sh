#!/usr/bin/env bash
# `make test-colcon`: the README's colcon steps on a fresh clone, then the installed node in a
# clean environment. Not part of `make test` (a colcon build of this crate takes minutes).
#
#  1. colcon (colcon-common-extensions, colcon-cargo, colcon-ros-cargo: the README's pip line)
#     into COLCON_VENV (default .venv-colcon, so the project .venv stays as setup.sh made it),
#     cargo-ament-build via `cargo install` if missing;
#  2. `git clone` of this repository's HEAD (commit first) into a temporary workspace;
#  3. a plain `colcon build` there, after `source scripts/env.sh` (the ROS 2 Jazzy wheels; on a
#     vehicle /opt/ros/jazzy/setup.bash); colcon.pkg adds --release --features ros;
#  4. in a fresh `env -i` shell with only the ROS 2 wheels' environment (env.sh's ROS variables,
#     without ORT_DYLIB_PATH / PIPELINE_SEG_ROOT, cwd outside the checkout) plus
#     `source install/setup.bash`: the installed node (`ros2 launch` when a `ros2` with launch is on
#     PATH, else the installed binary with the installed parameter file) must find ONNX Runtime
#     by the documented search and send a mask for a frame that rclpy publishes;
#  5. where `ros2 launch` is there: the managed node launched namespaced on the compressed topic,
#     taken through configure, activate, deactivate and shutdown by scripts/lifecycle_probe.py.
#
# The cargo build directory of the workspace (build/pipeline_seg) is seeded from this checkout's
# target/release (dependencies only), so only pipeline_seg itself compiles: SEED=0 builds from
# scratch (15+ min on 2 cores). KEEP=1 keeps the workspace. EXTRA_PATH / EXTRA_PYTHONPATH are
# prepended in the clean shell, for a `ros2` with launch installed outside ROS (README, "Getting
# `ros2 launch`"). Exit 0 = mask received.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
COLCON_VENV=${COLCON_VENV:-$ROOT/.venv-colcon}
SEED=${SEED:-1}
KEEP=${KEEP:-0}
WS=$(mktemp -d "${TMPDIR:-/tmp}/pipeline_seg_colcon.XXXXXX")
cleanup() { if [ "$KEEP" = 1 ]; then echo "test-colcon: workspace kept: $WS"; else rm -rf "$WS"; fi; }
trap cleanup EXIT
t0=$SECONDS
step() { echo "test-colcon [$((SECONDS - t0)) s]: $*"; }

[ -x "$ROOT/.venv/bin/python" ] || bash "$ROOT/scripts/setup.sh"
# --- 1. tools, as the README installs them
if [ ! -x "$COLCON_VENV/bin/colcon" ]; then
  step "installing colcon into $COLCON_VENV"
  python3 -m venv "$COLCON_VENV"
  "$COLCON_VENV/bin/pip" install -q --disable-pip-version-check colcon-common-extensions colcon-cargo colcon-ros-cargo
fi
export PATH=$HOME/.cargo/bin:$PATH
command -v cargo-ament-build >/dev/null || cargo install --locked cargo-ament-build

# --- 2. a fresh clone (what is committed, nothing of the working tree)
step "cloning $(git -C "$ROOT" rev-parse --short HEAD) into $WS/src/pipeline_seg"
git clone -q "$ROOT" "$WS/src/pipeline_seg"
if [ "$SEED" = 1 ] && [ -d "$ROOT/target/release/deps" ]; then
  step "seeding $WS/build/pipeline_seg/release from target/release (dependencies only)"
  mkdir -p "$WS/build/pipeline_seg/release"
  for d in deps build .fingerprint; do
    mkdir -p "$WS/build/pipeline_seg/release/$d"
    find "$ROOT/target/release/$d" -mindepth 1 -maxdepth 1 ! -name '*pipeline_seg*' \
      -exec cp -a -t "$WS/build/pipeline_seg/release/$d" {} +
  done
fi

# The ROS 2 environment only: a fresh env -i shell, env.sh's ROS part (as /opt/ros/jazzy/setup.bash
# would give), none of the project's own variables.
clean_shell() {
  env -i HOME="$HOME" USER="${USER:-root}" TERM=dumb LANG=C.UTF-8 PATH="$HOME/.cargo/bin:/usr/local/bin:/usr/bin:/bin" \
    WS="$WS" ROOT="$ROOT" COLCON_VENV="$COLCON_VENV" ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$((97 + RANDOM % 4))}" \
    EXTRA_PATH="${EXTRA_PATH:-}" EXTRA_PYTHONPATH="${EXTRA_PYTHONPATH:-}" \
    bash -c "set -eo pipefail; source \"\$ROOT/scripts/env.sh\"
      [ -z \"\$EXTRA_PATH\" ] || export PATH=\$EXTRA_PATH:\$PATH
      [ -z \"\$EXTRA_PYTHONPATH\" ] || export PYTHONPATH=\$EXTRA_PYTHONPATH\${PYTHONPATH:+:\$PYTHONPATH}
      $1"
}

# --- 3. the README's build
step "colcon build (plain: colcon.pkg adds --release --features ros)"
tb=$SECONDS
clean_shell 'export PATH=$COLCON_VENV/bin:$PATH; cd "$WS" && colcon build --event-handlers console_direct- summary+' \
  >"$WS/build.log" 2>&1 || { tail -40 "$WS/build.log"; echo "test-colcon: colcon build failed" >&2; exit 1; }
build_s=$((SECONDS - tb))
node=$WS/install/pipeline_seg/lib/pipeline_seg/pipeline_seg_node
[ -x "$node" ] || { tail -20 "$WS/build.log"; echo "test-colcon: colcon build installed no $node" >&2; exit 1; }
step "built in ${build_s} s; installed: $(cd "$WS/install/pipeline_seg" && find lib share/pipeline_seg -maxdepth 2 | tr '\n' ' ')"

# --- 4. the installed node, clean environment
step "starting the installed node (ROS 2 environment + install/setup.bash only)"
clean_shell '
unset ORT_DYLIB_PATH PIPELINE_SEG_ROOT PIPELINE_SEG_LIBPYTHON
cd "$WS"
source install/setup.bash
share=$(python3 -c "from ament_index_python.packages import get_package_share_directory as g; print(g(\"pipeline_seg\"))")
export FASTRTPS_DEFAULT_PROFILES_FILE=$share/config/fastdds_large_frames.xml
export ROS_LOG_DIR=$WS/ros_log
set -m   # job control: the background node gets SIGINT like a Ctrl-C (not ignored as in a plain script)
if command -v ros2 >/dev/null && ros2 launch --help >/dev/null 2>&1; then
  echo "node: ros2 launch"
  ros2 launch pipeline_seg pipeline_seg.launch.py image_topic:=/camera/image_raw samples:=2 log_level:=info \
    respawn:=false allow_cpu_fallback:=false >"$WS/node.log" 2>&1 &
else
  echo "node: no ros2 launch here; the installed binary with the installed parameter file"
  install/pipeline_seg/lib/pipeline_seg/pipeline_seg_node --ros-args --params-file "$share/config/pipeline_seg.yaml" \
    -p samples:=2 -r "~/image:=/camera/image_raw" >"$WS/node.log" 2>&1 &
fi
pid=$!
rc=0
python3 "$ROOT/scripts/colcon_probe.py" "$WS/src/pipeline_seg/tests/data/frames/val/image/00000.jpg" || rc=$?
kill -INT $pid 2>/dev/null || true
node_rc=0; wait $pid || node_rc=$?
echo "--- node log (exit code $node_rc after SIGINT)"; cat "$WS/node.log"
[ $node_rc = 0 ] || { echo "test-colcon: the node did not exit cleanly on SIGINT" >&2; rc=1; }
grep -q "ONNX Runtime .*(from " "$WS/node.log" || { echo "test-colcon: the node did not say which ONNX Runtime it loaded" >&2; rc=1; }
exit $rc
'

# --- 5. with ros2 launch: the managed node, namespaced, on the compressed topic, driven through
# its lifecycle services (scripts/lifecycle_probe.py)
managed=skipped
if clean_shell 'command -v ros2 >/dev/null && ros2 launch --help >/dev/null 2>&1'; then
  step "managed node through ros2 launch (managed:=true namespace:=rov1 input_transport:=compressed)"
  clean_shell '
unset ORT_DYLIB_PATH PIPELINE_SEG_ROOT PIPELINE_SEG_LIBPYTHON
cd "$WS"
source install/setup.bash
export ROS_LOG_DIR=$WS/ros_log
set -m
ros2 launch pipeline_seg pipeline_seg.launch.py managed:=true namespace:=rov1 input_transport:=compressed \
  image_topic:=/camera/image_raw samples:=4 >"$WS/managed.log" 2>&1 &
pid=$!
rc=0
python3 "$ROOT/scripts/lifecycle_probe.py" "$WS/src/pipeline_seg/tests/data/frames/val/image/00000.jpg" || rc=$?
node_rc=0; wait $pid || node_rc=$?
echo "--- managed node log (launch exit code $node_rc)"; cat "$WS/managed.log"
grep -q "process has finished cleanly" "$WS/managed.log" || { echo "test-colcon: the managed node did not exit cleanly after shutdown" >&2; rc=1; }
exit $rc
'
  managed=passed
fi
step "passed: fresh clone built with colcon in ${build_s} s, installed node found ONNX Runtime and sent a mask; managed node through ros2 launch: $managed"

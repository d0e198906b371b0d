#!/usr/bin/env bash
# Build the stand-in vision_msgs interface package (interfaces/vision_msgs) with
# rosidl and install it into the client venv, which holds the ROS 2 PyPI wheels.
#
# Skips the build when `from vision_msgs.msg import Detection2DArray` already
# works in that venv (the real ros-<distro>-vision-msgs, or an earlier build).
#
#   VENV=/path/to/venv scripts/build_vision_msgs.sh   # default: <repo>/.venv
#   FORCE=1 scripts/build_vision_msgs.sh              # rebuild even if importable
#
# Needs, in the venv: ros-<distro>-rclpy, -std-msgs, -geometry-msgs,
# -ament-cmake, -ament-package, -ament-cmake-include-directories,
# -ament-cmake-ros-core, -rosidl-default-generators, -rosidl-core-generators,
# -rosidl-default-runtime and catkin_pkg; on the machine: cmake >= 3.20 and a
# C/C++ compiler.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$REPO/.venv}"
SRC="$REPO/interfaces/vision_msgs"
BUILD="$REPO/.cache/build/vision_msgs"
FORCE="${FORCE:-0}"

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "build_vision_msgs: no Python at $VENV/bin/python (set VENV=...)" >&2
  exit 1
fi
VENV="$(cd "$VENV" && pwd)"
PY="$VENV/bin/python"

# Environment of the ROS prefix the wheels installed into the venv.
export VIRTUAL_ENV="$VENV"
export PATH="$VENV/bin:$PATH"
export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"

importable() {
  "$PY" -c "from vision_msgs.msg import Detection2DArray" >/dev/null 2>&1
}

if [[ "$FORCE" != "1" ]] && importable; then
  echo "build_vision_msgs: vision_msgs already importable in $VENV; nothing to do"
  exit 0
fi

for tool in cmake c++ cc; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "build_vision_msgs: '$tool' not found (need cmake and a C/C++ compiler)" >&2
    exit 1
  fi
done
if [[ ! -f "$VENV/share/rosidl_default_generators/cmake/rosidl_default_generatorsConfig.cmake" ]]; then
  echo "build_vision_msgs: rosidl_default_generators is not installed in $VENV" >&2
  echo "  pip install ros-<distro>-rosidl-default-generators ros-<distro>-ament-cmake ... catkin_pkg" >&2
  exit 1
fi

# A build tree configured for another venv or source path cannot be reused.
if [[ -f "$BUILD/CMakeCache.txt" ]]; then
  if ! grep -qxF "CMAKE_INSTALL_PREFIX:PATH=$VENV" "$BUILD/CMakeCache.txt" \
     || ! grep -qxF "CMAKE_HOME_DIRECTORY:INTERNAL=$SRC" "$BUILD/CMakeCache.txt"; then
    echo "build_vision_msgs: removing stale build tree $BUILD"
    rm -rf "$BUILD"
  fi
fi
mkdir -p "$BUILD"

JOBS="$(nproc 2>/dev/null || echo 2)"
start=$SECONDS
echo "build_vision_msgs: building $SRC into $VENV (build tree $BUILD)"
cmake -S "$SRC" -B "$BUILD" \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$VENV" \
  -DPython3_EXECUTABLE="$PY" \
  -DPython3_FIND_VIRTUALENV=FIRST \
  -DBUILD_TESTING=OFF
cmake --build "$BUILD" --parallel "$JOBS"
cmake --install "$BUILD"

if ! importable; then
  echo "build_vision_msgs: installed, but 'from vision_msgs.msg import Detection2DArray' still fails:" >&2
  "$PY" -c "from vision_msgs.msg import Detection2DArray" >&2 || true
  exit 1
fi
echo "build_vision_msgs: done in $((SECONDS - start)) s; vision_msgs importable in $VENV"

#!/usr/bin/env bash
# Build the stand-in interface packages under interfaces/ (vision_msgs,
# isaac_ros_tensor_list_interfaces) with rosidl and install them into the client
# venv, which holds the ROS 2 PyPI wheels.
#
# A package is skipped when its first message already imports in that venv (the
# distro's real package, or an earlier build).
#
#   scripts/build_interfaces.sh [PACKAGE...]           # default: every package in interfaces/
#   VENV=/path/to/venv scripts/build_interfaces.sh      # default: <repo>/.venv
#   FORCE=1 scripts/build_interfaces.sh vision_msgs     # rebuild even if importable
#
# Needs, in the venv: ros-<distro>-rclpy, -std-msgs, -geometry-msgs,
# -ament-cmake, -ament-package, -ament-cmake-include-directories,
# -ament-cmake-ros-core, -rosidl-default-generators, -rosidl-core-generators,
# -rosidl-default-runtime and catkin_pkg; on the machine: cmake >= 3.20 and a
# C/C++ compiler.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$REPO/.venv}"
FORCE="${FORCE:-0}"

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "build_interfaces: no Python at $VENV/bin/python (set VENV=...)" >&2
  exit 1
fi
VENV="$(cd "$VENV" && pwd -P)"  # the real path (a symlinked venv): installed files record it
PY="$VENV/bin/python"

# Environment of the ROS prefix the wheels installed into the venv.
export VIRTUAL_ENV="$VENV"
export PATH="$VENV/bin:$PATH"
export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"

if [[ $# -gt 0 ]]; then
  PACKAGES=("$@")
else
  PACKAGES=()
  for dir in "$REPO"/interfaces/*/; do
    [[ -f "$dir/package.xml" ]] && PACKAGES+=("$(basename "$dir")")
  done
fi

# `from <pkg>.msg import <first message>`: the check that the package is usable.
import_line() {
  local src=$1 first
  first="$(cd "$src/msg" && ls -- *.msg | head -n 1)"
  echo "from $(basename "$src").msg import ${first%.msg}"
}

check_tools() {
  for tool in cmake c++ cc; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      echo "build_interfaces: '$tool' not found (need cmake and a C/C++ compiler)" >&2
      exit 1
    fi
  done
  if [[ ! -f "$VENV/share/rosidl_default_generators/cmake/rosidl_default_generatorsConfig.cmake" ]]; then
    echo "build_interfaces: rosidl_default_generators is not installed in $VENV" >&2
    echo "  pip install ros-<distro>-rosidl-default-generators ros-<distro>-ament-cmake ... catkin_pkg" >&2
    exit 1
  fi
}

build_one() {
  local pkg=$1 src="$REPO/interfaces/$1" build="$REPO/.cache/build/$1" check start
  if [[ ! -f "$src/package.xml" ]]; then
    echo "build_interfaces: no package $pkg in $REPO/interfaces" >&2
    exit 1
  fi
  check="$(import_line "$src")"
  if [[ "$FORCE" != "1" ]] && "$PY" -c "$check" >/dev/null 2>&1; then
    echo "build_interfaces: $pkg already importable in $VENV; nothing to do"
    return
  fi
  check_tools
  # A build tree configured for another venv or source path cannot be reused.
  if [[ -f "$build/CMakeCache.txt" ]]; then
    if ! grep -qxF "CMAKE_INSTALL_PREFIX:PATH=$VENV" "$build/CMakeCache.txt" \
       || ! grep -qxF "CMAKE_HOME_DIRECTORY:INTERNAL=$src" "$build/CMakeCache.txt"; then
      echo "build_interfaces: removing stale build tree $build"
      rm -rf "$build"
    fi
  fi
  mkdir -p "$build"
  start=$SECONDS
  echo "build_interfaces: building $src into $VENV (build tree $build)"
  cmake -S "$src" -B "$build" \
    -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$VENV" \
    -DPython3_EXECUTABLE="$PY" \
    -DPython3_FIND_VIRTUALENV=FIRST \
    -DBUILD_TESTING=OFF
  cmake --build "$build" --parallel "$(nproc 2>/dev/null || echo 2)"
  cmake --install "$build"
  if ! "$PY" -c "$check" >/dev/null 2>&1; then
    echo "build_interfaces: installed $pkg, but '$check' still fails:" >&2
    "$PY" -c "$check" >&2 || true
    exit 1
  fi
  echo "build_interfaces: $pkg done in $((SECONDS - start)) s; importable in $VENV"
}

for pkg in "${PACKAGES[@]}"; do
  build_one "$pkg"
done

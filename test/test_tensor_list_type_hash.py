"""The stand-in isaac_ros_tensor_list_interfaces has upstream's RIHS01 type hashes.

Upstream publishes no hash (Isaac ROS ships no generated type descriptions we could read), so
the expected hashes are computed here with rosidl's own code (rosidl_adapter: .msg -> .idl,
rosidl_generator_type_description: .idl -> RIHS01) from upstream's field definitions, copied
below from NVIDIA-ISAAC-ROS/isaac_ros_common, isaac_ros_tensor_list_interfaces/msg/ at
d7164701715edfd4adbec87355461069bc8071d6 (release 4.4; the messages last changed in
3020c40da75f0f32a26e479551e00514c4a3f6c2). Comments are left out: they do not enter the hash.
The hashes are pinned too, so a change in rosidl's hashing would show.
"""
import json
import os
import sys
from pathlib import Path

import pytest

PACKAGE = "isaac_ros_tensor_list_interfaces"
UPSTREAM_MSGS = {
    "TensorShape": "uint8 rank\nuint32[] dims\n",
    "Tensor": ("string name\nTensorShape shape\nint32 data_type\nuint64[] strides\n"
               "uint8[] data\n"),
    "TensorList": "std_msgs/Header header\nTensor[] tensors\n",
}
UPSTREAM_HASHES = {
    "TensorShape": "RIHS01_3e0d2f347cd48e20550029e8754bb509be05e11d073ed43888fded7fb686cd60",
    "Tensor": "RIHS01_4f84320fd44d2c4f4bfa5562a6c47c4403be8bdb7d25fe5df37f4e2786fcd66d",
    "TensorList": "RIHS01_498b4418eed651d1eb843a154ac3dd6b7612b3fa851e1bd930f9f0c2e862cf6c",
}


def _prefixes():
    paths = os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) + [sys.prefix]
    return [Path(p) for p in paths if p]


def _share(package):
    for prefix in _prefixes():
        if (prefix / "share" / package / "package.xml").is_file():
            return prefix / "share" / package
    pytest.skip(f"{package} is not installed (scripts/build_interfaces.sh)")


def upstream_hashes(workdir: Path) -> dict[str, str]:
    """RIHS01 hash of each upstream message, computed by rosidl from UPSTREAM_MSGS."""
    adapter = pytest.importorskip("rosidl_adapter.msg", reason="rosidl_adapter not installed")
    generator = pytest.importorskip("rosidl_generator_type_description",
                                    reason="rosidl_generator_type_description not installed")
    source, out = workdir / "src", workdir / "out"
    (source / "msg").mkdir(parents=True)
    idl_tuples = []
    for name, text in UPSTREAM_MSGS.items():
        (source / "msg" / f"{name}.msg").write_text(text)
        idl = adapter.convert_msg_to_idl(source, PACKAGE, Path("msg") / f"{name}.msg",
                                         source / "msg")
        idl_tuples.append(f"{source}:{idl.relative_to(source)}")
    arguments = workdir / "args.json"
    arguments.write_text(json.dumps({
        "package_name": PACKAGE, "output_dir": str(out), "idl_tuples": idl_tuples,
        # The dependencies' generated descriptions (type hashes) as installed.
        "include_paths": [f"{dep}:{_share(dep)}" for dep in ("std_msgs", "builtin_interfaces")],
    }))
    generator.generate_type_hash(str(arguments))
    return {name: _own_hash(out / "msg" / f"{name}.json", name) for name in UPSTREAM_MSGS}


def _own_hash(json_path: Path, name: str) -> str:
    hashes = json.loads(json_path.read_text())["type_hashes"]
    return next(h["hash_string"] for h in hashes if h["type_name"] == f"{PACKAGE}/msg/{name}")


def test_rosidl_computes_the_pinned_upstream_hashes(tmp_path):
    assert upstream_hashes(tmp_path) == UPSTREAM_HASHES


def test_stand_in_differs_from_upstream_in_comments_only():
    here = Path(__file__).resolve().parents[1] / "interfaces" / PACKAGE / "msg"
    for name, text in UPSTREAM_MSGS.items():
        lines = [line.split("#")[0].strip() for line in (here / f"{name}.msg").read_text()
                 .splitlines()]
        assert [line for line in lines if line] == text.splitlines(), name


def test_installed_descriptions_carry_the_upstream_hashes():
    share = _share(PACKAGE)
    for name, expected in UPSTREAM_HASHES.items():
        assert _own_hash(share / "msg" / f"{name}.json", name) == expected, name


def test_runtime_type_hash_is_upstreams():
    """What rclpy announces over DDS for a TensorList endpoint (the hash peers compare)."""
    msgs = pytest.importorskip(f"{PACKAGE}.msg", reason=f"{PACKAGE} not built")
    import rclpy
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = rclpy.create_node("type_hash_probe", context=context)
        node.create_publisher(msgs.TensorList, "tensor_hash_probe", 1)
        (info,) = node.get_publishers_info_by_topic("/tensor_hash_probe")
        assert info.topic_type == f"{PACKAGE}/msg/TensorList"
        assert str(info.topic_type_hash) == UPSTREAM_HASHES["TensorList"]
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)

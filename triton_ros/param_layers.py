"""Parameter layering for launch files, decided here instead of by ``--params-file`` order.

Why by hand: rclpy applies parameter-file keys in order of *first appearance* across every
``--params-file`` of a process (a ``/**`` key first seen in file 1 is applied before a
``/robot1/triton_detect`` key first seen in file 2, whatever file wins "on paper"), and launch_ros
keys a parameter dict by the node's full name. Passing [user file, preset, dict] therefore lets a
wildcard preset beat explicit arguments whenever the user file is keyed by node name (issue 9).

Contract: :func:`layer` reads the files (lowest precedence first), keeps the parameters that
apply to the node ``node_fqn`` (keys as rcl matches them: ``/**``, ``/**/name``, ``/ns/*``,
exact names, nested ``ns: name:`` keys, names without a leading ``/``), applies inside each file
wildcard keys before exact ones (more specific wins), then the files in order, then
``overrides`` — and returns one flat dict. A launch file passes that dict as the node's only
parameter entry, so precedence never depends on rclpy's ordering. ROS-free: PyYAML only.
"""
import os
import re
from typing import Any

PARAMS_KEY = "ros__parameters"


class ParamFileError(ValueError):
    """A parameter file is missing or is not a ROS 2 parameter file."""


def _flatten(params: dict, prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1} (ROS parameter namespaces)."""
    flat = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _sections(data: dict, prefix: str = "") -> list[tuple[str, dict]]:
    """(node key, flat parameters) of a loaded parameter file, in file order."""
    found = []
    for key, value in data.items():
        if not isinstance(value, dict):
            raise ParamFileError(f"{prefix}{key}: expected a mapping with '{PARAMS_KEY}'")
        if key == PARAMS_KEY:
            found.append((prefix.rstrip("/") or "/", _flatten(value)))
        else:
            found.extend(_sections(value, f"{prefix}{str(key).strip('/')}/"))
    return found


def _pattern(key: str) -> re.Pattern:
    """rcl's node-name wildcards: ``**`` = any number of tokens, ``*`` = one token."""
    tokens = [t for t in key.strip("/").split("/") if t]
    regex = ""
    for token in tokens:
        if token == "**":
            regex += r"(/[^/]+)*"
        else:
            regex += "/" + re.escape(token).replace(r"\*", "[^/]+")
    return re.compile(f"^{regex}$")


def _specificity(key: str) -> int:
    """0 for keys with wildcards, 1 for exact names: wildcards are applied first."""
    return 0 if "*" in key else 1


def node_parameters(data: dict | None, node_fqn: str) -> dict[str, Any]:
    """The parameters a loaded parameter file gives the node ``node_fqn`` (e.g. ``/r1/det``)."""
    if not data:
        return {}
    if not isinstance(data, dict):
        raise ParamFileError("expected a mapping of node names")
    matching = [(key, params) for key, params in _sections(data)
                if _pattern(key).match(node_fqn)]
    merged: dict[str, Any] = {}
    for _, params in sorted(matching, key=lambda item: _specificity(item[0])):  # stable
        merged.update(params)
    return merged


def load(path: str) -> dict:
    """Load a parameter file (ParamFileError when missing or not YAML)."""
    import yaml
    if not os.path.isfile(path):
        raise ParamFileError(f"parameter file '{path}' does not exist")
    try:
        with open(path, encoding="utf-8") as stream:
            return yaml.safe_load(stream) or {}
    except yaml.YAMLError as exc:
        raise ParamFileError(f"parameter file '{path}' is not valid YAML: {exc}") from None


def layer(files: list[str], node_fqn: str, overrides: dict | None = None) -> dict[str, Any]:
    """Parameters of ``node_fqn`` from ``files`` (later wins), then ``overrides`` on top."""
    merged: dict[str, Any] = {}
    for path in files:
        try:
            merged.update(node_parameters(load(path), node_fqn))
        except ParamFileError as exc:
            raise ParamFileError(str(exc) if path in str(exc) else f"{path}: {exc}") from None
    merged.update(overrides or {})
    return merged


def full_name(namespace: str, name: str) -> str:
    """'/robot1/' + 'triton_detect' -> '/robot1/triton_detect' (namespace made absolute)."""
    namespace = "/" + namespace.strip("/") if namespace.strip("/") else ""
    return f"{namespace}/{name}"

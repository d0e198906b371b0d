"""Triton python-backend model: one step of an encoded-image ensemble (pre- or post-processing).

Shared (by symlink) by every ``*_encoded_pre`` / ``*_encoded_post`` model directory; the step
and its settings are in that directory's config.pbtxt (``step``: preprocess | postprocess). The
code is triton_ros's own (triton_ros/ensemble_steps.py, the same pre-processing and decoders as
the client), so the server's Python must import the ``triton_ros`` package: tools/local_server.py
puts it on the stub's PYTHONPATH; elsewhere see docs/encoded_path.md ("Deploying").
"""
import os
import sys

# The python-backend stub's embedded interpreter does not read PYTHONPATH itself (seen with
# tritonserver 2.51: the variable is in the stub's environment, not on sys.path): honour it here.
for _entry in reversed(os.environ.get("PYTHONPATH", "").split(os.pathsep)):
    if _entry and _entry not in sys.path:
        sys.path.insert(0, _entry)

try:
    from triton_ros.python_backend import StepModel
except ImportError as exc:
    raise ImportError(
        f"{exc}. This model runs code of the triton_ros package: make it importable by the "
        "server's Python (numpy, OpenCV), e.g. PYTHONPATH=<directory holding triton_ros/> in the "
        "tritonserver environment, or `pip install --no-deps triton_ros` into it; "
        "triton_ros.tools.local_server does the former") from exc


class TritonPythonModel(StepModel):
    """See triton_ros.python_backend.StepModel."""

"""Compatibility module: the client now lives in :mod:`triton_ros.client` (same names)."""
from triton_ros.client.channel import infer_inputs  # noqa: F401
from triton_ros.client.client import TritonClient  # noqa: F401
from triton_ros.client.errors import (UNAVAILABLE_KINDS, TritonError,  # noqa: F401
                                      classify_error)
from triton_ros.endpoint import (COMPRESSIONS, PROTOCOLS, SHARED_MEMORY_MODES,  # noqa: F401
                                 Endpoint, check_url, is_loopback_url, url_host)

"""Unit test for triton_ros.detector.payload_bytes (what last_request_bytes reports)."""
import numpy as np

from triton_ros.detector import payload_bytes


def test_tensor_and_bytes_payloads():
    files = np.empty((2, 1), np.object_)
    files[:, 0] = [b"x" * 10, b""]
    tensor = np.zeros((1, 3, 4, 4), np.float32)
    # BYTES: each element's length plus Triton's 4-byte length prefix; tensors: nbytes.
    assert payload_bytes([files]) == 10 + 4 + 0 + 4
    assert payload_bytes([files, tensor]) == 18 + 192
    assert payload_bytes([]) == 0

"""TritonClient's transport options that need no server: validation, loopback, repr."""
import pytest

from triton_ros.client import TritonClient, is_loopback_url, url_host


@pytest.mark.parametrize("url, host, loopback", [
    ("127.0.0.1:8001", "127.0.0.1", True),
    ("127.3.4.5:8001", "127.3.4.5", True),
    ("localhost:8000", "localhost", True),
    ("LOCALHOST:8000", "LOCALHOST", True),
    ("[::1]:8001", "::1", True),
    ("::1", "::1", True),
    ("10.0.0.7:8001", "10.0.0.7", False),
    ("gpu-server:8001", "gpu-server", False),
    ("[fe80::1]:8001", "fe80::1", False),
    ("128.0.0.1:8001", "128.0.0.1", False),
])
def test_loopback_detection(url, host, loopback):
    assert url_host(url) == host
    assert is_loopback_url(url) is loopback


def test_auto_shared_memory_follows_the_host():
    assert TritonClient("127.0.0.1:8001", "m", shared_memory="auto")._shm_enabled
    assert not TritonClient("gpu-server:8001", "m", shared_memory="auto")._shm_enabled
    assert TritonClient("gpu-server:8001", "m", shared_memory="on")._shm_enabled
    assert not TritonClient("127.0.0.1:8001", "m")._shm_enabled


@pytest.mark.parametrize("kwargs, message", [
    ({"protocol": "udp"}, "protocol"),
    ({"compression": "zstd"}, "compression"),
    ({"shared_memory": "yes"}, "shared_memory"),
    ({"ssl": True, "private_key": "/k"}, "go together"),
    ({"root_certificates": "/etc/hostname"}, "ssl is false"),
    ({"ssl": True, "root_certificates": "/nonexistent/ca.pem"}, "not found"),
])
def test_bad_options_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TritonClient("127.0.0.1:8001", "m", **kwargs)


def test_repr_shows_header_names_not_values():
    client = TritonClient("127.0.0.1:8000", "m", "http",
                          headers={"Authorization": "Bearer hunter2"},
                          compression="gzip", shared_memory="auto")
    for text in (repr(client), str(client), repr(client._headers)):
        assert "hunter2" not in text
    assert "authorization" in repr(client) and "gzip" in repr(client)

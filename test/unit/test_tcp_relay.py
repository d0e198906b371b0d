"""Unit tests for triton_ros.tools.tcp_relay with a real echo server on 127.0.0.1."""
import socket
import threading
import time

from triton_ros.tools.tcp_relay import TcpRelay


def _echo_server():
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data + data)  # twice as much back: directions differ

    threading.Thread(target=serve, daemon=True).start()
    return listener


def _roundtrip(url, payload):
    host, port = url.rsplit(":", 1)
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(payload)
        got = b""
        while len(got) < 2 * len(payload):
            got += sock.recv(65536)
    return got


def test_counts_each_direction():
    listener = _echo_server()
    with TcpRelay(f"127.0.0.1:{listener.getsockname()[1]}") as relay:
        assert _roundtrip(relay.url, b"x" * 1000) == b"x" * 2000
        deadline = time.monotonic() + 5
        while relay.counts() != (1000, 2000) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert relay.counts() == (1000, 2000)
        relay.reset()
        assert relay.counts() == (0, 0)
    listener.close()


def test_rate_limit_slows_a_transfer():
    listener = _echo_server()
    payload = b"y" * 250_000  # 2 Mbit up, 4 Mbit down
    with TcpRelay(f"127.0.0.1:{listener.getsockname()[1]}", rate_mbit=20) as relay:
        start = time.monotonic()
        assert _roundtrip(relay.url, payload) == payload * 2
        elapsed = time.monotonic() - start
    listener.close()
    # 4 Mbit down at 20 Mbit/s takes >= 0.2 s less one burst of credit; a lower bound only
    # (a loaded machine may take longer, never shorter).
    assert elapsed >= 0.15

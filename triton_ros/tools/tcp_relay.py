"""A TCP relay on 127.0.0.1 that counts the bytes each way, optionally at a limited rate.

Put it between a client and a Triton server to see what a request costs on the wire (headers,
framing and all: what a robot's link would carry), or to emulate a slow link for the bench::

    relay = TcpRelay("127.0.0.1:8001", rate_mbit=100)   # listens on relay.url
    ...  # client talks to relay.url
    relay.counts()        # (bytes client->server, bytes server->client)
    relay.close()

Written by hand (stdlib sockets, a thread per direction per connection) because no library we
ship relays and counts; it is a test/bench tool, not a proxy for production.

The rate limit is a token bucket per direction over all connections together (like one shared
link each way), ``rate_mbit`` megabits (10^6 bits) per second; 0 = unlimited. It delays sends; it
does not emulate latency or loss. Command line: ``python -m triton_ros.tools.tcp_relay UPSTREAM
[--port P] [--rate-mbit R]`` prints the counts on Ctrl-C.
"""
import argparse
import socket
import threading
import time

CHUNK = 64 * 1024


class _Bucket:
    """A token bucket: ``take(n)`` blocks until ``n`` bytes fit the rate (burst ``CHUNK``)."""

    def __init__(self, rate_mbit: float):
        self.rate = rate_mbit * 1e6 / 8  # bytes per second
        self.lock = threading.Lock()
        self.next_free = time.monotonic()

    def take(self, nbytes: int) -> None:
        if self.rate <= 0:
            return
        with self.lock:
            now = time.monotonic()
            start = max(now - CHUNK / self.rate, self.next_free)  # at most one chunk of credit
            self.next_free = start + nbytes / self.rate
            wait = self.next_free - now
        if wait > 0:
            time.sleep(wait)


class TcpRelay:
    """Listens on ``127.0.0.1:port`` (0: a free port), relays every connection to ``upstream``
    (``host:port``), counts bytes per direction; see the module docstring."""

    def __init__(self, upstream: str, port: int = 0, rate_mbit: float = 0.0):
        host, upstream_port = upstream.rsplit(":", 1)
        self.upstream = (host, int(upstream_port))
        self._listener = socket.create_server(("127.0.0.1", port))
        self.port = self._listener.getsockname()[1]
        self.url = f"127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._up = self._down = 0
        self._buckets = (_Bucket(rate_mbit), _Bucket(rate_mbit))
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, name="tcp-relay-accept", daemon=True).start()

    def counts(self) -> tuple[int, int]:
        """(bytes client -> server, bytes server -> client) since start or :meth:`reset`."""
        with self._lock:
            return self._up, self._down

    def reset(self) -> None:
        with self._lock:
            self._up = self._down = 0

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
                server = socket.create_connection(self.upstream)
            except OSError:
                if self._closed:
                    return
                try:
                    client.close()
                except (OSError, UnboundLocalError):
                    pass
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets += [client, server]
            for src, dst, up in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pump, args=(src, dst, up), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        bucket = self._buckets[0 if up else 1]
        try:
            while True:
                data = src.recv(CHUNK)
                if not data:
                    break
                bucket.take(len(data))
                dst.sendall(data)
                with self._lock:
                    if up:
                        self._up += len(data)
                    else:
                        self._down += len(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):  # one side gone: end the pair (the peer sees the close)
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            try:
                sock.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("upstream", help="host:port of the server")
    parser.add_argument("--port", type=int, default=0, help="listen port on 127.0.0.1")
    parser.add_argument("--rate-mbit", type=float, default=0.0, help="per direction; 0 = off")
    args = parser.parse_args(argv)
    relay = TcpRelay(args.upstream, args.port, args.rate_mbit)
    print(f"relaying {relay.url} -> {args.upstream}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        up, down = relay.counts()
        print(f"bytes up {up}, down {down}")
        relay.close()


if __name__ == "__main__":
    main()

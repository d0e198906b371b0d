"""One description of a connection to a Triton server, parsed and validated once.

No ROS here. An :class:`Endpoint` holds everything a node needs to reach its server, whatever the
request kind (stateless detection requests or a per-robot sequence):

- ``url``: ``host:port`` without a scheme (a node's ``server_url`` may list several servers:
  :func:`endpoints_from_params` gives one Endpoint each, for a
  :class:`~triton_ros.client.pool.ServerPool`); ``protocol``: ``grpc`` or ``http``;
- ``model_version`` (empty = the server's latest), ``timeout_s`` per request (seconds),
  ``server_wait_timeout_s`` (how long start-up waits for the model, seconds);
- TLS: ``ssl`` with optional PEM paths ``root_certificates`` (CA to trust), ``private_key`` +
  ``certificate_chain`` (client certificate, mutual TLS); tritonserver serves TLS on gRPC only,
  HTTPS means a TLS-terminating proxy;
- ``headers``: sent with every request (e.g. :func:`triton_ros.credentials.auth_headers`);
  their values never appear in repr/str/logs;
- ``compression``: ``""``, ``gzip`` or ``deflate``; ``shared_memory``: ``off``/``on``/``auto``
  (stateless requests only; sequence requests carry their small tensors in-band);
- ``reconnect_initial_s`` / ``reconnect_max_s``: the reconnect backoff (first and largest delay,
  seconds), also the cap on gRPC's own channel backoff;
- ``routing_header``: name of a header whose value is a sequence's correlation id, sent with every
  request of that sequence (a gRPC stream carries it at stream start) so that a load balancer
  hashing on it keeps a sequence on one server; empty = none; stateless requests never carry it;
- ``sequence_transport``: ``stream`` (one gRPC bidirectional stream per sequence) or ``unary``
  (one request per step); HTTP is always unary.
"""
import ipaddress
import os
from dataclasses import dataclass, field

from triton_ros.credentials import SecretHeaders, auth_headers, check_headers

PROTOCOLS = ("grpc", "http")
COMPRESSIONS = ("", "gzip", "deflate")
SHARED_MEMORY_MODES = ("off", "on", "auto")
SEQUENCE_TRANSPORTS = ("stream", "unary")
DEFAULT_ROUTING_HEADER = "x-triton-sequence-id"

#: RFC 2606/6761 names used as placeholders (e.g. in the remote_server preset)
_PLACEHOLDER_SUFFIXES = (".example", ".invalid", ".test", "example.com", "example.org",
                         "example.net", ".example.internal")


def url_host(url: str) -> str:
    """The host part of ``host:port`` / ``[v6]:port`` / ``host``."""
    if url.startswith("["):
        return url[1:url.find("]")] if "]" in url else url[1:]
    if url.count(":") > 1:  # bare IPv6 address
        return url
    return url.rsplit(":", 1)[0] if ":" in url else url


def check_url(url: str, protocol: str = "grpc") -> None:
    """Raise ValueError unless ``url`` is ``host:port`` (no scheme) with a real host and port."""
    hint = "gRPC 8001, HTTP 8000"
    if "://" in url:
        scheme = url.split("://", 1)[0]
        raise ValueError(f"server_url {url!r}: give host:port without a scheme ({scheme}://); "
                         f"the protocol is set by protocol:=grpc|http")
    host = url_host(url)
    port = url[len(host) + (2 if url.startswith("[") else 0):].lstrip(":") if ":" in url else ""
    if not host or not port:
        raise ValueError(f"server_url {url!r}: expected host:port ({hint})")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"server_url {url!r}: port {port!r} is not a number in 1..65535")
    if host.lower().endswith(_PLACEHOLDER_SUFFIXES):
        raise ValueError(f"server_url {url!r}: {host} is a placeholder host (a preset's example); "
                         f"set server_url:=<your Triton host>:<port>")


def split_urls(value) -> list[str]:
    """The server list of a ``server_url`` value: one ``host:port``, several separated by commas
    (``"gpu1:8001, gpu2:8001"``), or a list of them. Raises ValueError for an empty list or a
    server named twice (each url is checked by :class:`Endpoint`)."""
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    urls = [str(item).strip() for item in items if str(item).strip()]
    if not urls:
        raise ValueError(f"server_url {value!r}: give host:port (or several, comma-separated)")
    if len(set(urls)) != len(urls):
        raise ValueError(f"server_url {value!r} names a server twice")
    return urls


def is_loopback_url(url: str) -> bool:
    """Whether ``url``'s host is ``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    host = url_host(url).lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Endpoint:
    """A validated connection description (raises ValueError naming the bad setting)."""
    url: str
    protocol: str = "grpc"
    model_version: str = ""
    timeout_s: float = 5.0
    server_wait_timeout_s: float = 30.0
    ssl: bool = False
    root_certificates: str = ""
    private_key: str = ""
    certificate_chain: str = ""
    headers: SecretHeaders = field(default_factory=SecretHeaders)
    compression: str = ""
    shared_memory: str = "off"
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 2.0
    routing_header: str = ""
    sequence_transport: str = "stream"

    def __post_init__(self):
        for name, value, choices in (("protocol", self.protocol, PROTOCOLS),
                                     ("compression", self.compression, COMPRESSIONS),
                                     ("shared_memory", self.shared_memory, SHARED_MEMORY_MODES),
                                     ("sequence_transport", self.sequence_transport,
                                      SEQUENCE_TRANSPORTS)):
            if value not in choices:
                raise ValueError(f"{name} {value!r} not in {list(choices)}")
        check_url(self.url, self.protocol)
        headers = SecretHeaders({str(k).lower(): str(v) for k, v in (self.headers or {}).items()})
        check_headers(headers)
        object.__setattr__(self, "headers", headers)
        if self.routing_header:
            routing = self.routing_header.lower()
            check_headers({routing: "0"})
            if routing in headers:
                raise ValueError(f"routing_header {routing!r} is also an auth header")
            object.__setattr__(self, "routing_header", routing)
        if bool(self.private_key) != bool(self.certificate_chain):
            raise ValueError("private_key and certificate_chain go together (client certificate)")
        for what, path in (("root_certificates", self.root_certificates),
                           ("private_key", self.private_key),
                           ("certificate_chain", self.certificate_chain)):
            if path and not self.ssl:
                raise ValueError(f"{what} given but ssl is false")
            if path and not os.path.isfile(path):
                raise ValueError(f"{what} file not found: {path}")
        if not 0 < self.timeout_s:
            raise ValueError(f"request timeout {self.timeout_s} s must be > 0")
        if not 0 < self.reconnect_initial_s <= self.reconnect_max_s:
            raise ValueError(f"need 0 < reconnect_initial_s ({self.reconnect_initial_s}) <= "
                             f"reconnect_max_s ({self.reconnect_max_s})")

    @property
    def address(self) -> str:
        """``protocol://host:port`` (for messages)."""
        return f"{self.protocol}://{self.url}"

    @property
    def uses_stream(self) -> bool:
        """Whether sequences go over a gRPC bidirectional stream (else unary requests)."""
        return self.protocol == "grpc" and self.sequence_transport == "stream"

    @property
    def shared_memory_enabled(self) -> bool:
        """``on``, or ``auto`` with a loopback server."""
        return self.shared_memory == "on" or (self.shared_memory == "auto"
                                              and is_loopback_url(self.url))

    def grpc_backoff_ms(self) -> tuple[int, int]:
        """(initial, max) gRPC channel reconnect backoff in ms: gRPC's default grows toward two
        minutes, so it is capped for a channel to find a restarted server quickly."""
        max_ms = max(10, int(self.reconnect_max_s * 1000))
        return min(max(10, int(self.reconnect_initial_s * 1000)), max_ms), max_ms

    def sequence_headers(self, correlation_id: int) -> dict[str, str]:
        """Headers of a request of sequence ``correlation_id``: auth plus the routing header."""
        headers = dict(self.headers)
        if self.routing_header:
            headers[self.routing_header] = str(int(correlation_id))
        return headers

    def __repr__(self) -> str:
        extras = [self.protocol if self.uses_stream or self.protocol == "http"
                  else "grpc unary"]
        if self.ssl:
            extras.append("tls")
        if self.private_key:
            extras.append("client certificate")
        if self.headers:
            extras.append(f"headers={sorted(self.headers)}")  # names only, never values
        if self.compression:
            extras.append(f"compression={self.compression}")
        if self.routing_header:
            extras.append(f"routing_header={self.routing_header}")
        return f"Endpoint({self.url}, {', '.join(extras)})"

    __str__ = __repr__


def endpoint_from_params(p: dict) -> Endpoint:
    """The :class:`Endpoint` a node's connection parameters describe (names as in
    ``triton_ros.ros.connection_params``). Missing keys take the Endpoint defaults.

    ``protocol: grpc_unary`` (older sequence-node setting) means grpc with unary sequence
    requests. Reads the auth token (environment variable or file) here, once. For a
    ``server_url`` list, this is the first server's (see :func:`endpoints_from_params`).
    """
    return endpoints_from_params(p)[0]


def endpoints_from_params(p: dict) -> list[Endpoint]:
    """One :class:`Endpoint` per server of ``server_url`` (see :func:`split_urls`), all with the
    same options; the token is read once."""
    protocol = p.get("protocol", "grpc")
    transport = p.get("sequence_transport", "stream")
    if protocol == "grpc_unary":
        protocol, transport = "grpc", "unary"
    headers = SecretHeaders()
    if p.get("auth_token_env") or p.get("auth_token_file"):
        headers = auth_headers(p.get("auth_token_env", ""), p.get("auth_token_file", ""),
                               p.get("auth_header", "authorization"),
                               p.get("auth_scheme", "Bearer"))
    options = {k: p[k] for k in ("model_version", "server_wait_timeout_s", "ssl",
                                 "root_certificates", "private_key", "certificate_chain",
                                 "compression", "shared_memory", "reconnect_initial_s",
                                 "reconnect_max_s", "routing_header") if k in p}
    if "request_timeout_s" in p:
        options["timeout_s"] = p["request_timeout_s"]
    return [Endpoint(url, protocol, headers=headers, sequence_transport=transport, **options)
            for url in split_urls(p["server_url"])]

"""Several Triton servers serving the same model, without a load balancer (client side, no ROS).

:class:`ServerPool` offers what :class:`~triton_ros.client.client.TritonClient` offers
(``check_ready``, ``is_model_ready``, ``model_spec``, ``infer``, ``sequence_transport``,
``close``) over a list of servers, one TritonClient each with the same options:

- **Stateless requests** go to the ready server with the fewest requests in flight (ties taken
  in turn). A request that fails for a connection reason (``UNAVAILABLE_KINDS``: refused, hung,
  TLS, model gone, ...) takes its server out and is retried once on another ready server; only
  when that fails too, or no other server is ready, is the error raised (the caller counts the
  frames as dropped with the reason).
- **A server's state is what was last observed of it.** Any call that fails on a server for a
  connection reason (a request, a readiness check, the model's metadata) takes it out at once.
  Servers taken out are probed back (``check_ready`` plus the model's metadata) by background
  probes, one thread per server so a hung one delays no other, with exponential backoff and
  jitter (``reconnect_initial_s`` .. ``reconnect_max_s``). When one server goes down, every
  server still called ready is probed at once (a crash of the host or the network takes them
  together), so a status turns within one request timeout of the failure; a ready server no
  request has answered for ``reconnect_max_s`` is probed too. ``check_ready`` (what a node
  calls to reconnect) probes every server, ready or not, before it answers. A server whose
  model differs from the others' (inputs, outputs, batching) stays out, with that reason.
- **Sequences** (:class:`PooledSequenceTransport`): a sequence's correlation id picks its server
  by rendezvous (highest-random-weight) hashing over the ready servers, so a server joining or
  leaving moves only the sequences whose top choice it is. A sequence stays on its server while
  that server is ready (moving back after a recovery would lose its state a second time); when
  the server goes, the sequence's next request raises "dropped" (its state is gone) and the
  restart with START goes to the next server of its ranking.

All servers must serve the same model; shared memory regions are per server (``auto`` is on
only for loopback servers, as for one server).
"""
import hashlib
import itertools
import threading
import time
from collections.abc import Callable

import numpy as np

from triton_ros.client.client import TritonClient
from triton_ros.client.errors import UNAVAILABLE_KINDS, SequenceError, TritonError
from triton_ros.client.streams import open_sequence_transport
from triton_ros.connection import Backoff
from triton_ros.endpoint import Endpoint
from triton_ros.model_spec import ModelSpec

#: sequence-transport error kinds that take the server out (as UNAVAILABLE_KINDS for requests)
SEQUENCE_UNAVAILABLE = ("unavailable", "timeout")


def rendezvous_rank(key: int, urls: list[str]) -> list[str]:
    """``urls`` ordered by rendezvous weight for ``key``, highest first.

    The weight of (url, key) is a hash of both (BLAKE2b, the same in every process), so each
    key's order is fixed: removing a url moves only the keys it ranked first, to their second
    choice; adding one takes only the keys that rank it first.
    """
    def weight(url: str) -> int:
        digest = hashlib.blake2b(f"{url}|{int(key)}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big")
    return sorted(urls, key=weight, reverse=True)


def same_interface(a: ModelSpec, b: ModelSpec) -> bool:
    """Whether two servers' models take and give the same tensors (name, type, dims, batch)."""
    return (a.inputs, a.outputs, a.max_batch_size) == (b.inputs, b.outputs, b.max_batch_size)


class PoolServer:
    """One server of the pool: its client, state and counters (read them under the pool lock).

    ``state``: ``unknown`` (not yet probed), ``ready``, or ``down`` (``last_error`` says why;
    probed again at ``retry_at``, monotonic seconds). ``observed_at``: when the state was last
    observed (a probe or a request; monotonic seconds); ``verify``: a ready server to probe now.
    """

    def __init__(self, client: TritonClient):
        self.client = client
        self.url = client.url
        endpoint = client.endpoint
        self.backoff = Backoff(endpoint.reconnect_initial_s, endpoint.reconnect_max_s)
        self.state = "unknown"
        self.last_error = ""
        self.last_kind = ""         # TritonError kind of last_error
        self.retry_at = 0.0
        self.observed_at = 0.0
        self.verify = False
        self.probing = False
        self.in_flight = 0
        self.requests = 0           # stateless requests answered
        self.failures = 0           # stateless requests that failed here
        self.outages = 0            # ready -> down transitions
        self.recoveries = 0         # down -> ready transitions after an outage
        self.sequences: set[int] = set()   # correlation ids placed here now

    @property
    def ready(self) -> bool:
        return self.state == "ready"


class ServerPool:
    """A client-side list of servers for one model (see the module docstring).

    ``endpoints``: one per server, all with the same options (only the url differs);
    ``on_change(url, state, detail)``: called when a server comes up or goes down (e.g. to log).
    """

    def __init__(self, endpoints: list[Endpoint], model_name: str, *,
                 on_change: Callable[[str, str, str], None] | None = None,
                 probe_period_s: float = 0.1):
        urls = [e.url for e in endpoints]
        if len(urls) < 1 or len(set(urls)) != len(urls):
            raise ValueError(f"server_url needs distinct servers, got {urls}")
        self.servers = [PoolServer(TritonClient.from_endpoint(e, model_name))
                        for e in endpoints]
        self._by_url = {s.url: s for s in self.servers}
        self.endpoint = endpoints[0]      # the shared options (TLS, headers, timeouts, ...)
        self.model_name, self.protocol = model_name, self.endpoint.protocol
        self.model_version = self.endpoint.model_version
        self.url = ",".join(urls)
        self.on_change = on_change or (lambda url, state, detail: None)
        self.retried = 0                  # requests retried on another server after a failure
        self.retries_failed = 0           # ... where the other server failed too
        self._spec: ModelSpec | None = None
        self._lock = threading.Lock()
        self._turn = itertools.count()
        self._probe_period_s = probe_period_s
        self._stop = threading.Event()
        self._prober: threading.Thread | None = None
        self._probes: list[threading.Thread] = []
        self._local = threading.local()   # per calling thread: the last infer's failover
        self._verify_after_s = self.endpoint.reconnect_max_s

    def __repr__(self) -> str:
        return f"ServerPool([{', '.join(s.url for s in self.servers)}], model={self.model_name!r})"

    __str__ = __repr__

    # -- server states

    def _probe(self, server: PoolServer) -> None:
        """Check one server (readiness, model interface); mark it ready or down."""
        with self._lock:
            if server.probing:
                return
            server.probing = True
        try:
            server.client.check_ready()
            spec = server.client.model_spec()
            with self._lock:
                reference = self._spec
                if reference is None:
                    self._spec = spec
            if reference is not None and not same_interface(spec, reference):
                raise TritonError(
                    f"model {self.model_name!r} on {server.url} differs from the pool's "
                    f"(inputs {[(t.name, t.datatype, t.dims) for t in spec.inputs]}, "
                    f"max_batch_size {spec.max_batch_size}); every server must serve the same "
                    f"model", "model_not_ready")
        except Exception as exc:  # noqa: BLE001 - whatever the reason, the server stays out
            self.mark_down(server, exc)
        else:
            self._mark_up(server)
        finally:
            with self._lock:
                server.probing = False

    def _mark_up(self, server: PoolServer) -> None:
        with self._lock:
            changed = server.state != "ready"
            if server.state == "down" and server.outages:
                server.recoveries += 1
            server.state, server.last_error, server.last_kind = "ready", "", ""
            server.observed_at, server.verify = time.monotonic(), False
            server.backoff.reset()
        if changed:
            self.on_change(server.url, "ready", "")

    def mark_down(self, server: PoolServer, exc: Exception) -> None:
        """Take ``server`` out after ``exc``; the prober tries it again after a backoff delay.
        A server going from ready to down makes every other ready server suspect: they are
        probed at once (their state must not outlive what was last seen of the fleet)."""
        with self._lock:
            was = server.state
            if was == "ready":
                server.outages += 1
                for other in self.servers:
                    if other is not server and other.ready:
                        other.verify = True
            server.state, server.last_error = "down", str(exc)
            server.observed_at, server.verify = time.monotonic(), False
            # TritonError: its kind; SequenceError: its cause (the classified reason)
            server.last_kind = (getattr(exc, "kind", "") if isinstance(exc, TritonError)
                                else getattr(exc, "cause", "")) or "unreachable"
            server.retry_at = time.monotonic() + server.backoff.next_delay()
        if was != "down":
            self.on_change(server.url, "down", str(exc))
        self._start_prober()

    def _due(self) -> list[PoolServer]:
        """Servers to probe now: down ones whose backoff ran out; ready ones that are suspect
        or that nothing has observed for ``reconnect_max_s``."""
        now = time.monotonic()
        with self._lock:
            return [s for s in self.servers if not s.probing and (
                (not s.ready and now >= s.retry_at)
                or (s.ready and (s.verify or now - s.observed_at >= self._verify_after_s)))]

    def _probe_all(self, servers: list[PoolServer], wait: bool) -> None:
        """Probe ``servers`` at once, one thread each (a hung server costs one timeout, not one
        per server after it); ``wait``: return when all have answered."""
        threads = [threading.Thread(target=self._probe, args=(s,), name="triton_pool_probe",
                                    daemon=True) for s in servers]
        with self._lock:
            self._probes = [t for t in self._probes if t.is_alive()] + threads
        for thread in threads:
            thread.start()
        if wait:
            for thread in threads:
                thread.join()

    def _start_prober(self) -> None:
        with self._lock:
            if self._prober is not None or self._stop.is_set():
                return
            self._prober = threading.Thread(target=self._probe_loop, name="triton_pool_probe",
                                            daemon=True)
        self._prober.start()

    def _probe_loop(self) -> None:
        while not self._stop.wait(self._probe_period_s):
            due = self._due()
            if due and not self._stop.is_set():
                self._probe_all(due, wait=False)

    def ready_servers(self) -> list[PoolServer]:
        with self._lock:
            return [s for s in self.servers if s.ready]

    # -- what TritonClient offers

    def check_ready(self) -> None:
        """Return if at least one server is ready after probing every server now (ready or
        not, in parallel: what a reconnect must see is the fleet as it is, not as it was); else
        raise a TritonError naming every server's reason (``kind``: the first server's)."""
        self._probe_all(list(self.servers), wait=True)
        self._start_prober()
        if self.ready_servers():
            return
        raise self._none_ready()

    def is_model_ready(self) -> bool:
        try:
            self.check_ready()
        except TritonError:
            return False
        return True

    def model_spec(self) -> ModelSpec:
        """The model's interface, from a ready server (all ready servers serve the same one).
        A server that fails to give it is taken out and the next ready one asked; TritonError
        when none can."""
        if not self.ready_servers():
            self.check_ready()   # raises when no server is ready
        asked: list[PoolServer] = []
        while True:
            ready = [s for s in self.ready_servers() if s not in asked]
            if not ready:
                raise self._none_ready()
            server = ready[0]
            asked.append(server)
            try:
                spec = server.client.model_spec()
            except Exception as exc:  # noqa: BLE001 - whatever failed, this server is out
                self.mark_down(server, exc)
                continue
            with self._lock:
                server.observed_at = time.monotonic()
                self._spec = self._spec or spec
            return spec

    def _pick(self, exclude=()) -> PoolServer | None:
        """The ready server with the fewest requests in flight (ties in turn), or None; its
        ``in_flight`` is counted up (the caller counts it down)."""
        with self._lock:
            ready = [s for s in self.servers if s.ready and s not in exclude]
            if not ready:
                return None
            turn = next(self._turn) % len(ready)
            ordered = ready[turn:] + ready[:turn]
            server = min(ordered, key=lambda s: s.in_flight)
            server.in_flight += 1
            return server

    def last_failover(self) -> "TritonError | None":
        """The connection-level error of this thread's last ``infer`` if it was answered only
        by the retry on another server (None otherwise): the caller treats frames displaced
        while that request waited as lost to the outage, as it does when no server answers."""
        return getattr(self._local, "failover", None)

    def infer(self, inputs: dict[str, np.ndarray], output_names: list[str]) -> dict[str, np.ndarray]:
        """One request on the least busy ready server; after a connection-level failure, once
        more on another. Raises the last TritonError when no server answered."""
        self._local.failover = None
        tried: list[PoolServer] = []
        last: TritonError | None = None
        for attempt in (0, 1):
            server = self._pick(exclude=tried)
            if server is None:
                break
            if attempt:
                with self._lock:
                    self.retried += 1
            try:
                outputs = server.client.infer(inputs, output_names)
            except TritonError as exc:
                with self._lock:
                    server.failures += 1
                    if attempt:
                        self.retries_failed += 1
                if exc.kind not in UNAVAILABLE_KINDS:
                    raise  # this request was bad: another server would refuse it too
                self.mark_down(server, exc)
                tried.append(server)
                last = exc
                continue
            else:
                with self._lock:
                    server.requests += 1
                    server.observed_at = time.monotonic()
                self._local.failover = last
                return outputs
            finally:  # whatever happened (also a non-Triton error): no longer in flight
                with self._lock:
                    server.in_flight -= 1
        if last is None:
            raise self._none_ready()
        if len(tried) == 1:
            raise TritonError(f"{last} (no other server of {self.url} is ready)", last.kind)
        raise last

    def _none_ready(self) -> TritonError:
        """Why no server can take a request: every server's reason; ``kind``: the first's."""
        with self._lock:
            reasons = "; ".join(f"{s.url}: {s.last_error or s.state}" for s in self.servers)
            kind = next((s.last_kind for s in self.servers if s.last_kind), "unreachable")
        return TritonError(f"none of the {len(self.servers)} servers is ready: {reasons}", kind)

    def sequence_transport(self) -> "PooledSequenceTransport":
        """A transport for one stream's sequence, placed by rendezvous hashing (see above)."""
        return PooledSequenceTransport(self)

    def reset_connections(self) -> None:
        for server in self.servers:
            server.client.reset_connections()

    def close(self) -> None:
        """Stop probing; release every server's shared memory and connections."""
        self._stop.set()
        prober = self._prober
        if prober is not None and prober is not threading.current_thread():
            prober.join(timeout=5.0)
        with self._lock:
            probes = list(self._probes)
        for probe in probes:   # a probe of a hung server ends after its request timeout
            if probe is not threading.current_thread():
                probe.join(timeout=self.endpoint.timeout_s + 1.0)
        for server in self.servers:
            server.client.close()

    # -- sequences

    def place(self, correlation_id: int, exclude=()) -> PoolServer | None:
        """The server for a (re)starting sequence: the first ready one of its rendezvous
        ranking (``exclude``: servers that just failed it), or None."""
        with self._lock:
            ready = {s.url: s for s in self.servers if s.ready and s not in exclude}
            if not ready:
                return None
            server = ready[rendezvous_rank(correlation_id, list(ready))[0]]
            for other in self.servers:
                other.sequences.discard(correlation_id)
            server.sequences.add(correlation_id)
            return server

    def release(self, correlation_id: int) -> None:
        """The sequence ended or moved: no server holds it for this pool now."""
        with self._lock:
            for server in self.servers:
                server.sequences.discard(correlation_id)

    def server(self, url: str) -> PoolServer:
        return self._by_url[url]

    # -- diagnostics

    def summary(self) -> str:
        """``""`` while every server is ready, else e.g. ``1 of 3 servers down: host:8001
        (reason)``."""
        with self._lock:
            down = [s for s in self.servers if not s.ready]
            if not down:
                return ""
            return (f"{len(down)} of {len(self.servers)} servers down: "
                    + "; ".join(f"{s.url} ({s.last_error or s.state})" for s in down))

    def diagnostic_values(self) -> dict[str, str]:
        """Per server: state, in-flight, requests, failures, outages, recoveries, the sequences
        placed there; plus pool totals. Keys ``server[<url>].<name>``."""
        with self._lock:
            values = {"servers_ready": f"{sum(s.ready for s in self.servers)}/"
                                       f"{len(self.servers)}",
                      "requests_retried": str(self.retried),
                      "requests_retried_failed": str(self.retries_failed)}
            for s in self.servers:
                prefix = f"server[{s.url}]."
                values.update({
                    prefix + "state": s.state, prefix + "in_flight": str(s.in_flight),
                    prefix + "requests": str(s.requests), prefix + "failures": str(s.failures),
                    prefix + "outages": str(s.outages), prefix + "recoveries": str(s.recoveries),
                    prefix + "sequences": " ".join(str(c) for c in sorted(s.sequences)),
                    prefix + "last_error": s.last_error})
            return values


class PooledSequenceTransport:
    """One stream's sequence over a :class:`ServerPool` (the transport interface of
    :mod:`triton_ros.client.streams`: ``send``, ``model_config``, ``is_model_ready``, ``close``).

    START places the sequence by rendezvous hashing over the ready servers (a START that fails
    for a connection reason is retried once on the next server). Continuations go to the same
    server; if it is down — found by this request or by another — the sequence's state is gone:
    ``send`` raises SequenceError ``dropped`` (``cause`` ``moved``) and the stream restarts with
    START, which places it anew.
    """

    def __init__(self, pool: ServerPool):
        self.pool = pool
        self.endpoint = pool.endpoint
        self.url, self.timeout_s = pool.url, pool.endpoint.timeout_s
        self.server: PoolServer | None = None     # where the live sequence is
        self._transports: dict[str, object] = {}
        self.moves = 0

    def __repr__(self) -> str:
        where = f", now on {self.server.url}" if self.server is not None else ""
        return f"PooledSequenceTransport([{self.pool.url}]{where})"

    def _transport(self, server: PoolServer):
        transport = self._transports.get(server.url)
        if transport is None:
            transport = self._transports[server.url] = open_sequence_transport(
                server.client.endpoint)
        return transport

    def _moved(self, server: PoolServer, correlation_id: int, why: str) -> SequenceError:
        self.server = None
        self.moves += 1
        self.pool.release(correlation_id)
        return SequenceError(f"sequence {correlation_id} lived on {server.url}, which {why}; its "
                             "state is gone: it restarts on another server", "dropped", "moved")

    def send(self, model_name: str, model_version: str, inputs: dict[str, np.ndarray],
             outputs: list[str] | None, correlation_id: int, start: bool, end: bool,
             timeout_s: float | None = None) -> dict[str, np.ndarray]:
        server = self.server
        if not start and server is not None and not server.ready:
            raise self._moved(server, correlation_id,
                              f"is down ({server.last_error or server.state})")
        tried = []
        while True:
            if start or server is None:
                server = self.pool.place(correlation_id, exclude=tried)
                if server is None:
                    raise SequenceError(f"no server of {self.pool.url} is ready for sequence "
                                        f"{correlation_id}: {self.pool.summary()}",
                                        "unavailable", "unreachable")
                self.server = server
            try:
                result = self._transport(server).send(
                    model_name, model_version, inputs, outputs, correlation_id, start, end,
                    timeout_s)
            except SequenceError as exc:
                if exc.kind not in SEQUENCE_UNAVAILABLE:
                    raise
                self.pool.mark_down(server, exc)
                if not start:  # the state stayed on the lost server
                    raise self._moved(server, correlation_id, f"failed: {exc}") from exc
                tried.append(server)
                if len(tried) > 1:
                    self.server = None
                    self.pool.release(correlation_id)
                    raise
                continue
            if end:
                self.server = None
                self.pool.release(correlation_id)
            return result

    def model_config(self, model_name: str, model_version: str = "") -> tuple[dict, dict]:
        """The model's metadata and config from this sequence's server if it is ready, else
        from the first ready one; a server that fails to give them is taken out and the next
        asked (as :meth:`ServerPool.model_spec`)."""
        asked: list[PoolServer] = []
        while True:
            here = self.server if self.server is not None and self.server.ready else None
            ready = [s for s in ([here] if here else []) + self.pool.ready_servers()
                     if s not in asked]
            if not ready and not asked:
                try:
                    self.pool.check_ready()
                except TritonError as exc:
                    raise SequenceError(str(exc), "unavailable", exc.kind) from exc
                ready = self.pool.ready_servers()
            if not ready:
                raise SequenceError(str(self.pool._none_ready()), "unavailable", "unreachable")
            server = ready[0]
            asked.append(server)
            try:
                return self._transport(server).model_config(model_name, model_version)
            except (TritonError, SequenceError) as exc:
                self.pool.mark_down(server, exc)

    def is_model_ready(self, model_name: str, model_version: str = "") -> bool:
        return self.pool.is_model_ready()

    def close(self) -> None:
        for transport in self._transports.values():
            transport.close()
        self._transports.clear()

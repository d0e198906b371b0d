"""Correlation ids of per-robot Triton sequences, and claims to detect two streams sharing one.

No ROS here. A stateful model keeps per-stream state on the server, keyed by the Triton
correlation id of the stream's *sequence*. This module maps a stream key (robot id or namespace +
source) to a correlation id that is unique across a fleet sharing one server
(:func:`assign_correlation_id`), and detects collisions (:class:`ClaimRegistry`,
:func:`check_unique`).

Correlation id layout (UINT64 on the wire, kept below 2**53 so that JSON/HTTP carries it exactly):

- ``robot_id`` R (1 .. 2**31-1): ``R * 256 + stream_index`` (each robot owns 256 ids);
- an id range ``[first, last]`` handed out by whoever manages the fleet: ``first + stream_index``;
- neither: derived from ``namespace|source`` by a 64-bit BLAKE2b hash into
  ``[2**40, 2**40 + 2**44)``, disjoint from every robot-id based id.
"""
import hashlib
import threading
from dataclasses import dataclass

STREAM_BITS = 8                       # stream indices per robot id: 0 .. 255
STREAMS_PER_ROBOT = 1 << STREAM_BITS
MAX_ROBOT_ID = (1 << 31) - 1
DERIVED_BASE = 1 << 40                # namespace-derived ids live in [2**40, 2**40 + 2**44)
DERIVED_SPAN = 1 << 44
MAX_CORRELATION_ID = (1 << 53) - 1    # exact in JSON doubles; gRPC's int64 takes it too


# --- correlation ids ---------------------------------------------------------------------------


class CorrelationIdError(ValueError):
    """A correlation id cannot be assigned as configured, or two streams share one."""


@dataclass(frozen=True)
class CorrelationAssignment:
    """The correlation id of one stream and how it was chosen."""
    correlation_id: int
    stream_key: str          # "<namespace>|<source>"
    method: str              # "robot_id", "id_range" or "namespace_hash"
    detail: str              # e.g. "robot_id 7, stream_index 0"


def stream_key(namespace: str, source: str) -> str:
    """The key that names a stream: the robot's namespace and the stream's source (a topic)."""
    namespace = "/" + namespace.strip("/") if namespace.strip("/") else "/"
    return f"{namespace}|{source}"


def derived_correlation_id(namespace: str, source: str) -> int:
    """A deterministic id for ``namespace|source`` in the derived range (never 0)."""
    digest = hashlib.blake2b(stream_key(namespace, source).encode(), digest_size=8).digest()
    return DERIVED_BASE + int.from_bytes(digest, "big") % DERIVED_SPAN


def assign_correlation_id(namespace: str, source: str, robot_id: int = 0,
                          id_range: tuple[int, int] | list[int] | None = None,
                          stream_index: int = 0) -> CorrelationAssignment:
    """The correlation id of stream ``source`` of the robot in ``namespace``.

    Precedence: an explicit ``id_range`` (``[first, last]``), else ``robot_id`` (> 0), else an id
    derived from the namespace and source. ``stream_index`` tells apart streams of one robot that
    go to the same model (ids are per model: a tracker and a sensor model may share one).
    """
    key = stream_key(namespace, source)
    if not 0 <= int(stream_index) < STREAMS_PER_ROBOT:
        raise CorrelationIdError(f"stream_index {stream_index} is outside [0, "
                                 f"{STREAMS_PER_ROBOT - 1}]")
    stream_index = int(stream_index)
    if id_range:
        if len(id_range) != 2:
            raise CorrelationIdError(f"correlation id range must be [first, last], got "
                                     f"{list(id_range)}")
        first, last = (int(v) for v in id_range)
        if not 1 <= first <= last <= MAX_CORRELATION_ID:
            raise CorrelationIdError(f"correlation id range [{first}, {last}] must satisfy "
                                     f"1 <= first <= last <= {MAX_CORRELATION_ID}")
        corrid = first + stream_index
        if corrid > last:
            raise CorrelationIdError(f"stream_index {stream_index} does not fit the correlation "
                                     f"id range [{first}, {last}]")
        return CorrelationAssignment(corrid, key, "id_range",
                                     f"range [{first}, {last}], stream_index {stream_index}")
    if robot_id:
        if not 1 <= int(robot_id) <= MAX_ROBOT_ID:
            raise CorrelationIdError(f"robot_id {robot_id} is outside [1, {MAX_ROBOT_ID}]")
        corrid = int(robot_id) * STREAMS_PER_ROBOT + stream_index
        return CorrelationAssignment(corrid, key, "robot_id",
                                     f"robot_id {int(robot_id)}, stream_index {stream_index}")
    corrid = derived_correlation_id(namespace, source)
    return CorrelationAssignment(corrid, key, "namespace_hash",
                                 f"hash of {key!r} (set robot_id to choose it)")


def check_unique(assignments: list[CorrelationAssignment]) -> None:
    """Raise :class:`CorrelationIdError` naming every correlation id used by two streams.

    For ids that go to the same model on the same server (e.g. one fleet's trackers).
    """
    owners: dict[int, list[str]] = {}
    for assignment in assignments:
        owners.setdefault(assignment.correlation_id, []).append(assignment.stream_key)
    clashes = {cid: keys for cid, keys in owners.items() if len(keys) > 1}
    if clashes:
        raise CorrelationIdError("correlation id collision: " + "; ".join(
            f"{cid} used by {', '.join(keys)}" for cid, keys in sorted(clashes.items())))


def normalize_server(url: str) -> str:
    """``grpc://Localhost:8001`` -> ``127.0.0.1:8001`` (for comparing claims)."""
    url = url.strip().lower().split("://", 1)[-1].rstrip("/")
    host, _, port = url.rpartition(":")
    if host in ("localhost", "[::1]", "::1"):
        host = "127.0.0.1"
    return f"{host}:{port}" if host else url


@dataclass(frozen=True)
class Claim:
    """``owner`` (e.g. a node's full name) uses ``correlation_id`` of ``model`` on ``server``.

    ``instance``: a token unique to the claiming node instance (e.g. host, pid and random bits).
    Owner names need not be unique (two processes may run nodes of the same full name), so two
    claims with instances are the same stream exactly when their instances are equal; claims
    without one (older publishers) compare by (owner, stream_key).
    """
    server: str
    model: str
    correlation_id: int
    owner: str
    stream_key: str
    instance: str = ""

    @property
    def slot(self) -> tuple[str, str, int]:
        return normalize_server(self.server), self.model, int(self.correlation_id)

    def same_stream(self, other: "Claim") -> bool:
        if self.instance and other.instance:
            return self.instance == other.instance
        return (self.owner, self.stream_key) == (other.owner, other.stream_key)

    def describe(self) -> str:
        """``owner (stream_key)``, plus ``[instance ...]`` when the claim has one."""
        text = f"{self.owner} ({self.stream_key})"
        return f"{text} [instance {self.instance}]" if self.instance else text


class ClaimRegistry:
    """Which stream uses which correlation id, to detect two streams sharing one sequence.

    Correlation ids are per model and per server. Local claims are this process's streams;
    :meth:`observe` checks a claim seen elsewhere (e.g. in another node's diagnostics) and
    returns the local claim it collides with, or None.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._local: dict[tuple, Claim] = {}
        self.collisions: dict[tuple, tuple[Claim, Claim]] = {}

    def claim(self, claim: Claim) -> None:
        """Register a local stream; raise CorrelationIdError if another local stream has it."""
        with self._lock:
            held = self._local.get(claim.slot)
            if held is not None and not held.same_stream(claim):
                raise CorrelationIdError(collision_text(held, claim))
            self._local[claim.slot] = claim

    def release(self, claim: Claim) -> None:
        with self._lock:
            if self._local.get(claim.slot) == claim:
                del self._local[claim.slot]

    def observe(self, other: Claim) -> Claim | None:
        with self._lock:
            mine = self._local.get(other.slot)
            if mine is None or mine.same_stream(other):
                return None
            self.collisions[(other.slot, other.owner, other.stream_key, other.instance)] = (
                mine, other)
            return mine


def collision_text(mine: Claim, other: Claim) -> str:
    """The message that reports two streams sharing one sequence."""
    return (f"correlation id collision: {mine.correlation_id} of model {mine.model!r} on "
            f"{mine.server} is used by {mine.describe()} and by {other.describe()}; their "
            f"sequences would share server state. Give the robots distinct robot_id values "
            f"(docs/sequences.md)")

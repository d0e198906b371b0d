"""Keep a model usable across server restarts: readiness checks, exponential backoff with jitter.

No ROS. :class:`ModelConnection` owns the "connected?" state. ``get()`` returns the ready object
(e.g. a Detector) or None while the server/model is unavailable, retrying no more often than the
backoff allows; ``failed(exc)`` after a failed request marks it for a re-check.
"""
import random
import threading
import time
from collections.abc import Callable
from typing import Any


class Backoff:
    """Delays ``initial_s * multiplier**n`` capped at ``max_s``, each scaled by a random factor
    in [1 - jitter, 1] so a fleet of clients does not reconnect in lockstep."""

    def __init__(self, initial_s: float = 0.5, max_s: float = 10.0, multiplier: float = 2.0,
                 jitter: float = 0.5, rng: random.Random | None = None):
        if initial_s <= 0 or max_s < initial_s or multiplier < 1 or not 0 <= jitter < 1:
            raise ValueError("need 0 < initial_s <= max_s, multiplier >= 1, 0 <= jitter < 1")
        self.initial_s, self.max_s, self.multiplier, self.jitter = initial_s, max_s, multiplier, jitter
        self._rng = rng or random.Random()
        self.attempt = 0

    def next_delay(self) -> float:
        base = min(self.max_s, self.initial_s * self.multiplier ** self.attempt)
        self.attempt += 1
        return base * (1.0 - self.jitter * self._rng.random())

    def reset(self) -> None:
        self.attempt = 0


class ModelConnection:
    """``connect()`` builds the ready object or raises; it is retried with backoff.

    Exceptions of the ``fatal`` types (e.g. a model that cannot be driven) are not retried
    quietly: they are re-raised from ``get()`` (after scheduling the next attempt).

    ``on_change(state, detail)`` is called on every transition between ``"ready"``,
    ``"unavailable"`` and ``"unresponsive"`` (an error whose ``kind`` is ``"unresponsive"``: the
    server accepts connections but does not answer), and when the error text changes, e.g. to
    log it. ``last_error`` is cleared when the connection is ready again.
    """

    def __init__(self, connect: Callable[[], Any], backoff: Backoff | None = None,
                 on_change: Callable[[str, str], None] | None = None,
                 fatal: tuple[type[BaseException], ...] = ()):
        self._connect = connect
        self._fatal = fatal
        self.backoff = backoff or Backoff()
        self._on_change = on_change or (lambda state, detail: None)
        self._lock = threading.Lock()
        self._ready = None
        self._retry_at = 0.0
        self.state = "connecting"
        self.last_error = ""
        self.connects = 0      # successful (re)connections
        self.losses = 0        # ready -> unavailable transitions

    def get(self):
        """The ready object, or None (then the caller drops/defers its work)."""
        with self._lock:
            if self._ready is not None:
                return self._ready
            if time.monotonic() < self._retry_at:
                return None
            try:
                self._ready = self._connect()
            except Exception as exc:  # any failure to connect/discover means "not yet"
                self._retry_at = time.monotonic() + self.backoff.next_delay()
                self._set(_state_of(exc), str(exc))
                if isinstance(exc, self._fatal):
                    raise
                return None
            self.backoff.reset()
            self.connects += 1
            self._set("ready", "")
            return self._ready

    def failed(self, exc: Exception) -> None:
        """A request failed: drop the ready object; the next get() reconnects (after backoff)."""
        with self._lock:
            if self._ready is None:
                return
            self._ready = None
            self.losses += 1
            self._retry_at = time.monotonic() + self.backoff.next_delay()
            self._set(_state_of(exc), str(exc))

    def _set(self, state: str, detail: str) -> None:
        changed = state != self.state or (detail and detail != self.last_error)
        self.state = state
        self.last_error = detail
        if changed:
            self._on_change(state, detail)


def _state_of(exc: BaseException) -> str:
    return "unresponsive" if getattr(exc, "kind", "") == "unresponsive" else "unavailable"

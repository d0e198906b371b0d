"""Backoff with jitter and ModelConnection's ready/unavailable state machine."""
import random
import time

import pytest

from triton_ros.connection import Backoff, ModelConnection


def test_backoff_doubles_up_to_the_cap_with_jitter_below_the_base():
    backoff = Backoff(initial_s=0.5, max_s=4.0, multiplier=2.0, jitter=0.5,
                      rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(6)]
    bases = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    for delay, base in zip(delays, bases):
        assert base * 0.5 <= delay <= base
    assert len(set(delays)) == len(delays)  # jittered, not lockstep
    backoff.reset()
    assert backoff.next_delay() <= 0.5


def test_backoff_without_jitter_is_exact():
    backoff = Backoff(initial_s=1.0, max_s=3.0, multiplier=3.0, jitter=0.0)
    assert [backoff.next_delay() for _ in range(3)] == [1.0, 3.0, 3.0]


@pytest.mark.parametrize("kwargs", [dict(initial_s=0), dict(initial_s=2, max_s=1),
                                    dict(multiplier=0.5), dict(jitter=1.0)])
def test_backoff_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError):
        Backoff(**kwargs)


class FlakyServer:
    def __init__(self):
        self.up = False
        self.calls = 0

    def connect(self):
        self.calls += 1
        if not self.up:
            raise ConnectionError("server down")
        return "detector"


def test_connection_retries_after_backoff_and_reports_transitions():
    server = FlakyServer()
    changes = []
    conn = ModelConnection(server.connect, Backoff(1.0, 1.0, jitter=0.0),
                           on_change=lambda state, detail: changes.append((state, detail)))
    assert conn.get() is None and conn.state == "unavailable"
    assert conn.get() is None and server.calls == 1  # inside the backoff window: no new try
    server.up = True
    time.sleep(1.1)
    assert conn.get() == "detector" and server.calls == 2
    assert conn.get() == "detector" and server.calls == 2  # cached while ready
    assert changes == [("unavailable", "server down"), ("ready", "")]
    conn.failed(RuntimeError("request failed"))
    assert conn.state == "unavailable" and conn.losses == 1
    assert conn.get() is None  # backoff after a loss
    time.sleep(1.1)
    assert conn.get() == "detector" and conn.connects == 2
    assert changes[-2:] == [("unavailable", "request failed"), ("ready", "")]


def test_fatal_errors_propagate_and_are_retried_later():
    calls = []

    def connect():
        calls.append(1)
        raise ValueError("model has no image input")
    conn = ModelConnection(connect, Backoff(1.0, 1.0, jitter=0.0), fatal=(ValueError,))
    with pytest.raises(ValueError, match="no image input"):
        conn.get()
    assert conn.get() is None  # not retried inside the backoff window
    assert conn.last_error == "model has no image input"
    time.sleep(1.1)
    with pytest.raises(ValueError):
        conn.get()
    assert len(calls) == 2

"""The client-side server list without servers: parsing, rendezvous placement, picking, and what
a pool of servers that refuse connections reports (real sockets on 127.0.0.1, nothing listening).

The pool against live tritonservers (spreading, a kill, a restart, sequences moving) is
test/integration/test_server_list.py.
"""
import collections
import random

import numpy as np
import pytest

from test_endpoint import params
from triton_ros.client import Endpoint, SequenceError, ServerPool, TritonError, rendezvous_rank
from triton_ros.endpoint import endpoints_from_params, split_urls
from triton_ros.tools.local_server import free_ports


def refused_pool(count=2, **options) -> ServerPool:
    urls = [f"127.0.0.1:{port}" for port in free_ports(count)]  # nothing listens there
    return ServerPool([Endpoint(u, timeout_s=2.0, reconnect_initial_s=0.05,
                                reconnect_max_s=0.1, **options) for u in urls], "m")


# -- server_url lists ---------------------------------------------------------------------------

@pytest.mark.parametrize("value, urls", [
    ("10.0.0.5:8001", ["10.0.0.5:8001"]),
    ("gpu1:8001,gpu2:8001", ["gpu1:8001", "gpu2:8001"]),
    (" gpu1:8001 , gpu2:8001 ,", ["gpu1:8001", "gpu2:8001"]),
    (["gpu1:8001", "gpu2:8001", "[::1]:8001"], ["gpu1:8001", "gpu2:8001", "[::1]:8001"]),
])
def test_server_url_takes_one_server_or_a_list(value, urls):
    assert split_urls(value) == urls
    endpoints = endpoints_from_params(params(server_url=value, compression="gzip"))
    assert [e.url for e in endpoints] == urls
    assert {e.compression for e in endpoints} == {"gzip"}  # same options for every server


@pytest.mark.parametrize("value, words", [
    ("", "give host:port"), (" , ", "give host:port"), ("a:1,a:1", "names a server twice"),
    ("gpu1:8001,grpc://gpu2:8001", "without a scheme"), ("gpu1:8001,gpu2", "expected host:port"),
])
def test_bad_server_lists_are_refused_with_the_reason(value, words):
    with pytest.raises(ValueError, match=words):
        endpoints_from_params(params(server_url=value))


def test_client_from_params_gives_a_pool_only_for_a_list():
    from triton_ros.client import TritonClient
    from triton_ros.ros.connection_params import client_from_params
    single = client_from_params(params(), "m")
    pool = client_from_params(params(server_url="127.0.0.1:1,127.0.0.1:2"), "m")
    try:
        assert isinstance(single, TritonClient) and not isinstance(single, ServerPool)
        assert isinstance(pool, ServerPool)
        assert [s.url for s in pool.servers] == ["127.0.0.1:1", "127.0.0.1:2"]
        assert pool.url == "127.0.0.1:1,127.0.0.1:2"
    finally:
        single.close()
        pool.close()


# -- rendezvous hashing -------------------------------------------------------------------------

URLS = ["gpu1:8001", "gpu2:8001", "gpu3:8001"]
KEYS = range(1, 3001)


def test_rendezvous_is_a_fixed_order_per_key():
    assert rendezvous_rank(42, URLS) == rendezvous_rank(42, list(reversed(URLS)))
    assert sorted(rendezvous_rank(42, URLS)) == sorted(URLS)
    # the order is a function of (key, url) only: the same in every process and every run
    assert rendezvous_rank(42, URLS) == rendezvous_rank(42, URLS[::-1][:2] + URLS[:1])


def test_rendezvous_spreads_keys_evenly():
    first = collections.Counter(rendezvous_rank(k, URLS)[0] for k in KEYS)
    assert set(first) == set(URLS)
    for url, count in first.items():
        assert 0.28 < count / len(KEYS) < 0.39, first


def test_removing_a_server_moves_only_its_keys_and_adding_one_takes_only_its_own():
    before = {k: rendezvous_rank(k, URLS)[0] for k in KEYS}
    without = {k: rendezvous_rank(k, URLS[:2])[0] for k in KEYS}
    moved = {k for k in KEYS if before[k] != without[k]}
    assert moved == {k for k in KEYS if before[k] == "gpu3:8001"}
    # each moved key goes to its second choice
    assert all(without[k] == rendezvous_rank(k, URLS)[1] for k in moved)
    added = {k: rendezvous_rank(k, URLS + ["gpu4:8001"])[0] for k in KEYS}
    changed = {k for k in KEYS if added[k] != before[k]}
    assert changed and all(added[k] == "gpu4:8001" for k in changed)
    assert 0.18 < len(changed) / len(KEYS) < 0.32   # about a quarter


def test_placement_uses_the_ready_servers_in_rendezvous_order():
    pool = refused_pool(3)
    try:
        urls = [s.url for s in pool.servers]
        assert pool.place(7) is None  # nothing ready
        for server in pool.servers:
            server.state = "ready"
        ranking = rendezvous_rank(7, urls)
        assert pool.place(7).url == ranking[0]
        assert pool.server(ranking[0]).sequences == {7}
        pool.server(ranking[0]).state = "down"
        assert pool.place(7).url == ranking[1]           # the next one of its ranking
        assert pool.server(ranking[0]).sequences == set()  # no server holds it twice
        assert pool.place(7, exclude=[pool.server(ranking[1])]).url == ranking[2]
        pool.release(7)
        assert all(not s.sequences for s in pool.servers)
    finally:
        pool.close()


def test_least_in_flight_first_and_ties_in_turn():
    pool = refused_pool(3)
    try:
        for server in pool.servers:
            server.state = "ready"
        a, b, c = pool.servers
        a.in_flight, b.in_flight, c.in_flight = 2, 0, 1
        picked = pool._pick()
        assert picked is b and b.in_flight == 1   # counted up for the caller
        b.in_flight = c.in_flight = a.in_flight = 0
        turns = collections.Counter()
        for _ in range(30):
            server = pool._pick()
            turns[server.url] += 1
            server.in_flight -= 1
        assert sorted(turns.values()) == [10, 10, 10], turns
        assert pool._pick(exclude=[a, b]) is c
    finally:
        pool.close()


# -- servers that refuse connections ------------------------------------------------------------

def test_no_server_reachable_names_every_server_and_reason():
    pool = refused_pool(2)
    try:
        with pytest.raises(TritonError) as caught:
            pool.check_ready()
        assert caught.value.kind == "unreachable"
        for server in pool.servers:
            assert server.url in str(caught.value)
            assert server.state == "down"
        assert "none of the 2 servers is ready" in str(caught.value)
        assert not pool.is_model_ready()
        with pytest.raises(TritonError, match="none of the 2 servers"):
            pool.infer({"x": np.zeros((1, 2), np.float32)}, ["y"])
        values = pool.diagnostic_values()
        assert values["servers_ready"] == "0/2"
        assert all(values[f"server[{s.url}].state"] == "down" for s in pool.servers)
        assert "2 of 2 servers down" in pool.summary()
    finally:
        pool.close()


def test_a_request_on_a_server_that_went_away_is_retried_once_then_reported():
    """Both servers 'ready' but refusing: the request fails on one, is retried on the other,
    and the error says so; both are taken out and counted."""
    pool = refused_pool(2)
    try:
        for server in pool.servers:
            server.state = "ready"
        with pytest.raises(TritonError) as caught:
            pool.infer({"x": np.zeros((1, 2), np.float32)}, ["y"])
        assert caught.value.kind == "unreachable"
        assert pool.retried == 1 and pool.retries_failed == 1
        assert [s.state for s in pool.servers] == ["down", "down"]
        assert [s.failures for s in pool.servers] == [1, 1]
        assert all(s.outages == 1 and s.in_flight == 0 for s in pool.servers)
    finally:
        pool.close()


def test_a_sequence_whose_server_is_down_reports_its_state_gone():
    pool = refused_pool(2)
    transport = pool.sequence_transport()
    try:
        for server in pool.servers:
            server.state = "ready"
        inputs = {"x": np.zeros((1, 2), np.float32)}
        # START: tried on its first server, then once on the next; both refuse
        with pytest.raises(SequenceError) as caught:
            transport.send("m", "", inputs, None, 5, start=True, end=False)
        assert caught.value.kind == "unavailable"
        assert [s.state for s in pool.servers] == ["down", "down"]
        assert transport.server is None and not any(s.sequences for s in pool.servers)
        # a continuation of a sequence that lived on a server now down: its state is gone
        home = pool.server(rendezvous_rank(5, [s.url for s in pool.servers])[0])
        transport.server = home
        with pytest.raises(SequenceError) as caught:
            transport.send("m", "", inputs, None, 5, start=False, end=False)
        assert caught.value.kind == "dropped" and caught.value.cause == "moved"
        assert home.url in str(caught.value) and transport.moves == 1
    finally:
        transport.close()
        pool.close()


def test_a_pool_needs_distinct_servers():
    with pytest.raises(ValueError, match="distinct"):
        ServerPool([Endpoint("127.0.0.1:1"), Endpoint("127.0.0.1:1")], "m")


def test_probing_brings_nothing_back_while_servers_refuse():
    """The background prober retries with backoff; refused servers stay down, counted once."""
    pool = refused_pool(2)
    try:
        with pytest.raises(TritonError):
            pool.check_ready()
        import time
        time.sleep(0.6)   # several probe rounds at 0.05..0.1 s backoff
        assert [s.state for s in pool.servers] == ["down", "down"]
        assert all(s.outages == 0 for s in pool.servers)   # never ready: no outage counted
        assert all(s.backoff.attempt >= 2 for s in pool.servers)
    finally:
        pool.close()
    assert pool._prober is None or not pool._prober.is_alive()


def test_random_keys_are_placed_like_rendezvous_over_the_ready_servers():
    pool = refused_pool(3)
    try:
        for server in pool.servers:
            server.state = "ready"
        pool.servers[1].state = "down"
        ready = [pool.servers[0].url, pool.servers[2].url]
        for key in random.Random(3).sample(range(1, 1 << 30), 200):
            assert pool.place(key).url == rendezvous_rank(key, ready)[0]
    finally:
        pool.close()


def test_a_request_that_fails_before_reaching_a_server_is_not_left_in_flight():
    """Inputs tritonclient cannot even encode raise before any network I/O: the error reaches
    the caller unchanged, nothing is marked down, and the in-flight count returns to 0."""
    pool = refused_pool(2)
    try:
        for server in pool.servers:
            server.state = "ready"
        with pytest.raises(Exception) as caught:   # Triton has no complex datatype
            pool.infer({"x": np.zeros((1, 2), np.complex64)}, ["y"])
        assert not isinstance(caught.value, TritonError), caught.value
        assert [s.in_flight for s in pool.servers] == [0, 0]
        assert [s.state for s in pool.servers] == ["ready", "ready"]
    finally:
        pool.close()


def test_a_server_last_seen_ready_that_no_longer_answers_is_found_out():
    """Issue 18 (1, 2): servers whose last observation was 'ready' and that now refuse (a
    crash no request saw). A reconnect (check_ready) probes them, ready or not; the model's
    metadata from a dead 'ready' server takes it out and asks the next; one server taken out
    makes the others suspect, so the prober checks them at once (was: 'ready' for good)."""
    import time
    pool = refused_pool(3)
    try:
        def seen_ready():
            for server in pool.servers:
                server.state, server.observed_at = "ready", time.monotonic()
        seen_ready()
        with pytest.raises(TritonError, match="none of the 3 servers is ready"):
            pool.check_ready()
        assert [s.state for s in pool.servers] == ["down"] * 3

        seen_ready()
        with pytest.raises(TritonError, match="none of the 3 servers is ready"):
            pool.model_spec()
        assert [s.state for s in pool.servers] == ["down"] * 3
        assert all("cannot connect" in s.last_error for s in pool.servers)

        seen_ready()
        with pytest.raises(TritonError):
            pool.infer({"x": np.zeros((1, 2), np.float32)}, ["y"])  # fails on 2 of them
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and pool.ready_servers():
            time.sleep(0.02)
        assert [s.state for s in pool.servers] == ["down"] * 3   # the third one too
    finally:
        pool.close()

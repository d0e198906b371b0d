"""triton_ros.shared_memory on the real /dev/shm (no server: registrations are recorded)."""
import os
import stat
import subprocess
import sys
import threading

import numpy as np
import pytest

from triton_ros import shared_memory as shm


def _ours(prefix):
    return sorted(n for n in os.listdir(shm.SHM_DIR) if n.startswith(prefix))


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


class Recorder:
    """Stands in for the server's register/unregister calls; remembers what is registered."""

    def __init__(self, fail=False):
        self.registered, self.fail = {}, fail
        self.lock = threading.Lock()

    def register(self, region):
        if self.fail:
            raise RuntimeError("refused")
        with self.lock:
            self.registered[region.name] = (region.key, region.byte_size)

    def unregister(self, name):
        with self.lock:
            del self.registered[name]


def test_names_carry_pid_namespace_and_pid():
    prefix = shm.new_owner_prefix()
    assert prefix.startswith(shm.PREFIX)
    assert shm.owner_of(prefix + "3") == (shm.pid_namespace(), os.getpid())
    assert shm.owner_of("/" + prefix + "3") == (shm.pid_namespace(), os.getpid())
    assert shm.owner_of("triton_python_backend_shm_region_1") is None
    assert shm.owner_of("triton_ros_x_1_ab_0") is None


def test_stale_only_for_dead_pids_of_this_namespace():
    dead = _dead_pid()
    ns = shm.pid_namespace()
    assert shm.is_stale(f"triton_ros_{ns}_{dead}_abcd1234_0")
    assert not shm.is_stale(f"triton_ros_{ns}_{os.getpid()}_abcd1234_0")
    assert not shm.is_stale(f"triton_ros_{ns}_1_abcd1234_0")          # pid 1 is alive
    assert not shm.is_stale(f"triton_ros_{ns + 1}_{dead}_abcd1234_0")  # another namespace
    assert not shm.is_stale("unrelated")


def test_stale_files_finds_and_unlinks_dead_owners_files():
    dead = _dead_pid()
    name = f"triton_ros_{shm.pid_namespace()}_{dead}_deadbeef_0"
    region = shm.Region(name, 64)  # a real shm object with a dead owner's name
    try:
        alive = shm.Region(shm.new_owner_prefix() + "0", 64)
        try:
            stale = shm.stale_files()
            assert name in stale and alive.name not in stale
        finally:
            alive.destroy()
        assert shm.unlink_file(name)
        assert not os.path.exists(os.path.join(shm.SHM_DIR, name))
        assert not shm.unlink_file(name)
    finally:
        try:
            region.destroy()
        except Exception:
            pass


def test_region_is_owner_only_and_round_trips_a_copy():
    region = shm.Region(shm.new_owner_prefix() + "0", 4 * 6)
    try:
        mode = stat.S_IMODE(os.stat(os.path.join(shm.SHM_DIR, region.name)).st_mode)
        assert mode & 0o077 == 0, oct(mode)
        data = np.arange(6, dtype=np.float32).reshape(2, 3)
        region.write(data)
        back = region.read(np.float32, [2, 3])
        assert np.array_equal(back, data)
        region.write(data * 0)
        assert np.array_equal(back, data)  # a copy, not a view of the region
        with pytest.raises(ValueError):
            region.write(np.zeros(7, np.float32))
    finally:
        region.destroy()
    assert not os.path.exists(os.path.join(shm.SHM_DIR, region.name))


def test_pool_reuses_grows_and_cleans_up():
    rec = Recorder()
    pool = shm.RegionPool(rec.register, rec.unregister)
    regions = pool.acquire()
    small = regions.get("in:x", 100)
    assert regions.get("in:x", 80) is small            # smaller: reused
    assert set(rec.registered) == {small.name}
    big = regions.get("in:x", 200)                      # bigger: re-created
    assert big.name != small.name and big.byte_size == 200
    assert set(rec.registered) == {big.name}
    assert _ours(pool.prefix) == [big.name]
    out = regions.get("out:y", 12)
    pool.release(regions)
    assert pool.acquire() is regions                    # the free set comes back
    pool.release(regions)
    assert pool.names() == sorted([big.name, out.name])
    assert rec.registered[out.name] == ("/" + out.name, 12)
    pool.close()
    assert rec.registered == {} and _ours(pool.prefix) == [] and pool.names() == []
    with pytest.raises(RuntimeError):
        pool.acquire()


def test_pool_gives_concurrent_requests_distinct_regions():
    rec = Recorder()
    pool = shm.RegionPool(rec.register, rec.unregister)
    held = [pool.acquire() for _ in range(3)]
    names = {s.get("in:x", 16).name for s in held}
    assert len(names) == 3
    for s in held[:2]:
        pool.release(s)
    pool.close()                                        # one still in use
    assert _ours(pool.prefix) == [held[2].get("in:x", 16).name]
    pool.release(held[2])                               # cleaned when it comes back
    assert _ours(pool.prefix) == [] and rec.registered == {}


def test_failed_registration_leaves_nothing_behind():
    rec = Recorder(fail=True)
    pool = shm.RegionPool(rec.register, rec.unregister)
    regions = pool.acquire()
    with pytest.raises(RuntimeError, match="refused"):
        regions.get("in:x", 64)
    assert _ours(pool.prefix) == []
    pool.release(regions)
    pool.close()


def test_a_destroyed_region_leaves_no_file_whatever_tritonclient_counted(caplog):
    """tritonclient unlinks a key only when its handle count drops to 0; a count left higher
    (a second handle of the key opened and dropped without destroy) must not leave the file."""
    import tritonclient.utils.shared_memory as tshm
    region = shm.Region(shm.new_owner_prefix() + "0", 64)
    path = os.path.join(shm.SHM_DIR, region.name)
    # A second handle of the same key: tritonclient now counts 2 and would not unlink at the
    # first destroy.
    other = tshm.create_shared_memory_region(region.name, region.key, 64)
    try:
        region.destroy()
        assert not os.path.exists(path)
        assert "still in" in caplog.text
    finally:
        other._mpsm_handle.close()
        tshm._key_mapping.pop(region.key, None)

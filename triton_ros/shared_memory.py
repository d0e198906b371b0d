"""System shared memory for Triton requests, on top of ``tritonclient.utils.shared_memory``.

No ROS and no network here: registering a region with the server is a callback the caller
(:class:`triton_ros.client.TritonClient`) supplies.

Naming contract: every region is the POSIX shm object ``/dev/shm/<name>`` with
``name = triton_ros_<pid-namespace inode>_<pid>_<owner id>_<n>`` and Triton key ``/<name>``; the
server-side region name is ``<name>`` too. Python creates the objects with mode 0600 (owner
only). The pid in the name lets a later process find leftovers of a crashed one
(:func:`is_stale`); the pid-namespace inode keeps it from judging pids of another namespace.

Concurrency: a :class:`RegionPool` hands out one :class:`RequestRegions` per in-flight request
(``acquire``/``release``), so concurrent requests never share a region; each set keeps one region
per tensor and re-creates it only when a bigger one is needed.
"""
import itertools
import logging
import math
import os
import re
import threading
import uuid

import numpy as np
import tritonclient.utils.shared_memory as tshm

PREFIX = "triton_ros_"
SHM_DIR = "/dev/shm"
_NAME = re.compile(r"^triton_ros_(\d+)_(\d+)_[0-9a-f]+_\d+$")
# tritonclient keeps its handle table in a plain module-level dict: serialise create/destroy.
_TSHM_LOCK = threading.Lock()
_log = logging.getLogger(__name__)


def pid_namespace() -> int:
    """Inode of this process's pid namespace (0 when /proc does not tell)."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def new_owner_prefix() -> str:
    """A fresh ``triton_ros_<pidns>_<pid>_<random>_`` prefix for one owner (client) of regions."""
    return f"{PREFIX}{pid_namespace()}_{os.getpid()}_{uuid.uuid4().hex[:8]}_"


def owner_of(name: str) -> tuple[int, int] | None:
    """(pid namespace inode, pid) encoded in a region name or key; None if not one of ours."""
    match = _NAME.match(name.lstrip("/"))
    return (int(match.group(1)), int(match.group(2))) if match else None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (in this pid namespace)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def is_stale(name: str) -> bool:
    """True for our region names whose creating process (same pid namespace) no longer exists."""
    owner = owner_of(name)
    if owner is None:
        return False
    namespace, pid = owner
    return namespace == pid_namespace() and pid != os.getpid() and not pid_alive(pid)


def stale_files(shm_dir: str = SHM_DIR) -> list[str]:
    """Names of our shm objects in ``shm_dir`` left behind by processes that no longer exist."""
    try:
        names = os.listdir(shm_dir)
    except OSError:
        return []
    return sorted(n for n in names if n.startswith(PREFIX) and is_stale(n))


def unlink_file(name: str, shm_dir: str = SHM_DIR) -> bool:
    """Remove ``shm_dir/name``; False if it was already gone."""
    try:
        os.unlink(os.path.join(shm_dir, os.path.basename(name)))
        return True
    except FileNotFoundError:
        return False


class Region:
    """One system shm region of ``byte_size`` bytes (> 0), created here, not yet registered."""

    def __init__(self, name: str, byte_size: int):
        if byte_size <= 0:
            raise ValueError(f"shared memory region size must be > 0, got {byte_size}")
        self.name, self.key, self.byte_size = name, "/" + name, int(byte_size)
        with _TSHM_LOCK:
            self._handle = tshm.create_shared_memory_region(name, self.key, self.byte_size,
                                                            create_only=True)

    def write(self, array: np.ndarray) -> None:
        """Copy a numeric array (``nbytes <= byte_size``, any strides) to the start of the
        region, C order, in one pass (a strided array is not first made contiguous)."""
        if array.nbytes > self.byte_size:
            raise ValueError(f"{array.nbytes} bytes do not fit region {self.name} "
                             f"({self.byte_size} bytes)")
        view = tshm.get_contents_as_numpy(self._handle, array.dtype, array.shape)
        try:
            np.copyto(view, array, casting="no")
        finally:
            del view  # drop the buffer export so the region can be closed later

    def array(self, dtype, shape) -> np.ndarray:
        """A writable C-order view of the region's start as ``dtype[shape]`` (no copy), for
        producers that write a tensor straight into the region (e.g. ``Preprocessor(out=)``).
        Drop every such view before :meth:`destroy`."""
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        if nbytes > self.byte_size:
            raise ValueError(f"{nbytes} bytes do not fit region {self.name} "
                             f"({self.byte_size} bytes)")
        return tshm.get_contents_as_numpy(self._handle, np.dtype(dtype), list(shape))

    def read(self, dtype, shape) -> np.ndarray:
        """A copy (safe after the region is reused) of the region's start as ``dtype[shape]``."""
        view = tshm.get_contents_as_numpy(self._handle, np.dtype(dtype), list(shape))
        try:
            return np.array(view, copy=True)
        finally:
            del view  # drop the buffer export so the region can be closed later

    def destroy(self) -> None:
        """Close and unlink the shm object (the server must have unregistered it first)."""
        with _TSHM_LOCK:
            try:
                tshm.destroy_shared_memory_region(self._handle)
            finally:
                # tritonclient unlinks only when its own per-key handle count reaches 0 and
                # only after close() succeeded; the name is this region's alone, so make sure
                # the file is gone whatever that bookkeeping says. A fresh-clone CI run once
                # saw replaced regions still in /dev/shm (cause not found): if this ever
                # removes a file, the warning is the evidence.
                if unlink_file(self.name):
                    _log.warning("shared memory region %s was still in %s after tritonclient "
                                 "released it; removed", self.name, SHM_DIR)

    def __repr__(self) -> str:
        return f"Region({self.name}, {self.byte_size} B)"


class RequestRegions:
    """The regions of one in-flight request: one per tensor key, grown on demand."""

    def __init__(self, pool: "RegionPool"):
        self._pool = pool
        self._regions: dict[str, Region] = {}

    def get(self, tensor_key: str, byte_size: int) -> Region:
        """A registered region of at least ``byte_size`` bytes for ``tensor_key`` (reused)."""
        region = self._regions.get(tensor_key)
        if region is not None and region.byte_size >= byte_size:
            return region
        if region is not None:
            del self._regions[tensor_key]
            self._pool._retire(region)
        region = self._pool._create(byte_size)
        self._regions[tensor_key] = region
        return region

    def regions(self) -> list[Region]:
        return list(self._regions.values())

    def drop_all(self) -> None:
        """Unregister (best effort) and unlink every region; the next ``get`` makes new ones."""
        regions, self._regions = list(self._regions.values()), {}
        for region in regions:
            self._pool._retire(region)


class RegionPool:
    """Region sets for concurrent requests, registered through the caller's callbacks.

    ``register(region)`` must register ``region.name``/``region.key``/``region.byte_size`` with
    the server (raise on failure); ``unregister(name)`` undo it (errors are logged, not raised).
    Thread-safe: ``acquire()`` gives a set no other caller holds until ``release()``.
    """

    def __init__(self, register, unregister, prefix: str | None = None):
        self.prefix = prefix or new_owner_prefix()
        self._register, self._unregister = register, unregister
        self._counter = itertools.count()
        self._lock = threading.Lock()
        self._free: list[RequestRegions] = []
        self._all: list[RequestRegions] = []
        self._closed = False

    def acquire(self) -> RequestRegions:
        with self._lock:
            if self._closed:
                raise RuntimeError("shared memory pool is closed")
            if self._free:
                return self._free.pop()
            regions = RequestRegions(self)
            self._all.append(regions)
            return regions

    def release(self, regions: RequestRegions) -> None:
        with self._lock:
            if not self._closed:
                self._free.append(regions)
                return
        with self._lock:
            if regions in self._all:
                self._all.remove(regions)
        for region in regions.regions():  # closed while in use: clean up now
            self._retire(region)
        regions._regions.clear()

    def names(self) -> list[str]:
        """Names of the regions this pool holds now."""
        with self._lock:
            return sorted(r.name for s in self._all for r in s.regions())

    def _create(self, byte_size: int) -> Region:
        region = Region(f"{self.prefix}{next(self._counter)}", byte_size)
        try:
            self._register(region)
        except BaseException:
            region.destroy()
            raise
        return region

    def _retire(self, region: Region) -> None:
        try:
            self._unregister(region.name)
        except Exception as exc:  # the server may be gone; still free our side
            _log.warning("could not unregister shared memory region %s: %s", region.name, exc)
        region.destroy()

    def close(self) -> None:
        """Unregister and unlink every region; sets still acquired are cleaned at release."""
        with self._lock:
            self._closed = True
            in_use = [s for s in self._all if s not in self._free]
            idle, self._free = self._free, []
            self._all = in_use
        for regions in idle:
            for region in regions.regions():
                self._retire(region)
            regions._regions.clear()

"""Run independent pieces of a batch on a few threads, each with a 1-thread BLAS.

Why: the Winograd path makes many medium-sized matrix products separated by
element-wise transforms. Letting OpenBLAS split each product over its own
threads costs one thread rendezvous per product, and on a busy machine (another
process on the cores) every rendezvous waits for a descheduled thread; NumPy's
element-wise transforms run on one thread only. Splitting the *batch* into a
fixed number of contiguous groups, one Python thread per group, each running
its BLAS calls single-threaded (OpenBLAS's ``openblas_set_num_threads_local``),
parallelises the transforms too and needs one join per layer.

Results are deterministic: the partition of the batch depends only on the
batch size and the worker count (the BLAS thread count at import), and the
callers combine the groups' partial sums in group order.

NumPy with OpenBLAS only; for any other array module or BLAS, one worker.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_pid = -1  # a forked child has no pool threads: it makes its own pool
_local = threading.local()


def _find_openblas() -> Any | None:
    """The OpenBLAS that NumPy loaded, as a ctypes library, or None."""
    try:
        with open("/proc/self/maps", encoding="ascii", errors="replace") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        if hasattr(lib, "openblas_set_num_threads_local"):
            return lib
    return None


def _blas_threads(lib: Any) -> int:
    for name in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
                 "openblas_get_num_threads"):
        fn = getattr(lib, name, None)
        if fn is not None:
            fn.restype = ctypes.c_int
            return int(fn())
    return 1


def _init() -> tuple[Any | None, int]:
    import numpy  # noqa: F401  (make sure its BLAS is loaded)

    lib = _find_openblas()
    if lib is None:
        return None, 1
    env = os.environ.get("CNNLAB_WORKERS")
    workers = int(env) if env else _blas_threads(lib)
    return lib, max(1, workers)


_LIB, WORKERS = _init()


def workers_for(xp: Any) -> int:
    """How many groups to cut a batch into for array module ``xp``."""
    return WORKERS if (_LIB is not None and xp.__name__ == "numpy") else 1


def _worker_init() -> None:
    if _LIB is not None:
        _LIB.openblas_set_num_threads_local.restype = ctypes.c_int
        _LIB.openblas_set_num_threads_local(ctypes.c_int(1))


def run_groups(fn: Callable[[int, int], T], bounds: Sequence[tuple[int, int]]) -> list[T]:
    """``[fn(lo, hi) for (lo, hi) in bounds]``, the groups run concurrently.

    With one group (or one worker) it simply runs in the calling thread.
    """
    if len(bounds) <= 1:
        return [fn(lo, hi) for lo, hi in bounds]
    global _pool, _pool_pid
    with _lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(max_workers=WORKERS, initializer=_worker_init,
                                       thread_name_prefix="cnnlab")
            _pool_pid = os.getpid()
    futures = [_pool.submit(fn, lo, hi) for lo, hi in bounds]
    return [f.result() for f in futures]


def split(n: int, groups: int) -> list[tuple[int, int]]:
    """Cut ``range(n)`` into at most ``groups`` contiguous, near-equal pieces."""
    groups = max(1, min(groups, n))
    base, extra = divmod(n, groups)
    out, lo = [], 0
    for g in range(groups):
        hi = lo + base + (1 if g < extra else 0)
        out.append((lo, hi))
        lo = hi
    return out

"""Run independent pieces of a batch on a few threads, each with a 1-thread BLAS.

Why: the Winograd path makes many medium-sized matrix products separated by
element-wise transforms. Letting OpenBLAS split each product over its own
threads costs one thread rendezvous per product, and on a busy machine (another
process on the cores) every rendezvous waits for a descheduled thread; NumPy's
element-wise transforms run on one thread only. Splitting the *batch* into a
fixed number of contiguous groups, one Python thread per group, each running
its BLAS calls single-threaded, parallelises the transforms too and needs one
join per layer.

OpenBLAS's thread count is process-wide (its ``openblas_set_num_threads_local``
changes it for every thread in the pthreads builds NumPy ships: measured, a
main-thread GEMM went from 345 to 616 us after one call in a worker). So
BLAS is set to one thread only inside :func:`single_threaded_blas` scopes:
around every :func:`run_groups`, and (through :func:`batch_scope`) around a
whole training step or large-batch forward pass; small batches (batch-1
inference) keep all of BLAS's threads.

Results are deterministic: the partition of the batch depends only on the
batch size and the worker count (the BLAS thread count at import), and the
callers combine the groups' partial sums in group order.

NumPy with OpenBLAS only; for any other array module or BLAS, one worker.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, TypeVar

from cnnlab.backend import array_module

T = TypeVar("T")

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


_GET_NAMES = ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_",
              "openblas_get_num_threads")
_SET_NAMES = ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_",
              "openblas_set_num_threads")


def _blas_function(lib: Any, names: tuple[str, ...]) -> Any | None:
    for name in names:
        fn = getattr(lib, name, None)
        if fn is not None:
            return fn
    return None


def _find_openblas() -> tuple[Any, Any] | None:
    """``(get_num_threads, set_num_threads)`` of the OpenBLAS NumPy loaded, or None."""
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
        get, set_ = _blas_function(lib, _GET_NAMES), _blas_function(lib, _SET_NAMES)
        if get is not None and set_ is not None:
            return get, set_
    return None


def _init() -> tuple[Any | None, Any | None, int, int]:
    """``(get_num_threads, set_num_threads, BLAS threads, workers)``."""
    import numpy  # noqa: F401  (make sure its BLAS is loaded)

    found = _find_openblas()
    if found is None:
        return None, None, 1, 1
    get, set_ = found
    get.restype = ctypes.c_int
    set_.argtypes = [ctypes.c_int]
    blas_threads = max(1, int(get()))
    env = os.environ.get("CNNLAB_WORKERS")
    workers = int(env) if env else blas_threads
    return get, set_, blas_threads, max(1, workers)


_GET_THREADS, _SET_THREADS, BLAS_THREADS, WORKERS = _init()
_running = 0  # run_groups calls in progress (BLAS is single-threaded while > 0)
_saved_threads = BLAS_THREADS  # the count to restore when the last one ends


def workers_for(xp: Any) -> int:
    """How many groups to cut a batch into for array module ``xp``."""
    return WORKERS if (_SET_THREADS is not None and xp.__name__ == "numpy") else 1


def _after_fork_in_child() -> None:
    """A forked child has none of the parent's threads: a new pool, no scopes open."""
    global _pool, _running, _lock
    _lock = threading.Lock()
    _pool = None
    if _running and _SET_THREADS is not None:
        _SET_THREADS(_saved_threads)
    _running = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _enter() -> None:
    global _running, _saved_threads
    with _lock:
        if _running == 0 and _SET_THREADS is not None and _GET_THREADS is not None:
            _saved_threads = int(_GET_THREADS())
            _SET_THREADS(1)
        _running += 1


def _leave() -> None:
    global _running
    with _lock:
        _running -= 1
        if _running == 0 and _SET_THREADS is not None:
            _SET_THREADS(_saved_threads)


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """BLAS on one thread inside the block; the batch-split workers are the parallelism.

    Re-entrant and shared by all threads: the first to enter sets one thread,
    the last to leave restores the count it found. Use it around a whole
    batch-parallel computation (a training step, a large-batch forward pass):
    OpenBLAS's own worker threads keep spinning for a while after each call,
    and on a small machine they would compete with the workers of the next
    :func:`run_groups` (measured on 2 cores: a training step 20% slower).
    """
    _enter()
    try:
        yield
    finally:
        _leave()


#: Batches at least this large are processed batch-parallel by the model
#: (inside :func:`single_threaded_blas`); smaller ones leave BLAS its threads
#: (crossover measured by ``benchmarks/tune_thresholds.py``: 12 to 16).
BATCH_PARALLEL_MIN = 16


def batch_scope(batch_size: int, xp: Any = None) -> AbstractContextManager[None]:
    """:func:`single_threaded_blas` for batches of at least ``BATCH_PARALLEL_MIN``.

    Only for NumPy: with ``xp`` another array module (CuPy: the work runs on a
    GPU), nothing is changed."""
    if xp is not None and xp.__name__ != "numpy":
        return nullcontext()
    if batch_size >= BATCH_PARALLEL_MIN and WORKERS > 1:
        return single_threaded_blas()
    return nullcontext()


def run_groups(fn: Callable[[int, int], T], bounds: Sequence[tuple[int, int]]) -> list[T]:
    """``[fn(lo, hi) for (lo, hi) in bounds]``, the groups run concurrently.

    With one group (or one worker) it simply runs in the calling thread.
    The groups run inside :func:`single_threaded_blas`.
    """
    if len(bounds) <= 1 or _SET_THREADS is None:
        return [fn(lo, hi) for lo, hi in bounds]
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="cnnlab")
    with single_threaded_blas():
        futures = [_pool.submit(fn, lo, hi) for lo, hi in bounds]
        wait(futures)  # all groups finish before BLAS threads change back, even on error
        return [f.result() for f in futures]


#: Fewest multiply-adds (``M * K * N``) for which :func:`matmul` splits a product
#: over the worker threads: about 0.1 ms of one core's GEMM; below it the
#: hand-off to the pool (tens of microseconds) is not worth it.
PARALLEL_MIN_MACS = 1 << 22


def matmul(a: Any, b: Any) -> Any:
    """``a @ b`` for 2-D ``a`` (M, K) and ``b`` (K, N), its rows split over the workers
    while BLAS is single-threaded (inside :func:`single_threaded_blas`).

    In a batch scope every BLAS call runs on one thread, which suits the
    batch-split ops but leaves the other cores idle during a layer's single
    large product (Dense's). Here the output's rows (or, when ``a`` has fewer
    rows than workers, its columns) are cut into contiguous near-equal pieces,
    one single-threaded GEMM each, written into one output. Outside such a
    scope, or for a small product, it is plain ``a @ b`` (BLAS's own threads).
    Each output element is one dot product over K either way; BLAS may round
    differently for different block sizes, so results agree to rounding, and
    the same shapes always give the same pieces (reproducible).
    """
    m, k = a.shape
    n = b.shape[1]
    xp = array_module(a, b)
    workers = workers_for(xp)
    if _running == 0 or workers < 2 or m * k * n < PARALLEL_MIN_MACS:
        return a @ b
    out = xp.empty((m, n), dtype=xp.result_type(a.dtype, b.dtype))
    if m >= 8 * workers:
        def rows(lo: int, hi: int) -> None:
            xp.matmul(a[lo:hi], b, out=out[lo:hi])
        run_groups(rows, split(m, workers))
    else:
        def cols(lo: int, hi: int) -> None:
            xp.matmul(a, b[:, lo:hi], out=out[:, lo:hi])
        run_groups(cols, split(n, workers))
    return out


def matmuls(*pairs: tuple[Any, Any]) -> list[Any]:
    """``[a @ b for (a, b) in pairs]``: in a batch scope, and when every product has at
    least ``PARALLEL_MIN_MACS`` multiply-adds, each product on its own worker (one
    whole single-threaded GEMM each, the same calls as without workers: bit-identical
    results); else one after the other, each through :func:`matmul`.

    For Dense's backward pass, whose two products (``x^T dZ`` and ``dZ W^T``) take
    the same time."""
    if (_running == 0 or len(pairs) < 2 or len(pairs) > WORKERS
            or any(a.shape[0] * a.shape[1] * b.shape[1] < PARALLEL_MIN_MACS for a, b in pairs)
            or workers_for(array_module(*pairs[0])) < 2):
        return [matmul(a, b) for a, b in pairs]
    return run_groups(lambda i, _: pairs[i][0] @ pairs[i][1], [(i, i) for i in range(len(pairs))])


#: Fewest multiply-adds of a whole batch for which :func:`image_groups` splits it.
PARALLEL_MIN_BATCH_MACS = 1 << 22


def image_groups(xp: Any, n: int, macs_per_image: int) -> list[tuple[int, int]]:
    """How an op that is otherwise one BLAS call cuts a batch of ``n`` images over
    the workers: one group per worker inside :func:`single_threaded_blas` (a
    batch scope, where BLAS has one thread) when the batch has at least
    ``PARALLEL_MIN_BATCH_MACS`` multiply-adds; else one group (BLAS's own
    threads, if any). Depends only on ``n``, the work and the worker count."""
    if _running == 0 or n * macs_per_image < PARALLEL_MIN_BATCH_MACS:
        return [(0, n)]
    return split(n, workers_for(xp))


def blas_threads() -> int:
    """OpenBLAS's current thread count (1 without an OpenBLAS to ask)."""
    return int(_GET_THREADS()) if _GET_THREADS is not None else 1


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

"""How a batch-parallel op is cut into work: groups, chunks and scratch buffers.

The math of an op (say :mod:`cnnlab.ops.winograd`) is written for one chunk
of images; this module decides the chunks:

* the batch is cut into contiguous **groups**, one per worker thread
  (:func:`cnnlab.ops.parallel.run_groups` runs them), unless it is too small
  to be worth splitting;
* each group is cut into near-equal **chunks** small enough that a chunk's
  temporaries stay bounded (``CHUNK_ROWS``);
* each worker thread keeps its temporaries in **scratch** buffers that it
  reuses chunk after chunk and step after step.

A plan depends only on the batch size, the work per image and the worker
count, so the same shapes always give the same chunks (and the same results,
bit for bit, on the same machine). Different chunkings agree up to rounding:
BLAS may pick different kernels for different matrix sizes.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlab.ops import parallel

#: Rows of work (positions x tiles for Winograd) processed together: each
#: group is cut into near-equal chunks of at most about this many rows, which
#: bounds the temporaries. Larger chunks mean fewer, longer operations and
#: larger GEMMs, smaller ones keep a chunk's transforms in cache
#: (``benchmarks/tune_thresholds.py --only chunk`` measures the trade-off). 8192
#: on a 2-core Zen 5 with OpenBLAS's AVX-512 kernels and with its Haswell ones:
#: inference at batch 1000 0.86x and 0.89x the time of 16384, training at batch
#: 128 within 1% of the fastest value in both (11 repetitions, quiet machine). On
#: the whole model the difference is within this machine's noise (predict(1000)
#: median 0.95x and 0.96x, training step 1.03x and 1.05x, 10 interleaved repetitions).
CHUNK_ROWS = 8192

#: Fewest rows of work per image times images (tiles, for Winograd) for which
#: a batch is split across worker threads (``benchmarks/tune_thresholds.py``).
PARALLEL_MIN_TILES = 64

Chunk = tuple[int, int]


@dataclass(frozen=True)
class BatchPlan:
    """The groups of a batch (one per worker) and each group's chunks of images."""

    groups: tuple[Chunk, ...]
    chunks: tuple[tuple[Chunk, ...], ...]  # chunks[g] cover groups[g], in order

    def chunks_of(self, group: Chunk) -> tuple[Chunk, ...]:
        return self.chunks[self.groups.index(group)]


def plan_batch(xp: Any, n: int, units_per_image: int, rows_per_unit: int) -> BatchPlan:
    """Plan ``n`` images, each ``units_per_image`` units (tiles) of ``rows_per_unit`` rows."""
    workers = parallel.workers_for(xp)
    if n * units_per_image < PARALLEL_MIN_TILES:
        workers = 1
    groups = tuple(parallel.split(n, workers))
    chunks = []
    for lo, hi in groups:
        count = max(1, -(-(hi - lo) * units_per_image * rows_per_unit // CHUNK_ROWS))
        chunks.append(tuple((lo + s, lo + e) for s, e in parallel.split(hi - lo, count)))
    return BatchPlan(groups, tuple(chunks))


_scratch_local = threading.local()


def scratch(xp: Any, name: str, shape: tuple[int, ...], dtype: Any) -> Any:
    """A reusable per-thread work array (uninitialised) for an intermediate result.

    Reusing the same memory chunk after chunk and step after step saves mapping
    and faulting in fresh pages for every temporary. Never handed to callers:
    the next use of ``name`` in the same thread overwrites it. The names are
    shared by intermediates that are never alive at the same time. NumPy only;
    other array modules get a fresh array (their allocators pool memory).
    """
    if xp.__name__ != "numpy":
        return xp.empty(shape, dtype=dtype)
    bufs = getattr(_scratch_local, "bufs", None)
    if bufs is None:
        bufs = _scratch_local.bufs = {}
    dtype = np.dtype(dtype)
    size = math.prod(shape)
    buf = bufs.get((name, dtype))
    if buf is None or buf.size < size:
        buf = bufs[(name, dtype)] = np.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)

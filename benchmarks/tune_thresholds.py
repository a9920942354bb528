"""Re-measure cnnlab's tuning thresholds (the constants comments call "measured") on this machine.

Usage::

    python benchmarks/tune_thresholds.py [--quick] [--repeats 5] [--only pixels --only tile]
                                         [--threads 2] [--json thresholds.json]

Each threshold decides between two ways of doing the same work. For each one
the script sweeps the variable it compares against over a grid around the
seed model's shapes (Conv2D 16->128 on 14x14 maps giving 12x12, Conv2D
128->256 on 12x12 giving 10x10, max pooling of 28x28x16 and 12x12x256 maps;
batch 128 in training, 1 and 1000 at inference), times both choices, and
prints a table and one line per threshold::

    NAME: current value X; measured crossover on this machine: Y

where Y is the smallest value tried from which the second choice is never
slower (by more than 3%: smaller differences count as ties, marked ``~``), or
"none in A..B: <choice> always faster". The tables' "current" column says
which choice the current threshold makes, with ``*`` where that is the slower.

* ``conv.WINOGRAD_MIN_CHANNELS`` (C_in; im2col below, Winograd at or above):
  14x14xC_in -> 128, batch 128, forward+backward and forward only.
* ``conv.WINOGRAD_MIN_PIXELS`` (batch x Ho x Wo): both seed 3x3 layers,
  batch 1 to 24, inference forward (``keep=False``, filters transformed once).
* ``conv.WINOGRAD_WIDE_MIN_PIXELS`` (batch x Ho x Wo, for layers with at least
  ``conv.WINOGRAD_WIDE_CHANNELS`` input channels): 12x12x128 -> 256 (the seed
  model's conv2d_2) and 8x8x256 -> 256, batch 1 to 8, inference forward.
* ``schedule.PARALLEL_MIN_TILES`` (batch x tiles per image; unsplit below,
  the batch split over the worker threads at or above): Winograd inference
  forward of both seed 3x3 layers, batch 2 to 128.
* ``parallel.BATCH_PARALLEL_MIN`` (batch; BLAS's own threads below,
  single-threaded BLAS and batch-split ops at or above): the whole seed model,
  ``predict`` and ``train_on_batch``.
* ``parallel.PARALLEL_MIN_MACS`` and ``parallel.PARALLEL_MIN_BATCH_MACS`` (the
  products of Dense and the im2col layers split over the workers inside a batch
  scope, or not): the whole seed model, ``train_on_batch`` and ``predict``, split
  against one thread (a ratio, no crossover).
* ``pooling.PARALLEL_MIN_ELEMENTS`` (input elements; unsplit below, split
  at or above): 2x2 max pooling of both seed pooling inputs, forward+backward
  and forward only.
* ``schedule.CHUNK_ROWS`` (no crossover: the fastest value of a grid): both
  seed 3x3 layers, Winograd, training batch 128 and inference batch 1000.
* ``winograd.TILE_SLACK`` (picks the Winograd tile size m): times m = 2..6 on
  both seed 3x3 layers and reports the range of TILE_SLACK whose picks are
  fastest.

Every run happens as the model runs it: inside ``parallel.batch_scope(batch)``,
with ReLU fused. Timing: one warm-up call per choice, then ``--repeats``
timed blocks per choice (each block long enough to be timed, the choices
interleaved in alternating order), and the best (smallest) block is reported
in ms per call. Where the choices differ in threading, each block waits
``--settle`` seconds first (OpenBLAS's idle threads keep spinning for a while
after a call) and makes one untimed call.

Nothing in ``src`` is changed: the module globals a sweep sets are restored
when it ends. The crossovers depend on each other (the thread thresholds decide
which path the others' timings run) and on the machine's load: run it on an
otherwise idle machine: the CPU time other processes took is printed after
each sweep (on 2 cores, one busy core decides every thread threshold).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from _threads import threads_from_argv  # noqa: E402  (before NumPy; default: leave it)

threads_from_argv(default=None)

import numpy as np  # noqa: E402

import cnnlab  # noqa: E402
from cnnlab.ops import conv, parallel, pooling, schedule, winograd  # noqa: E402

Fn = Callable[[], object]
VALID = ((0, 0), (0, 0))
NEVER = sys.maxsize  # a threshold no batch reaches
TIE = 0.03  # relative differences below this are reported as ties ("~")

#: The seed model's two 3x3 layers: (name, input H = W, C_in, C_out).
SEED_CONVS = (("16->128, 14x14 -> 12x12", 14, 16, 128),
              ("128->256, 12x12 -> 10x10", 12, 128, 256))
#: The seed model's two max-pooling inputs: (H = W, C).
SEED_POOLS = ((28, 16), (12, 256))
#: Every global a sweep may set, so that main() can check they all come back.
TUNED = ((conv, "WINOGRAD_MIN_CHANNELS"), (conv, "WINOGRAD_MIN_PIXELS"),
         (schedule, "CHUNK_ROWS"), (schedule, "PARALLEL_MIN_TILES"),
         (parallel, "BATCH_PARALLEL_MIN"), (pooling, "PARALLEL_MIN_ELEMENTS"),
         (winograd, "TILE_SLACK"))


# ----------------------------------------------------------------------------- timing


@contextmanager
def patched(module: Any, name: str, value: Any) -> Iterator[None]:
    """Set ``module.name`` to ``value`` inside the block, then put back what was there."""
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


def with_global(module: Any, name: str, value: Any, fn: Fn) -> Fn:
    """``fn`` run with ``module.name = value``."""
    def run() -> None:
        with patched(module, name, value):
            fn()
    return run


class Timer:
    """Best-of-``repeats`` seconds per call of each of several interchangeable callables."""

    def __init__(self, repeats: int, block_s: float, settle_s: float) -> None:
        self.repeats, self.block_s, self.settle_s = repeats, block_s, settle_s

    def compare(self, fns: Sequence[Fn], settle: bool = False) -> list[float]:
        calls = []
        for fn in fns:  # warm-up (scratch buffers, filter caches), then size the blocks
            fn()
            t0 = time.perf_counter()
            fn()
            once = max(time.perf_counter() - t0, 1e-7)
            calls.append(max(1, min(1000, math.ceil(self.block_s / once))))
        best = [math.inf] * len(fns)
        for r in range(self.repeats):
            order = range(len(fns)) if r % 2 == 0 else range(len(fns) - 1, -1, -1)
            for i in order:
                if settle:
                    time.sleep(self.settle_s)
                    fns[i]()
                t0 = time.perf_counter()
                for _ in range(calls[i]):
                    fns[i]()
                best[i] = min(best[i], (time.perf_counter() - t0) / calls[i])
        return best


class OtherLoad:
    """CPUs kept busy by other processes since the last :meth:`reset` (Linux ``/proc/stat``
    less this process's own CPU time); ``nan`` where that cannot be read."""

    def __init__(self) -> None:
        self.reset()

    @staticmethod
    def _now() -> tuple[float, float, float]:
        try:
            with open("/proc/stat", encoding="ascii") as f:
                ticks = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return math.nan, math.nan, time.perf_counter()
        hz = os.sysconf("SC_CLK_TCK")
        busy = (sum(ticks[:8]) - ticks[3] - ticks[4]) / hz  # all but idle and iowait
        own = sum(os.times()[:2])
        return busy, own, time.perf_counter()

    def reset(self) -> None:
        self._start = self._now()

    def cpus(self) -> float:
        (b0, o0, t0), (b1, o1, t1) = self._start, self._now()
        return max(0.0, (b1 - b0) - (o1 - o0)) / max(t1 - t0, 1e-9)


# ----------------------------------------------------------------------------- reporting


def _fmt(v: float) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def crossover(keys: Sequence[float], ta: Sequence[float], tb: Sequence[float],
              names: tuple[str, str]) -> str:
    """The smallest key from which ``tb`` is never slower than ``ta`` (ties, within
    ``TIE``, count for neither), in words."""
    ratio = [a / b for a, b in zip(ta, tb, strict=True)]
    wins = [r > 1 + TIE for r in ratio]
    losses = [r < 1 - TIE for r in ratio]
    span = f"{_fmt(keys[0])}..{_fmt(keys[-1])}"
    if not any(losses):
        return f"none in {span}: {names[1]} always faster" + ("" if all(wins) else " or tied")
    if not any(wins):
        return f"none in {span}: {names[0]} always faster" + ("" if all(losses) else " or tied")
    last = max(i for i, lose in enumerate(losses) if lose)
    if last == len(keys) - 1:
        only = ", ".join(_fmt(k) for k, w in zip(keys, wins, strict=True) if w)
        return f"none in {span}: {names[0]} faster at the top, {names[1]} only at {only}"
    text = f"{_fmt(keys[last + 1])} ({names[0]} faster at {_fmt(keys[last])})"
    if any(wins[:last]):
        also = ", ".join(_fmt(k) for k, w in zip(keys[:last], wins[:last], strict=True) if w)
        text += f"; {names[1]} also faster at {also}"
    return text


def pair_table(title: str, labels: Sequence[str], names: tuple[str, str],
               ta: Sequence[float], tb: Sequence[float], picks_b: Sequence[bool]) -> None:
    """Rows: a label, both times in ms, ta / tb, and what the current threshold picks
    (``*`` where that is the slower choice by more than ``TIE``)."""
    print(title)
    width = max(len(s) for s in labels)
    wa, wb = (max(12, len(name) + 3) for name in names)
    print(f"  {'':{width}s} {names[0] + ' ms':>{wa}s} {names[1] + ' ms':>{wb}s} "
          f"{'ratio':>6s}  current")
    for label, a, b, pb in zip(labels, ta, tb, picks_b, strict=True):
        ratio = a / b
        slow = (pb and ratio < 1 - TIE) or (not pb and ratio > 1 + TIE)
        mark = "~" if abs(ratio - 1) <= TIE else " "
        pick = names[1] if pb else names[0]
        print(f"  {label:>{width}s} {a * 1e3:{wa}.3f} {b * 1e3:{wb}.3f} {ratio:6.2f}{mark}  "
              f"{pick}{' *' if slow else ''}")


# ----------------------------------------------------------------------------- workloads


class Data:
    """float32 arrays from ``np.random.default_rng(0)``, made once per shape."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)
        self._cache: dict[tuple, np.ndarray] = {}

    def array(self, shape: tuple[int, ...], scale: float = 1.0) -> np.ndarray:
        key = (shape, scale)
        if key not in self._cache:
            self._cache[key] = (self.rng.random(shape, dtype=np.float32) - 0.5) * scale
        return self._cache[key]

    def conv(self, n: int, hw: int, ci: int, co: int) -> tuple[np.ndarray, ...]:
        """``x, kernel, bias, grad`` for a valid 3x3 layer; He-scaled kernel."""
        x = self.array((n, hw, hw, ci))
        kernel = self.array((3, 3, ci, co), math.sqrt(24.0 / (9 * ci)))
        bias = self.array((co,), 0.1)
        grad = self.array((n, hw - 2, hw - 2, co))
        return x, kernel, bias, grad


def conv_train(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, grad: np.ndarray,
               impl: str) -> Fn:
    """Forward (ReLU fused) and backward of one conv layer, as a training step runs it."""
    def run() -> None:
        with parallel.batch_scope(len(x)):
            _, cache = conv.conv2d_forward(x, kernel, bias, (1, 1), VALID, impl=impl, relu=True)
            conv.conv2d_backward(grad, cache)
    return run


def conv_infer(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray, impl: str) -> Fn:
    """Inference forward of one conv layer, its filter transform cached as a layer's is."""
    filter_cache: dict = {}

    def run() -> None:
        with parallel.batch_scope(len(x)):
            conv.conv2d_forward(x, kernel, bias, (1, 1), VALID, impl=impl, relu=True,
                                keep=False, filter_cache=filter_cache)
    return run


def picks_winograd(n: int, hw: int, ci: int, co: int) -> bool:
    ho = hw - 2
    return conv.choose_algorithm((3, 3, ci, co), (1, 1), n * ho * ho) == "winograd"


# ----------------------------------------------------------------------------- sweeps


def sweep_channels(t: Timer, d: Data, quick: bool) -> str:
    grid = (1, 2, 4, 8, 16, 64) if quick else (1, 2, 3, 4, 6, 8, 12, 16, 32, 64, 128)
    n, hw, co = 128, 14, 128
    names = ("im2col", "winograd")
    verdicts = []
    for mode in ("train", "infer"):
        ta, tb = [], []
        for ci in grid:
            x, k, b, g = d.conv(n, hw, ci, co)
            if mode == "train":
                fns = [conv_train(x, k, b, g, impl) for impl in names]
            else:
                fns = [conv_infer(x, k, b, impl) for impl in names]
            a, w = t.compare(fns)
            ta.append(a)
            tb.append(w)
        what = "forward+backward" if mode == "train" else "inference forward"
        pair_table(f"WINOGRAD_MIN_CHANNELS: {hw}x{hw}xC_in -> {co}, 3x3 valid, batch {n}, "
                   f"{what}", [f"C_in {ci}" for ci in grid], names, ta, tb,
                   [picks_winograd(n, hw, ci, co) for ci in grid])
        verdicts.append(f"{crossover(grid, ta, tb, names)} [{mode}]")
    return line("WINOGRAD_MIN_CHANNELS", conv.WINOGRAD_MIN_CHANNELS, "; ".join(verdicts))


def sweep_pixels(t: Timer, d: Data, quick: bool) -> str:
    batches = (1, 2, 4, 8, 16) if quick else (1, 2, 3, 4, 5, 6, 8, 12, 16, 24)
    names = ("im2col", "winograd")
    verdicts = []
    for label, hw, ci, co in SEED_CONVS:
        ta, tb = [], []
        for n in batches:
            x, k, b, _ = d.conv(n, hw, ci, co)
            a, w = t.compare([conv_infer(x, k, b, impl) for impl in names])
            ta.append(a)
            tb.append(w)
        px = [n * (hw - 2) ** 2 for n in batches]
        pair_table(f"WINOGRAD_MIN_PIXELS: {label}, inference forward",
                   [f"batch {n} = {p} px" for n, p in zip(batches, px, strict=True)],
                   names, ta, tb, [picks_winograd(n, hw, ci, co) for n in batches])
        verdicts.append(f"{crossover(px, ta, tb, names)} [{label.split(',')[0]}]")
    return line("WINOGRAD_MIN_PIXELS", conv.WINOGRAD_MIN_PIXELS, "; ".join(verdicts))


#: Wide 3x3 layers (C_in >= conv.WINOGRAD_WIDE_CHANNELS) for the "wide" sweep:
#: the seed model's conv2d_2 and a 256 -> 256 layer on 8x8 maps (a VGG-style block).
WIDE_CONVS = (("conv2d_2, 12x12x128 -> 256", 12, 128, 256), ("8x8x256 -> 256", 8, 256, 256))


def sweep_wide(t: Timer, d: Data, quick: bool) -> str:
    batches = (1, 2, 4, 8) if quick else (1, 2, 3, 4, 5, 6, 8)
    names = ("im2col", "winograd")
    verdicts = []
    for label, hw, ci, co in WIDE_CONVS:
        ta, tb = [], []
        for n in batches:
            x, k, b, _ = d.conv(n, hw, ci, co)
            a, w = t.compare([conv_infer(x, k, b, impl) for impl in names])
            ta.append(a)
            tb.append(w)
        px = [n * (hw - 2) ** 2 for n in batches]
        pair_table(f"WINOGRAD_WIDE_MIN_PIXELS: {label}, inference forward",
                   [f"batch {n} = {p} px" for n, p in zip(batches, px, strict=True)],
                   names, ta, tb, [picks_winograd(n, hw, ci, co) for n in batches])
        verdicts.append(f"{crossover(px, ta, tb, names)} [{label.split(',')[0]}]")
    return line("WINOGRAD_WIDE_MIN_PIXELS", conv.WINOGRAD_WIDE_MIN_PIXELS, "; ".join(verdicts))


def sweep_tiles(t: Timer, d: Data, quick: bool) -> str:
    if parallel.WORKERS < 2:
        return line("PARALLEL_MIN_TILES", schedule.PARALLEL_MIN_TILES,
                    f"not measured: {parallel.WORKERS} worker thread")
    batches = (2, 4, 8, 16, 64) if quick else (2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128)
    names = ("unsplit", "split")
    verdicts = []
    for label, hw, ci, co in SEED_CONVS:
        ho = hw - 2
        m = winograd.choose_tile((ho, ho))
        per_image = math.ceil(ho / m) ** 2
        ta, tb = [], []
        for n in batches:
            x, k, b, _ = d.conv(n, hw, ci, co)
            fwd = conv_infer(x, k, b, "winograd")
            a, s = t.compare([with_global(schedule, "PARALLEL_MIN_TILES", NEVER, fwd),
                              with_global(schedule, "PARALLEL_MIN_TILES", 0, fwd)], settle=True)
            ta.append(a)
            tb.append(s)
        tiles = [n * per_image for n in batches]
        picks = [len(schedule.plan_batch(np, n, per_image, (m + 2) ** 2).groups) > 1
                 for n in batches]
        pair_table(f"PARALLEL_MIN_TILES: {label} (m={m}, {per_image} tiles/image), Winograd "
                   "inference forward", [f"batch {n} = {k} tiles" for n, k in
                                         zip(batches, tiles, strict=True)],
                   names, ta, tb, picks)
        verdicts.append(f"{crossover(tiles, ta, tb, names)} [{label.split(',')[0]}]")
    return line("PARALLEL_MIN_TILES", schedule.PARALLEL_MIN_TILES, "; ".join(verdicts))


def sweep_batch(t: Timer, d: Data, quick: bool) -> str:
    if parallel.WORKERS < 2:
        return line("BATCH_PARALLEL_MIN", parallel.BATCH_PARALLEL_MIN,
                    f"not measured: {parallel.WORKERS} worker thread")
    model = cnnlab.seed_model(seed=0)
    model.compile(optimizer=cnnlab.Adam(learning_rate=1e-3),
                  loss="sparse_categorical_crossentropy")
    names = ("BLAS threads", "scoped")
    verdicts = []
    for mode in ("infer", "train"):
        if mode == "infer":
            batches = (1, 4, 16, 64) if quick else (1, 2, 4, 8, 12, 16, 24, 32, 64)
        else:
            batches = (4, 16, 64) if quick else (2, 4, 8, 16, 32, 64, 128)
        ta, tb = [], []
        for n in batches:
            x = d.array((n, 28, 28, 1)) + np.float32(0.5)
            y = (np.arange(n) % 10).astype(np.int64)
            if mode == "infer":
                def fn(x: np.ndarray = x, n: int = n) -> None:
                    model.predict(x, batch_size=n)
            else:
                def fn(x: np.ndarray = x, y: np.ndarray = y) -> None:
                    model.train_on_batch(x, y)
            a, s = t.compare([with_global(parallel, "BATCH_PARALLEL_MIN", NEVER, fn),
                              with_global(parallel, "BATCH_PARALLEL_MIN", 1, fn)], settle=True)
            ta.append(a)
            tb.append(s)
        what = "predict" if mode == "infer" else "train_on_batch (Adam)"
        pair_table(f"BATCH_PARALLEL_MIN: seed model, {what}", [f"batch {n}" for n in batches],
                   names, ta, tb, [n >= parallel.BATCH_PARALLEL_MIN for n in batches])
        verdicts.append(f"{crossover(batches, ta, tb, names)} [{mode}]")
    return line("BATCH_PARALLEL_MIN", parallel.BATCH_PARALLEL_MIN, "; ".join(verdicts))


def sweep_split(t: Timer, d: Data, quick: bool) -> str:
    """The image/product splits of the otherwise single-threaded layers (first
    convolution by im2col, Dense) on or off, whole seed model."""
    if parallel.WORKERS < 2:
        return line("PARALLEL_MIN_MACS / PARALLEL_MIN_BATCH_MACS", parallel.PARALLEL_MIN_MACS,
                    f"not measured: {parallel.WORKERS} worker thread")
    model = cnnlab.seed_model(seed=0)
    model.compile(optimizer=cnnlab.Adam(learning_rate=1e-3),
                  loss="sparse_categorical_crossentropy")
    names = ("one thread", "split")
    labels, ta, tb = [], [], []
    cases = ((("train", 128), ("infer", 1000)) if quick else
             (("train", 32), ("train", 128), ("infer", 64), ("infer", 1000)))

    def off(fn: Fn) -> Fn:
        return with_global(parallel, "PARALLEL_MIN_MACS", NEVER,
                           with_global(parallel, "PARALLEL_MIN_BATCH_MACS", NEVER, fn))

    for mode, n in cases:
        x = d.array((n, 28, 28, 1)) + np.float32(0.5)
        y = (np.arange(n) % 10).astype(np.int64)
        if mode == "infer":
            def fn(x: np.ndarray = x, n: int = n) -> None:
                model.predict(x, batch_size=n)
        else:
            def fn(x: np.ndarray = x, y: np.ndarray = y) -> None:
                model.train_on_batch(x, y)
        a, b = t.compare([off(fn), fn], settle=True)
        labels.append(f"{mode} batch {n}")
        ta.append(a)
        tb.append(b)
    pair_table("PARALLEL_MIN_MACS / PARALLEL_MIN_BATCH_MACS: Dense products and the im2col "
               "layer split over the workers in a batch scope, whole seed model", labels,
               names, ta, tb, [True] * len(labels))
    verdict = ", ".join(f"{lab}: {b / a:.2f}x" for lab, a, b in zip(labels, ta, tb, strict=True))
    return line("PARALLEL_MIN_MACS / PARALLEL_MIN_BATCH_MACS", parallel.PARALLEL_MIN_MACS,
                f"split/one thread {verdict}", kind="ratio")


def sweep_pool(t: Timer, d: Data, quick: bool) -> str:
    if parallel.WORKERS < 2:
        return line("PARALLEL_MIN_ELEMENTS", pooling.PARALLEL_MIN_ELEMENTS,
                    f"not measured: {parallel.WORKERS} worker thread")
    batches = (2, 8, 32) if quick else (2, 4, 8, 16, 32, 64, 128)  # batch 1 cannot split
    cases = sorted(((n * hw * hw * c, n, hw, c) for n in batches for hw, c in SEED_POOLS))
    names = ("unsplit", "split")
    verdicts = []
    for mode in ("train", "infer"):
        ta, tb = [], []
        for _, n, hw, c in cases:
            x = d.array((n, hw, hw, c))
            g = d.array((n, hw // 2, hw // 2, c))

            def fn(x: np.ndarray = x, g: np.ndarray = g, train: bool = mode == "train") -> None:
                with parallel.batch_scope(len(x)):
                    _, arg = pooling.max_pool2d_forward(x, (2, 2), (2, 2), VALID, train)
                    if train:
                        pooling.max_pool2d_backward(g, arg, x.shape, (2, 2), (2, 2), VALID)
            a, s = t.compare([with_global(pooling, "PARALLEL_MIN_ELEMENTS", NEVER, fn),
                              with_global(pooling, "PARALLEL_MIN_ELEMENTS", 0, fn)],
                             settle=True)
            ta.append(a)
            tb.append(s)
        what = "forward+backward" if mode == "train" else "inference forward"
        elements = [e for e, *_ in cases]
        pair_table(f"PARALLEL_MIN_ELEMENTS: 2x2 max pooling, {what}",
                   [f"{n}x{hw}x{hw}x{c} = {e}" for e, n, hw, c in cases], names, ta, tb,
                   [e >= pooling.PARALLEL_MIN_ELEMENTS for e in elements])
        verdicts.append(f"{crossover(elements, ta, tb, names)} [{mode}]")
    return line("PARALLEL_MIN_ELEMENTS", pooling.PARALLEL_MIN_ELEMENTS, "; ".join(verdicts))


def seed_winograd_step(d: Data, n: int, train: bool, m: int | None = None,
                       layers: Sequence[tuple] = SEED_CONVS) -> Fn:
    """Winograd forward (+ backward when ``train``) of the seed's 3x3 layers, batch ``n``."""
    parts = []
    for _, hw, ci, co in layers:
        x, k, b, g = d.conv(n, hw, ci, co)
        mm = m or winograd.choose_tile((hw - 2, hw - 2))
        parts.append((x, k, b, g, mm, winograd.filter_transform(k, mm)))

    def run() -> None:
        with parallel.batch_scope(n):
            for x, k, b, g, mm, u in parts:
                if train:
                    out, cache = winograd.conv3x3_forward(x, k, b, VALID, True, True, m=mm)
                    winograd.conv3x3_backward(g, cache, x.shape, VALID, True, out)
                else:
                    winograd.conv3x3_forward(x, k, b, VALID, False, True, m=mm, u=u)
    return run


def sweep_chunk(t: Timer, d: Data, quick: bool) -> str:
    grid = ((4096, 16384, 65536) if quick
            else (2048, 4096, 8192, 16384, 32768, 65536, 131072))
    infer_n = 250 if quick else 1000
    cols = {"train": seed_winograd_step(d, 128, True),
            f"infer{infer_n}": seed_winograd_step(d, infer_n, False)}
    times = {}
    for name, fn in cols.items():
        times[name] = t.compare([with_global(schedule, "CHUNK_ROWS", v, fn) for v in grid])
    print(f"CHUNK_ROWS: both seed 3x3 layers, Winograd; training batch 128 (forward+backward), "
          f"inference batch {infer_n}; ms (relative to the column's best)")
    print(f"  {'CHUNK_ROWS':>10s} " + " ".join(f"{c:>18s}" for c in cols))
    for i, v in enumerate(grid):
        cells = [f"{times[c][i] * 1e3:9.2f} ({times[c][i] / min(times[c]):4.2f})" for c in cols]
        cur = "  current" if v == schedule.CHUNK_ROWS else ""
        print(f"  {v:10d} " + " ".join(f"{s:>18s}" for s in cells) + cur)
    best = []
    for c in cols:
        i = min(range(len(grid)), key=times[c].__getitem__)
        near = [v for v, x in zip(grid, times[c], strict=True) if x <= min(times[c]) * (1 + TIE)]
        best.append(f"{grid[i]} (within {TIE:.0%}: {near[0]}..{near[-1]}) [{c}]")
    return line("CHUNK_ROWS", schedule.CHUNK_ROWS, "; ".join(best), kind="fastest value")


def sweep_tile(t: Timer, d: Data, quick: bool) -> str:
    ms = winograd.TILE_SIZES
    infer_n = 250 if quick else 1000
    cols: list[tuple[str, tuple[int, int], list[float]]] = []
    for layer in SEED_CONVS:
        ho = layer[1] - 2
        for train, n in ((True, 128), (False, infer_n)):
            ts = t.compare([seed_winograd_step(d, n, train, m, (layer,)) for m in ms])
            cols.append((f"{ho}x{ho} {'train' if train else f'infer{n}'}", (ho, ho), ts))
    print("TILE_SLACK: Winograd F(m x m, 3 x 3) on the seed 3x3 layers (12x12: 16->128, "
          "10x10: 128->256); ms, * fastest, < choose_tile's pick")
    print(f"  {'m':>2s} " + " ".join(f"{c[0]:>14s}" for c in cols))
    for i, m in enumerate(ms):
        cells = []
        for _, hw, ts in cols:
            mark = ("*" if ts[i] == min(ts) else " ") + ("<" if winograd.choose_tile(hw) == m
                                                         else " ")
            cells.append(f"{ts[i] * 1e3:12.2f}{mark}")
        print(f"  {m:2d} " + " ".join(cells))
    # choose_tile changes its pick only where TILE_SLACK crosses a product-count ratio
    ratios = set()
    for _, (ho, wo), _ in cols:
        cost = {m: (m + 2) ** 2 * -(-ho // m) * -(-wo // m) for m in ms}
        ratios |= {cost[m] / min(cost.values()) for m in ms}
    edges = sorted(ratios)

    def slowdown(slack: float) -> float:  # mean time of the picks relative to each best
        with patched(winograd, "TILE_SLACK", slack):
            return sum(ts[ms.index(winograd.choose_tile(hw))] / min(ts)
                       for _, hw, ts in cols) / len(cols)

    scores = [slowdown(e) for e in edges]
    best = min(scores)
    good = [i for i, s in enumerate(scores) if s <= best * (1 + TIE / 3)]
    ranges = []  # adjacent good intervals merged
    for i in good:
        hi = edges[i + 1] if i + 1 < len(edges) else math.inf
        if ranges and ranges[-1][1] == edges[i]:
            ranges[-1][1] = hi
        else:
            ranges.append([edges[i], hi])
    ranges_text = " or ".join(f"[{lo:.3f}, {hi:.3f})" for lo, hi in ranges)
    with patched(winograd, "TILE_SLACK", edges[good[0]]):
        picks = ", ".join(f"m={winograd.choose_tile(hw)} for {hw[0]}x{hw[1]}"
                          for hw in sorted({c[1] for c in cols}, reverse=True))
    now = slowdown(winograd.TILE_SLACK)
    verdict = (f"{ranges_text}, picking {picks} ({best - 1:.1%} slower than the "
               f"fastest m on average; the current value: {now - 1:.1%})")
    return line("TILE_SLACK", winograd.TILE_SLACK, verdict, kind="best range")


def line(name: str, current: Any, verdict: str, kind: str = "crossover") -> str:
    text = f"{name}: current value {current}; measured {kind} on this machine: {verdict}"
    print(text)
    return text


SWEEPS: dict[str, Callable[[Timer, Data, bool], str]] = {
    "channels": sweep_channels,
    "pixels": sweep_pixels,
    "wide": sweep_wide,
    "tiles": sweep_tiles,
    "batch": sweep_batch,
    "pool": sweep_pool,
    "split": sweep_split,
    "chunk": sweep_chunk,
    "tile": sweep_tile,
}


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="smaller grids, 2 repeats, shorter blocks (a smoke test, ~30 s)")
    p.add_argument("--repeats", type=int, help="timed blocks per choice, best reported "
                   "(default 5, 2 with --quick)")
    p.add_argument("--block-ms", type=float, help="shortest timed block (default 20, 5 quick)")
    p.add_argument("--settle", type=float, default=0.05,
                   help="seconds of idleness before each block when threading differs")
    p.add_argument("--threads", type=int, help="BLAS threads (default: leave the environment)")
    p.add_argument("--only", choices=tuple(SWEEPS), action="append",
                   help="run only these sweeps (repeatable)")
    p.add_argument("--json", metavar="PATH", help="also write the summary lines as JSON")
    args = p.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 5)
    block_ms = args.block_ms or (5.0 if args.quick else 20.0)
    timer = Timer(repeats, block_ms / 1e3, args.settle)
    data = Data()
    originals = [(mod, name, getattr(mod, name)) for mod, name in TUNED]
    t0 = time.perf_counter()
    print(f"cnnlab tuning thresholds: numpy={np.__version__} BLAS threads="
          f"{parallel.blas_threads()} workers={parallel.WORKERS} CPUs={os.cpu_count()} "
          f"repeats={repeats} (best block, ms per call)")
    print()
    lines = []
    whole, sweep = OtherLoad(), OtherLoad()
    try:
        for name in args.only or tuple(SWEEPS):
            sweep.reset()
            lines.append(SWEEPS[name](timer, data, args.quick))
            print(f"(other processes kept {sweep.cpus():.2f} CPUs busy during this sweep)")
            print()
    finally:
        for mod, name, value in originals:
            setattr(mod, name, value)
    print("summary:")
    for text in lines:
        print(f"  {text}")
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = float("nan")
    elapsed = time.perf_counter() - t0
    others = whole.cpus()
    print(f"load average (1 min) at the end: {load:.2f} on {os.cpu_count()} CPUs; other "
          f"processes kept {others:.2f} CPUs busy on average; {elapsed:.0f} s")
    result = {"numpy": np.__version__, "workers": parallel.WORKERS, "repeats": repeats,
              "quick": args.quick, "loadavg_1min": load, "other_cpus": others,
              "seconds": elapsed, "lines": lines}
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()

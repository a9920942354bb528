"""Live training for the demo page: one small run per browser tab, streamed as it learns.

A :class:`Recipe` (every field comes from the page's URL, so everyone who
opens the same URL gets the same run) says what to train:

* the model: ``Conv2D(filters, 3, relu) -> MaxPooling2D(2) -> Flatten ->
  Dense(10) -> Activation(softmax)`` (:func:`cnnlab.zoo.small_cnn` with
  ``filters`` filters), weights drawn from ``seed``;
* the data: the first ``n`` MNIST training images, in the order
  ``fit(shuffle=True)`` draws from the model's generator (seeded by ``seed``);
* the optimizer (``sgd`` or ``adam``, ``lr``), ``batch`` and ``epochs``.

:class:`LiveRun` runs :meth:`cnnlab.Sequential.fit` itself in a worker thread
(the same data, order, steps and ``train_step``), with a callback that can
hold the loop between steps (pause, single step), stop it (the page went
away, or the run's time is up) and report each step. So the streamed loss is,
bit for bit, the ``loss`` that ``fit()`` reports to its callbacks for the same
recipe in Python (the epoch's running mean, as Keras's progress bar shows
it): see :func:`build`. ``batch`` is at least 16, so every training step runs
with BLAS on one thread (:func:`cnnlab.ops.parallel.batch_scope`), whatever
the server is doing beside it.

Every ``every`` steps (and at the end) the run also reports the first
layer's filters and the feature maps and probabilities of a fixed probe digit
(MNIST test image ``probe``).

>>> r = Recipe.from_query({"seed": "3", "n": "64"})
>>> (r.seed, r.n, r.batch, r.steps)
(3, 64, 32, 2)
"""

from __future__ import annotations

import collections
import dataclasses
import queue
import threading
import time
import uuid
from typing import Any

import numpy as np

from cnnlab.errors import InvalidArgumentError
from cnnlab.training.callbacks import Callback

__all__ = ["LIMITS", "LiveRun", "LiveRuns", "Recipe", "build"]

#: Bounds on a recipe: (smallest, largest) per field.
LIMITS: dict[str, tuple[float, float]] = {
    "seed": (0, 2**31 - 1), "n": (16, 4000), "batch": (16, 256), "epochs": (1, 5),
    "lr": (1e-5, 1.0), "filters": (1, 16), "every": (1, 100), "probe": (0, 9999),
}
OPTIMIZERS = ("sgd", "adam")
#: A run is stopped after this many seconds, paused time included.
MAX_SECONDS = 600.0
#: The largest share of the time a run spends computing: after a step that took t seconds
#: it rests t * (1 / DUTY - 1) (three times as long), leaving most of the CPU to the
#: server's predictions (the numbers do not depend on it, only the pace).
DUTY = 0.25


class Cancelled(Exception):
    """Raised inside fit() by the run's callback when the run is stopped."""


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What a live run trains (see the module docstring)."""

    seed: int = 0
    n: int = 512
    batch: int = 32
    epochs: int = 1
    optimizer: str = "adam"
    lr: float = 0.001
    filters: int = 8
    every: int = 5
    probe: int = 0

    @property
    def steps(self) -> int:
        """Training steps in the whole run."""
        return -(-self.n // self.batch) * self.epochs

    @classmethod
    def from_query(cls, query: dict[str, Any]) -> Recipe:
        """A recipe from URL query parameters (strings), every bound checked.

        Raises:
            InvalidArgumentError: an unknown parameter, a value that is not a
                number, or one out of bounds (the message names it).
        """
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in query.items():
            if key not in fields:
                continue
            if key == "optimizer":
                if str(raw).lower() not in OPTIMIZERS:
                    raise InvalidArgumentError(
                        f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {raw!r}")
                values[key] = str(raw).lower()
                continue
            kind = float if key == "lr" else int
            try:
                v = kind(raw)
            except (TypeError, ValueError):
                raise InvalidArgumentError(f"{key} must be a number, got {raw!r}") from None
            lo, hi = LIMITS[key]
            if not lo <= v <= hi:
                raise InvalidArgumentError(f"{key}={raw} is out of bounds: {lo:g}..{hi:g}")
            values[key] = v
        return cls(**values)

    def query(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_DATA: dict[str, Any] = {}
_DATA_LOCK = threading.Lock()


def _mnist() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    with _DATA_LOCK:
        if not _DATA:
            from cnnlab.datasets import load_mnist

            _DATA["mnist"] = load_mnist()
        return _DATA["mnist"]


def build(recipe: Recipe) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    """``(model, x, y, probe)`` for ``recipe``: a compiled model, its training data and
    the probe digit ``(1, 28, 28, 1)``.

    The same run in Python (what the page's curve equals)::

        model, x, y, _ = build(recipe)
        model.fit(x, y, epochs=recipe.epochs, batch_size=recipe.batch, verbose=0,
                  callbacks=[...])   # each on_batch_end's logs["loss"]
    """
    from cnnlab.layers import Activation, Conv2D, Dense, Flatten, MaxPooling2D
    from cnnlab.model import Sequential
    from cnnlab.optimizers import get_optimizer
    from cnnlab.preprocess import to_model_input

    (x_train, y_train), (x_test, _) = _mnist()
    model = Sequential(
        [Conv2D(recipe.filters, 3, activation="relu"), MaxPooling2D(2), Flatten(), Dense(10),
         Activation("softmax")],
        input_shape=(28, 28, 1), name="live_cnn", seed=recipe.seed)
    model.compile(get_optimizer(recipe.optimizer, learning_rate=recipe.lr))
    x = to_model_input(x_train[: recipe.n])
    y = np.asarray(y_train[: recipe.n])
    probe = to_model_input(x_test[recipe.probe])
    return model, x, y, probe


def _snapshot(model: Any, probe: np.ndarray) -> dict[str, Any]:
    """The first layer's filters and the probe's first-layer maps and probabilities."""
    maps = model.feature_maps(probe)
    kernel = np.asarray(model.layers[0].kernel, np.float64)[:, :, 0, :]  # (kh, kw, F)
    first = np.asarray(maps[0][1][0], np.float64)  # (H, W, F)
    return {
        "filters": np.round(np.moveaxis(kernel, -1, 0), 5).tolist(),
        "maps": np.round(np.moveaxis(first, -1, 0), 4).tolist(),
        "probabilities": np.asarray(maps[-1][1][0], np.float64).tolist(),
    }


class LiveRun:
    """One training run in a worker thread; events go to :attr:`events` (a queue of dicts).

    Events: ``{"type": "start", "recipe", "steps"}``, ``{"type": "step",
    "step", "epoch", "batch", "loss", "accuracy"}`` after every step,
    ``{"type": "snapshot", "step", ...}`` every ``every`` steps,
    ``{"type": "epoch", "epoch", "loss", "accuracy"}``, ``{"type": "state",
    "state"}`` (running, paused) and finally ``{"type": "end", "reason"}``
    (``done``, ``cancelled``, ``timeout`` or ``error``).
    """

    def __init__(self, recipe: Recipe, paused: bool = False) -> None:
        self.recipe = recipe
        self.id = uuid.uuid4().hex
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._cond = threading.Condition()
        self._paused = paused
        self._budget = 0  # steps allowed while paused
        self._stop = False
        self._reason = "cancelled"
        self.started = time.monotonic()
        self.step = 0
        self.finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cnnlab-live", daemon=True)

    def start(self) -> None:
        self._thread.start()

    # -------------------------------------------------------------- control (any thread)
    def pause(self) -> None:
        with self._cond:
            self._paused, self._budget = True, 0
            self._cond.notify_all()
        self.events.put({"type": "state", "state": "paused"})

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()
        self.events.put({"type": "state", "state": "running"})

    def single_step(self) -> None:
        """Pause (if running) and allow one more step."""
        with self._cond:
            if not self._paused:
                self._paused, self._budget = True, 0
                self.events.put({"type": "state", "state": "paused"})
            self._budget += 1
            self._cond.notify_all()

    def cancel(self, reason: str = "cancelled") -> None:
        with self._cond:
            if not self._stop:
                self._stop, self._reason = True, reason
            self._cond.notify_all()

    @property
    def paused(self) -> bool:
        return self._paused

    # -------------------------------------------------------------- the worker
    def _gate(self) -> None:
        """Block before a step until it may run; raise :class:`Cancelled` when stopped."""
        with self._cond:
            while True:
                if time.monotonic() - self.started > MAX_SECONDS:
                    self._stop, self._reason = True, "timeout"
                if self._stop:
                    raise Cancelled(self._reason)
                if not self._paused:
                    return
                if self._budget > 0:
                    self._budget -= 1
                    return
                self._cond.wait(timeout=1.0)

    def _rest(self, seconds: float) -> None:
        """Sleep ``seconds`` (the pace), waking early when the run is stopped."""
        with self._cond:
            if not self._stop:
                self._cond.wait(timeout=seconds)

    def _run(self) -> None:
        recipe = self.recipe
        run = self
        try:
            model, x, y, probe = build(recipe)
            per_epoch = -(-recipe.n // recipe.batch)

            class Live(Callback):
                epoch = 0
                rest = 0.0
                t0 = 0.0

                def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None
                                   ) -> None:
                    self.epoch = epoch

                def on_batch_begin(self, batch: int, logs: dict[str, float] | None = None
                                   ) -> None:
                    if self.rest > 0:
                        run._rest(self.rest)
                    run._gate()
                    self.t0 = time.perf_counter()

                def on_batch_end(self, batch: int, logs: dict[str, float] | None = None
                                 ) -> None:
                    logs = logs or {}
                    self.rest = (time.perf_counter() - self.t0) * (1 / DUTY - 1)
                    run.step += 1
                    run.events.put({
                        "type": "step", "step": run.step, "epoch": self.epoch, "batch": batch,
                        "loss": float(logs["loss"]), "accuracy": float(logs["accuracy"]),
                    })
                    if run.step % recipe.every == 0 or batch + 1 == per_epoch:
                        run.events.put({"type": "snapshot", "step": run.step,
                                        **_snapshot(model, probe)})

                def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None
                                 ) -> None:
                    logs = logs or {}
                    run.events.put({"type": "epoch", "epoch": epoch,
                                    "loss": float(logs["loss"]),
                                    "accuracy": float(logs["accuracy"])})

            self.events.put({"type": "start", "id": self.id, "recipe": recipe.query(),
                             "steps": recipe.steps,
                             "state": "paused" if self._paused else "running",
                             **_snapshot(model, probe)})
            model.fit(x, y, epochs=recipe.epochs, batch_size=recipe.batch, verbose=0,
                      callbacks=[Live()])
            self.events.put({"type": "end", "reason": "done", "step": self.step})
        except Cancelled as e:
            self.events.put({"type": "end", "reason": str(e), "step": self.step})
        except Exception as e:  # reported to the page; the server goes on
            self.events.put({"type": "end", "reason": "error",
                             "detail": f"{type(e).__name__}: {e}", "step": self.step})
        finally:
            self.finished.set()


class LiveRuns:
    """The live runs of one server: one per browser tab (its ``tab`` id), at most
    ``max_runs`` at once (starting one more stops the oldest)."""

    def __init__(self, max_runs: int = 2) -> None:
        self.max_runs = max_runs
        self._runs: collections.OrderedDict[str, LiveRun] = collections.OrderedDict()
        self._lock = threading.Lock()

    def start(self, tab: str, recipe: Recipe, paused: bool = False) -> LiveRun:
        """A new run for ``tab``; the tab's previous run (if any) is stopped."""
        run = LiveRun(recipe, paused)
        with self._lock:
            old = self._runs.pop(tab, None)
            if old is not None:
                old.cancel("replaced")
            while len(self._runs) >= self.max_runs:
                _, oldest = self._runs.popitem(last=False)
                oldest.cancel("evicted")
            self._runs[tab] = run
        run.start()
        return run

    def get(self, tab: str) -> LiveRun | None:
        with self._lock:
            return self._runs.get(tab)

    def finish(self, tab: str, run: LiveRun) -> None:
        """Stop ``run`` and forget it (if it is still ``tab``'s run)."""
        run.cancel()
        with self._lock:
            if self._runs.get(tab) is run:
                del self._runs[tab]

    def __len__(self) -> int:
        with self._lock:
            return len(self._runs)

"""Keras's standard callbacks: EarlyStopping, ModelCheckpoint, ReduceLROnPlateau, CSVLogger.

Each is a :class:`~cnnlab.training.Callback` with Keras 3's arguments, defaults
and decisions (``keras/src/callbacks/*.py``), so a Keras user's code and
numbers carry over:

>>> from cnnlab.training import EarlyStopping
>>> stop = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
>>> stop.mode, stop.patience
('min', 2)

What every monitoring callback shares (Keras's ``MonitorCallback``):

* ``mode="auto"`` reads the monitored name without its ``val_`` prefix:
  ``loss`` is minimised, a name containing ``acc`` (``accuracy``) maximised;
  any other name (``time``, ``learning_rate``) needs ``mode="min"`` or
  ``"max"``, as Keras 3 raises for a metric whose direction it does not know.
  cnnlab knows its metrics when the callback is made, so the error comes then
  (Keras: at the first epoch end); an unknown ``mode`` is an error too
  (Keras warns and falls back to ``"auto"``).
* An improvement is ``current < best - min_delta`` (min) or
  ``current > best + min_delta`` (max), with ``min_delta`` taken as ``abs``.
* A monitored key missing from the logs (``val_loss`` without validation
  data) is a warning that lists the keys there are, and the epoch is skipped.

The logs at epoch end hold ``loss``, ``accuracy``, ``val_loss``,
``val_accuracy`` (with validation data) and ``time``; ``loss`` and
``val_loss`` include the layers' weight penalties and the compiled label
smoothing, as Keras's do.

Resumed runs (``fit(resume=True)``): these callbacks' own state (the best
value, the wait counters, the reduced learning rate) is not part of a
checkpoint, as in Keras; a resumed run starts them afresh.
"""

from __future__ import annotations

import csv
import io
import os
import string
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.errors import InvalidArgumentError
from cnnlab.training.callbacks import Callback

Logs = dict[str, float]


def _check_count(value: Any, name: str, owner: str) -> int:
    """``value`` as an int >= 0 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise InvalidArgumentError(f"{owner}: {name} must be an int >= 0, got {value!r}")
    return int(value)


def _check_float(value: Any, name: str, owner: str) -> float:
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
    if not ok or not np.isfinite(value):
        raise InvalidArgumentError(f"{owner}: {name} must be a finite number, got {value!r}")
    return float(value)


def monitor_mode(monitor: str, mode: str, owner: str) -> str:
    """``"min"`` or ``"max"``: ``mode`` itself, or for ``"auto"`` what the name implies."""
    if not isinstance(monitor, str) or not monitor:
        raise InvalidArgumentError(f"{owner}: monitor must be a metric name, got {monitor!r}")
    if mode in ("min", "max"):
        return mode
    if mode != "auto":
        raise InvalidArgumentError(
            f"{owner}: mode must be 'auto', 'min' or 'max', got {mode!r}"
        )
    name = monitor.removeprefix("val_")
    if name == "loss":
        return "min"
    if "acc" in name:
        return "max"
    raise InvalidArgumentError(
        f"{owner}: cannot tell whether monitor={monitor!r} should be minimised or maximised: "
        "pass mode='min' or mode='max'"
    )


class MonitorCallback(Callback):
    """Base of the callbacks that watch one metric (Keras's ``MonitorCallback``).

    ``best`` is the best value so far (``None`` before the first); ``mode`` is
    ``"min"`` or ``"max"`` once resolved; ``min_delta`` is ``abs(min_delta)``.
    """

    def __init__(self, monitor: str = "val_loss", mode: str = "auto",
                 baseline: float | None = None, min_delta: float = 0.0) -> None:
        owner = type(self).__name__
        self.monitor = monitor
        self.mode = monitor_mode(monitor, mode, owner)
        self.min_delta = abs(_check_float(min_delta, "min_delta", owner))
        self.best: float | None = (None if baseline is None
                                   else _check_float(baseline, "baseline", owner))

    def _is_improvement(self, value: float, reference: float | None) -> bool:
        if reference is None:
            return True
        if self.mode == "min":
            return value + self.min_delta < reference
        return value - self.min_delta > reference

    def _monitor_value(self, logs: Logs | None, what: str) -> float | None:
        """``logs[monitor]``, or a warning naming the keys there are and ``None``."""
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(
                f"{what} conditioned on metric `{self.monitor}` which is not available. "
                f"Available metrics are: {','.join(logs)}",
                stacklevel=3,
            )
            return None
        return float(value)


class EarlyStopping(MonitorCallback):
    """Stop training when a monitored metric has stopped improving (Keras 3's rules).

    After each epoch (from ``start_from_epoch`` on) the wait counter goes up
    by one; an improvement over the best value by more than ``min_delta``
    records the new best (and, with ``restore_best_weights``, copies the
    weights) and resets the counter, unless a ``baseline`` is given and not
    beaten. When the counter reaches ``patience`` (and it is not the first
    epoch), ``model.stop_training`` is set and ``stopped_epoch`` records the
    epoch (0-based; 0 when training was not stopped).

    ``restore_best_weights=True`` puts the best epoch's weights back at the end
    of training, whether it stopped early or ran every epoch (Keras 3), and
    even when no epoch beat the baseline (the best epoch seen is restored).

    Args:
        monitor: the metric to watch (default ``"val_loss"``).
        min_delta: the smallest change that counts as an improvement.
        patience: epochs without improvement before stopping (0: stop at the first).
        verbose: 1 prints a line when it stops and when it restores weights.
        mode: ``"auto"``, ``"min"`` or ``"max"`` (see the module's notes).
        baseline: a value the metric must beat for the wait counter to reset.
        restore_best_weights: restore the best epoch's weights at the end.
        start_from_epoch: epochs (warm-up) before watching begins.

    >>> es = EarlyStopping(monitor="val_accuracy", patience=3)
    >>> es.mode
    'max'
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0,
        patience: int = 0,
        verbose: int = 0,
        mode: str = "auto",
        baseline: float | None = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
    ) -> None:
        super().__init__(monitor, mode, min_delta=min_delta)
        owner = "EarlyStopping"
        self.patience = _check_count(patience, "patience", owner)
        self.verbose = verbose
        self.baseline = None if baseline is None else _check_float(baseline, "baseline", owner)
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = _check_count(start_from_epoch, "start_from_epoch", owner)
        self.wait = 0
        self.stopped_epoch = 0
        self.best_epoch = 0
        self.best_weights: list[np.ndarray] | None = None

    def on_train_begin(self, logs: Logs | None = None) -> None:
        # the same instance may serve several fit() calls
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        current = self._monitor_value(logs, "Early stopping")
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            # nothing recorded yet: the current weights are the best so far
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            # the counter restarts only when the baseline is beaten too
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: Logs | None = None) -> None:
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping", flush=True)
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print("Restoring model weights from the end of the best epoch: "
                      f"{self.best_epoch + 1}.", flush=True)
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(MonitorCallback):
    """Save the model (``model.save``, atomic) at the end of every epoch, or every
    ``save_freq`` batches, as Keras's ``ModelCheckpoint``.

    ``filepath`` may hold ``str.format`` fields filled from ``epoch`` (counted
    from 1, as Keras names files), ``batch`` (from 1, with an integer
    ``save_freq``) and the logs: ``"ckpt/{epoch:02d}-{val_loss:.4f}.safetensors"``
    writes ``ckpt/03-0.0712.safetensors`` after the third epoch. Missing
    folders are created.

    With ``save_best_only`` the model is saved only when the monitored metric
    improves on the best so far (or on ``initial_value_threshold``); a path
    without fields then always holds the best model. If the metric is missing
    from the logs it warns and saves anyway (Keras).

    Args:
        filepath: the model file's path, possibly with format fields.
        monitor: the metric for ``save_best_only`` (default ``"val_loss"``).
        verbose: 1 prints a line per decision.
        save_best_only: save only improvements.
        mode: ``"auto"``, ``"min"`` or ``"max"``.
        save_freq: ``"epoch"`` or a number of batches.
        initial_value_threshold: the value the first save must beat.
    """

    def __init__(
        self,
        filepath: str | os.PathLike[str],
        monitor: str = "val_loss",
        verbose: int = 0,
        save_best_only: bool = False,
        mode: str = "auto",
        save_freq: str | int = "epoch",
        initial_value_threshold: float | None = None,
    ) -> None:
        super().__init__(monitor, mode, initial_value_threshold)
        self.filepath = os.fspath(filepath)
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(self.filepath) if f]
        except ValueError as e:
            raise InvalidArgumentError(
                f"ModelCheckpoint: filepath {self.filepath!r} is not a valid format string ({e})"
            ) from None
        if any(not f.isidentifier() for f in fields):
            raise InvalidArgumentError(
                f"ModelCheckpoint: filepath {self.filepath!r}: fields must be names such as "
                "{epoch:02d} or {val_loss:.4f}"
            )
        if save_freq != "epoch" and (isinstance(save_freq, bool) or not isinstance(
                save_freq, (int, np.integer)) or save_freq <= 0):
            raise InvalidArgumentError(
                f"ModelCheckpoint: save_freq must be 'epoch' or a positive int, got {save_freq!r}"
            )
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_freq = save_freq if save_freq == "epoch" else int(save_freq)
        self._current_epoch = 0
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen: int | None = None

    def on_epoch_begin(self, epoch: int, logs: Logs | None = None) -> None:
        self._current_epoch = epoch

    def on_batch_end(self, batch: int, logs: Logs | None = None) -> None:
        if self._should_save_on_batch(batch):
            self._save_model(self._current_epoch, batch, logs)

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if self.save_freq == "epoch":
            self._save_model(epoch, None, logs)

    def _should_save_on_batch(self, batch: int) -> bool:
        if self.save_freq == "epoch":
            return False
        if self._last_batch_seen is None or batch <= self._last_batch_seen:
            added = batch + 1  # a new epoch: batches count from 0
        else:
            added = batch - self._last_batch_seen
        self._batches_seen_since_last_saving += added
        self._last_batch_seen = batch
        if self._batches_seen_since_last_saving >= self.save_freq:
            self._batches_seen_since_last_saving = 0
            return True
        return False

    def file_path(self, epoch: int, batch: int | None, logs: Logs | None) -> str:
        """``filepath`` filled in for ``epoch`` (0-based here, written from 1) and ``batch``."""
        logs = dict(logs or {})
        try:
            if batch is None or "batch" in logs:
                return self.filepath.format(epoch=epoch + 1, **logs)
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1, **logs)
        except KeyError as e:
            raise InvalidArgumentError(
                f"ModelCheckpoint: cannot fill in filepath {self.filepath!r}: no {e} in the "
                f"logs (there are: epoch, {', '.join(logs)})"
            ) from None

    def _should_save(self, epoch: int, logs: Logs | None, path: str) -> bool:
        if not self.save_best_only:
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: saving model to {path}", flush=True)
            return True
        current = (logs or {}).get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.",
                          stacklevel=3)
            return True
        best = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(float(current), self.best):
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best} to "
                      f"{current:.5f}, saving model to {path}", flush=True)
            self.best = float(current)
            return True
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best}", flush=True)
        return False

    def _save_model(self, epoch: int, batch: int | None, logs: Logs | None) -> None:
        path = self.file_path(epoch, batch, logs)
        if self._should_save(epoch, logs, path):
            target = Path(path)
            if target.is_dir():
                raise InvalidArgumentError(
                    f"ModelCheckpoint: filepath {path!r} is a folder; give a file name"
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            self.model.save(target)


class ReduceLROnPlateau(MonitorCallback):
    """Multiply the learning rate by ``factor`` when a metric stops improving (Keras 3).

    At each epoch end it first records the optimizer's current rate in the
    logs as ``learning_rate`` (Keras 3's key, the rate the epoch trained with),
    then: in cooldown, the cooldown counter goes down and the wait counter is
    held at 0; an improvement of more than ``min_delta`` resets the wait
    counter; otherwise (out of cooldown) it goes up, and on reaching
    ``patience`` the rate becomes ``max(rate * factor, min_lr)`` (if it is
    still above ``min_lr``), the cooldown starts and the counter resets.

    The rate is ``model.optimizer.learning_rate``, read by every step. An
    optimizer built with a learning-rate schedule sets its rate from the
    schedule before each step, so a reduction would be silently undone:
    as in Keras (whose schedule-driven rate is not settable), that is an
    error, raised when training begins.

    Args:
        monitor: the metric (default ``"val_loss"``).
        factor: ``new_lr = lr * factor``; in ``[0, 1)``.
        patience: epochs without improvement before a reduction.
        verbose: 1 prints a line per reduction.
        mode: ``"auto"``, ``"min"`` or ``"max"``.
        min_delta: the smallest change that counts as an improvement.
        cooldown: epochs after a reduction during which no reduction happens.
        min_lr: the lower bound of the rate.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        verbose: int = 0,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        super().__init__(monitor, mode, min_delta=min_delta)
        owner = "ReduceLROnPlateau"
        factor = _check_float(factor, "factor", owner)
        if not 0 <= factor < 1:
            raise InvalidArgumentError(
                f"ReduceLROnPlateau does not support a factor outside [0, 1): got {factor!r}"
            )
        self.factor = factor
        self.min_lr = _check_float(min_lr, "min_lr", owner)
        if self.min_lr < 0:
            raise InvalidArgumentError(f"{owner}: min_lr must be >= 0, got {min_lr!r}")
        self.patience = _check_count(patience, "patience", owner)
        self.cooldown = _check_count(cooldown, "cooldown", owner)
        self.verbose = verbose
        self.cooldown_counter = 0
        self.wait = 0

    def _reset(self) -> None:
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs: Logs | None = None) -> None:
        if getattr(self.model.optimizer, "schedule", None) is not None:
            raise InvalidArgumentError(
                "ReduceLROnPlateau changes optimizer.learning_rate, but this optimizer takes "
                "its rate from a learning-rate schedule, which would undo every reduction: "
                "use a constant learning_rate with ReduceLROnPlateau, or the schedule alone"
            )
        self._reset()

    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def _reduce_lr(self, epoch: int) -> bool:
        optimizer = self.model.optimizer
        old_lr = float(optimizer.learning_rate)
        if old_lr > np.float32(self.min_lr):
            new_lr = max(old_lr * self.factor, self.min_lr)
            optimizer.learning_rate = new_lr
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to "
                      f"{new_lr}.", flush=True)
            return True
        return False

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)
        current = self._monitor_value(logs, "Learning rate reduction")
        if current is None:
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience and self._reduce_lr(epoch):
                self.cooldown_counter = self.cooldown
                self.wait = 0


class CSVLogger(Callback):
    """One CSV row per epoch: ``epoch`` (from 0, as Keras writes it) and every log value.

    The columns are the first epoch's log keys, sorted (Keras's order); when
    those have no validation metrics, ``val_loss`` and ``val_accuracy``
    columns are added all the same, filled with ``NA`` (Keras adds a ``val_``
    column for every key; here only for the two metrics that have one). A key
    missing from a later epoch's logs is written ``NA``; a key that was not
    in the first epoch's logs is left out. Numbers are written with ``repr``
    (every digit of a float), lines end in ``\\n`` (Keras's ``csv.excel``
    dialect writes ``\\r\\n``).

    Each row (with the header, for the first) reaches the file in one
    ``write`` and is flushed and ``fsync``-ed at once, so a crash leaves
    whole rows only. ``append=True`` continues an existing file (a resumed
    run): the header is written only if the file is empty, the existing
    header's columns are kept, and a partial last line (a crash in the
    middle of a write, e.g. power loss) is cut off first. ``append=False``
    starts the file afresh when training begins.

    Args:
        filename: the CSV file's path (missing folders are created).
        separator: the field separator (one character).
        append: continue an existing file instead of replacing it.
    """

    def __init__(self, filename: str | os.PathLike[str], separator: str = ",",
                 append: bool = False) -> None:
        if not isinstance(separator, str) or len(separator) != 1:
            raise InvalidArgumentError(
                f"CSVLogger: separator must be one character, got {separator!r}"
            )
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = bool(append)
        self.keys: list[str] | None = None
        self._fd: int | None = None
        self._need_header = True

    def on_train_begin(self, logs: Logs | None = None) -> None:
        self._close()
        path = Path(self.filename)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.keys = None
        self._need_header = True
        if self.append and path.is_file():
            self._repair_tail(path)
            with open(path, newline="") as f:
                header = f.readline()
            if header.strip():
                self._need_header = False
                columns = next(csv.reader([header], delimiter=self.sep))
                self.keys = [c for c in columns if c != "epoch"]
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if self.append else os.O_TRUNC)
        self._fd = os.open(path, flags, 0o666)

    @staticmethod
    def _repair_tail(path: Path) -> None:
        """Cut a last line without its ``\\n`` (a half-written row) off the file."""
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(path, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)
                f.flush()
                os.fsync(f.fileno())

    def on_epoch_end(self, epoch: int, logs: Logs | None = None) -> None:
        logs = logs or {}
        if self._fd is None:  # used without on_train_begin: start the file now
            self.on_train_begin()
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(k.startswith("val_") for k in self.keys):
                self.keys += [f"val_{k}" for k in ("accuracy", "loss") if k in self.keys]
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter=self.sep, lineterminator="\n")
        if self._need_header:
            writer.writerow(["epoch", *self.keys])
            self._need_header = False
        writer.writerow([epoch, *(self._value(logs.get(k, "NA")) for k in self.keys)])
        self._write(buf.getvalue().encode())

    @staticmethod
    def _value(v: Any) -> Any:
        if isinstance(v, str):
            return v
        if isinstance(v, np.ndarray) and v.ndim > 0:
            return f"[{', '.join(map(str, v.ravel()))}]"
        return repr(float(v)) if isinstance(v, (float, np.floating)) else v

    def _write(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        os.fsync(self._fd)

    def _close(self) -> None:
        fd = getattr(self, "_fd", None)  # None too when __init__ refused its arguments
        if fd is not None:
            self._fd = None
            os.close(fd)

    def on_train_end(self, logs: Logs | None = None) -> None:
        self._close()

    def __del__(self) -> None:
        self._close()

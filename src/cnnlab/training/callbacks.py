"""Callbacks: code that runs at fixed points of :func:`cnnlab.training.fit`, as in Keras.

A callback overrides any of ``on_train_begin/end(logs)``,
``on_epoch_begin/end(epoch, logs)`` and ``on_batch_begin/end(batch, logs)``
(``batch`` counts from 0 within the epoch). ``self.model`` is the model being
trained; setting ``self.model.stop_training = True`` ends training after the
current epoch. ``logs`` holds the metrics so far: ``loss`` and ``accuracy``
(running means over the epoch), and at epoch end ``val_loss``,
``val_accuracy`` and ``time``.

>>> class Stop(Callback):
...     def on_epoch_end(self, epoch, logs=None):
...         self.model.stop_training = logs["loss"] < 0.1
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cnnlab.errors import InvalidArgumentError


class Callback:
    """Base class: every hook does nothing."""

    model: Any = None

    def set_model(self, model: Any) -> None:
        self.model = model

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        pass

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        pass

    def on_batch_begin(self, batch: int, logs: dict[str, float] | None = None) -> None:
        pass

    def on_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        pass


class CallbackList(Callback):
    """Several callbacks called in order, as one."""

    def __init__(self, callbacks: Sequence[Callback], model: Any) -> None:
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise InvalidArgumentError(
                    f"callbacks must be cnnlab.Callback instances, got {type(cb).__name__}"
                )
            cb.set_model(model)
        self.model = model

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        for cb in self.callbacks:
            cb.on_train_begin(logs)

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        for cb in self.callbacks:
            cb.on_train_end(logs)

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def on_batch_begin(self, batch: int, logs: dict[str, float] | None = None) -> None:
        for cb in self.callbacks:
            cb.on_batch_begin(batch, logs)

    def on_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        for cb in self.callbacks:
            cb.on_batch_end(batch, logs)


class ProgressLogger(Callback):
    """``verbose=1`` output: a progress bar per epoch (loss, accuracy, images/s, time
    left), then one line per epoch with every metric."""

    def __init__(self, epochs: int, steps: int | None) -> None:
        self.epochs, self.steps = epochs, steps
        self.bar: Any = None
        self.initial = 0

    def start_at(self, step: int) -> None:
        """The next epoch resumes at ``step`` (a resumed run)."""
        self.initial = step

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.steps, initial=self.initial, desc=f"Epoch {epoch + 1}/"
                        f"{self.epochs}", unit="step", leave=True, dynamic_ncols=True,
                        mininterval=0.5)
        self.initial = 0

    def on_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        logs = logs or {}
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{logs['loss']:.4f}", acc=f"{logs['accuracy']:.4f}",
                             img_s=f"{logs.get('images_per_s', 0):.0f}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.close()
        logs = logs or {}
        parts = [f"{k}: {v:.4f}" for k, v in logs.items() if k != "time"]
        print(f"Epoch {epoch + 1}/{self.epochs} - {logs.get('time', 0.0):.1f}s - "
              + " - ".join(parts), flush=True)

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        self.close()

"""The training loop: epochs of mini-batch steps, with callbacks, checkpoints and Ctrl-C.

:func:`fit` is what ``Sequential.fit`` runs; :func:`train_step` is one step
(forward, loss, backward, gradient reduction, finiteness check, update).

The gradient reduction is the seam for data parallelism: ``train_step``
hands the list of gradients to ``reduce_gradients`` before the optimizer
sees them. On one process that is :func:`local_gradients` (it changes
nothing); a distributed run passes a function that all-reduces them in place
across processes, so every process applies the same update.

The loop knows the model only through what it calls: ``layers`` (each with
``forward``, ``backward``, ``weights``, ``grads``), ``loss_head`` (decided at
compile), ``optimizer``, ``rng``, ``stop_training``, ``prepare_batch``,
``evaluate`` and ``locate_nonfinite``. It never imports the model class.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.backend import first_nonfinite_sum, to_device
from cnnlab.errors import InvalidArgumentError, NonFiniteError
from cnnlab.ops import parallel
from cnnlab.training import checkpoint as ckpt
from cnnlab.training.callbacks import Callback, CallbackList, ProgressLogger
from cnnlab.training.data import ArrayBatches, BatchTransform, IterableBatches
from cnnlab.training.state import History, TrainState
from cnnlab.validation import check_positive_int

#: ``reduce_gradients(grads)``: combine the gradients in place before the update.
GradientReducer = Callable[[list[Any]], None]


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during fit(): a checkpoint was saved (if a checkpoint folder was given)."""

    def __init__(self, message: str, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint


def local_gradients(grads: list[Any]) -> None:
    """The gradient reduction of a single process: nothing to combine."""


def _regularized_kernels(layers: Sequence[Any]) -> Iterator[tuple[Any, int, Any]]:
    """``(layer, index of the kernel in layer.grads, regularizer)`` for every layer with a
    ``kernel_regularizer`` (Conv2D, Dense)."""
    for layer in layers:
        reg = getattr(layer, "kernel_regularizer", None)
        if reg is not None:
            trainable = [n for n in layer.weight_names if n not in layer.non_trainable_names]
            yield layer, trainable.index("kernel"), reg


def regularization_loss(layers: Sequence[Any]) -> float:
    """The weight penalties (Keras's ``model.losses``): ``sum l2 * sum(kernel ** 2)``
    over the layers with a ``kernel_regularizer``; 0.0 without any."""
    return sum((reg(layer.trainable_weights[i]) for layer, i, reg in _regularized_kernels(layers)),
               0.0)


def add_regularization_gradients(layers: Sequence[Any]) -> None:
    """Add each penalty's gradient (``2 * l2 * kernel``) to its kernel's gradient, in place."""
    for layer, i, reg in _regularized_kernels(layers):
        layer.grads[i] += reg.gradient(layer.trainable_weights[i])


def compute_gradients(model: Any, x: Any, y: Any, step: int = 0) -> tuple[float, int]:
    """Forward, loss and backward on a prepared batch: fills every ``layer.grads`` and
    returns ``(mean loss, number of correct predictions)``; changes no weight.

    The loss is the head's cross-entropy plus the weight penalties
    (:func:`regularization_loss`, as Keras adds ``model.losses``).
    """
    device = getattr(model, "device", "cpu")
    if device != "cpu":  # the batch goes to the model's device (the metrics come back)
        x, y = to_device(x, device), to_device(y, device)
    head = model.loss_head
    layers = model.layers[:-1] if head.from_logits else model.layers
    out = x
    for layer in layers:
        out = layer.forward(out, True)
    loss, grad = head(out, y)
    loss += regularization_loss(model.layers)  # the weights of this forward, before the update
    if not math.isfinite(loss):
        raise NonFiniteError(f"step {step}: the loss is {loss}; {model.locate_nonfinite(x)}")
    labels = y if y.ndim == 1 else y.argmax(axis=1)
    correct = int((out.argmax(axis=1) == labels).sum())
    for layer in reversed(layers):
        grad = layer.backward(grad)
    return loss, correct


def apply_gradients(model: Any, step: int = 0) -> None:
    """The update from the (already reduced) ``layer.grads``: add the weight penalties'
    gradients, check every gradient is finite, and take one optimizer step."""
    params = [w for layer in model.layers for w in layer.trainable_weights]
    grads = [g for layer in model.layers for g in layer.grads]
    add_regularization_gradients(model.layers)
    owners = [layer for layer in model.layers for _ in layer.grads]
    # each gradient's sum is checked; on a GPU in one host synchronisation for all
    bad = first_nonfinite_sum(grads)
    if bad is not None:
        layer = owners[bad]
        raise NonFiniteError(
            f"step {step}: a non-finite gradient in layer '{layer.name}' ({layer.kind})"
        )
    model.optimizer.step(params, grads)


def train_step(model: Any, x: Any, y: Any, step: int = 0,
               reduce_gradients: GradientReducer = local_gradients) -> tuple[float, int]:
    """One step on a prepared batch: returns ``(mean loss, number of correct predictions)``.

    :func:`compute_gradients`, then ``reduce_gradients`` on the list of
    gradients, then :func:`apply_gradients`. The penalties' gradients are
    added after ``reduce_gradients`` (they are the same on every process and
    do not depend on the batch, so they are not reduced). The caller holds
    :func:`cnnlab.ops.parallel.batch_scope` for the batch.
    """
    loss, correct = compute_gradients(model, x, y, step)
    reduce_gradients([g for layer in model.layers for g in layer.grads])
    apply_gradients(model, step)
    return loss, correct


class DataParallel:
    """What :func:`fit` asks of a data-parallel process group, when one is passed as
    ``reduce_gradients`` (:class:`cnnlab.distributed.MPIGroup` is the one cnnlab has).

    Every process runs the same :func:`fit` over the same global batches; the
    group decides which shard of each batch this process computes, combines
    the gradients (and the metrics) of all processes, and keeps the processes
    in step around checkpoints. ``rank`` 0 alone shows progress and writes
    checkpoints. A plain function passed as ``reduce_gradients`` is not a
    group: it is only called on the gradients of every step.
    """

    rank: int = 0
    size: int = 1

    def __call__(self, grads: list[Any]) -> None:
        """Combine ``grads`` in place across processes (a :data:`GradientReducer`)."""
        raise NotImplementedError

    def start(self, model: Any, state: TrainState) -> TrainState:
        """Make every process start from rank 0's weights, optimizer, generator and
        ``state`` (rank 0 read the checkpoint, if resuming); return the state."""
        raise NotImplementedError

    def train_step(self, model: Any, x: Any, y: Any, step: int, stop: bool
                   ) -> tuple[float, int, bool]:
        """One step on the global batch ``(x, y)``: this process computes its shard;
        returns the global batch's ``(mean loss, correct predictions)`` and whether
        any process asked to stop (``stop``: Ctrl-C seen here)."""
        raise NotImplementedError

    def evaluate(self, model: Any, x: Any, y: Any) -> tuple[float, float]:
        """``model.evaluate(x, y)``, each process evaluating a shard."""
        raise NotImplementedError

    def barrier(self) -> None:
        """Wait until every process gets here."""
        raise NotImplementedError

    def check_consistent(self, model: Any, epoch: int) -> None:
        """Raise if the processes' weights differ (checked at every epoch end)."""
        raise NotImplementedError


def fit(
    model: Any,
    x: Any,
    y: Any = None,
    epochs: int = 1,
    batch_size: int = 32,
    validation_data: Any = None,
    shuffle: bool = True,
    verbose: int = 1,
    callbacks: Sequence[Callback] = (),
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    reduce_gradients: GradientReducer = local_gradients,
    augment: BatchTransform | None = None,
) -> History:
    """Train ``model`` for ``epochs`` passes; see :meth:`cnnlab.Sequential.fit`."""
    if not model.compiled:
        raise InvalidArgumentError("compile() the model before fit()")
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    if checkpoint_every is not None:
        check_positive_int(checkpoint_every, "checkpoint_every")
    if (resume or checkpoint_every) and checkpoint_dir is None:
        raise InvalidArgumentError("resume and checkpoint_every need a checkpoint_dir")
    source = _batch_source(model, x, y, batch_size, shuffle, augment)
    # a process group (data parallelism): rank 0 reads, shows and writes; all compute
    group = reduce_gradients if isinstance(reduce_gradients, DataParallel) else None
    root = group is None or group.rank == 0
    validate = _validation(model, validation_data, group)

    state = ckpt.load_checkpoint(model, checkpoint_dir) if resume and root else TrainState()
    if group is not None:
        state = group.start(model, state)
    model.stop_training = False
    cbs = list(callbacks)
    progress = ProgressLogger(epochs, source.steps) if verbose and root else None
    if progress is not None:
        progress.start_at(state.step)
        cbs.insert(0, progress)
    cb = CallbackList(cbs, model)

    def save(st: TrainState) -> Path | None:
        if group is None:
            return (None if checkpoint_dir is None
                    else ckpt.save_checkpoint(model, checkpoint_dir, st))
        if checkpoint_dir is None:
            return None
        path = ckpt.save_checkpoint(model, checkpoint_dir, st) if root else None
        group.barrier()  # no process runs ahead of a checkpoint being written
        return path if root else Path(checkpoint_dir) / ckpt.CHECKPOINT_NAME

    cb.on_train_begin()
    try:
        with _sigint_flag() as interrupted:
            for epoch in range(state.epoch, epochs):
                if state.step == 0:
                    state.start_epoch(source.order(model.rng))
                state.epoch = epoch
                cb.on_epoch_begin(epoch)
                t0 = time.perf_counter() - state.elapsed
                step, stop = state.step, False
                for xb, yb in source.batches(epoch, state.perm, state.step):
                    global_step = (epoch * source.steps + step if source.steps is not None
                                   else model.optimizer.iterations)
                    cb.on_batch_begin(step)
                    try:
                        if group is not None:
                            loss, correct, stop = group.train_step(model, xb, yb, global_step,
                                                                   interrupted())
                        else:
                            with parallel.batch_scope(len(xb), getattr(model, "xp", None)):
                                loss, correct = train_step(model, xb, yb, global_step,
                                                           reduce_gradients)
                            stop = interrupted()
                    except NonFiniteError as e:
                        path = ckpt.last_checkpoint(checkpoint_dir)
                        where = f"; the last good checkpoint is {path}" if path else ""
                        raise NonFiniteError(f"{e}: training stopped{where}") from None
                    state.record(loss, correct, len(xb))
                    step = state.step = step + 1
                    state.elapsed = time.perf_counter() - t0
                    logs = state.metrics()
                    logs["images_per_s"] = state.seen / max(state.elapsed, 1e-9)
                    cb.on_batch_end(step - 1, logs)
                    if checkpoint_every and (global_step + 1) % checkpoint_every == 0:
                        save(state)
                    if stop and step != source.steps:
                        path = save(state)
                        raise TrainingInterrupted(
                            f"interrupted at epoch {epoch + 1}, step {step}", path
                        )
                if state.seen == 0:
                    raise InvalidArgumentError(f"epoch {epoch + 1} had no training batches")
                logs = state.metrics()
                if validate is not None:
                    logs.update(zip(("val_loss", "val_accuracy"), validate(), strict=True))
                logs["time"] = time.perf_counter() - t0
                if group is not None:
                    group.check_consistent(model, epoch)
                state.end_epoch(epoch)
                cb.on_epoch_end(epoch, logs)  # may add to logs (ReduceLROnPlateau's rate)
                state.history.append(epoch, logs)
                path = save(state)
                if stop if group is not None else interrupted():
                    raise TrainingInterrupted(f"interrupted after epoch {epoch + 1}", path)
                if model.stop_training:
                    break
    finally:
        if progress is not None:
            progress.close()
    cb.on_train_end()
    return state.history


def _batch_source(model: Any, x: Any, y: Any, batch_size: int, shuffle: bool,
                  augment: BatchTransform | None) -> Any:
    if y is not None:
        xs = model.check_inputs(x, "x")
        ys = model.check_labels(y, len(xs))
        return ArrayBatches(xs, ys, batch_size, shuffle, cast=model.cast_inputs,
                            transform=augment, rng=model.rng)
    if augment is not None:
        raise InvalidArgumentError(
            "augment= applies to fit(x, y) arrays; a dataset object augments its own batches"
        )
    if isinstance(x, np.ndarray):
        raise InvalidArgumentError(
            "fit(x) got an array without labels: pass fit(x, y), or an iterable of "
            "(x_batch, y_batch) pairs"
        )
    return IterableBatches(x, model.prepare_batch)


def _validation(model: Any, data: Any, group: DataParallel | None = None
                ) -> Callable[[], tuple[float, float]] | None:
    """A function returning ``(val_loss, val_accuracy)``, or None without validation data.

    In a process group, each process evaluates a shard of the data (of every
    batch, for an iterable of batches) and the group sums the results.
    """
    if data is None:
        return None
    evaluate = model.evaluate if group is None else lambda xs, ys: group.evaluate(model, xs, ys)
    if isinstance(data, tuple) and len(data) == 2:
        x_val = model.check_inputs(data[0], "validation x")
        y_val = model.check_labels(data[1], len(x_val), "validation x")
        return lambda: evaluate(x_val, y_val)
    batches = IterableBatches(data, model.prepare_batch)

    def evaluate_batches() -> tuple[float, float]:
        loss_sum, correct_sum, seen = 0.0, 0.0, 0
        for xb, yb in batches.batches(0, None, 0):
            loss, acc = evaluate(xb, yb)
            loss_sum += loss * len(xb)
            correct_sum += acc * len(xb)
            seen += len(xb)
        return loss_sum / seen, correct_sum / seen

    return evaluate_batches


@contextlib.contextmanager
def _sigint_flag() -> Iterator[Callable[[], bool]]:
    """Turn Ctrl-C into a flag checked between steps, so a step is never half-applied."""
    hit = {"flag": False}
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return

    def handler(signum: int, frame: Any) -> None:
        if hit["flag"]:  # second Ctrl-C: give up at once
            raise KeyboardInterrupt
        hit["flag"] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: hit["flag"]
    finally:
        signal.signal(signal.SIGINT, previous)

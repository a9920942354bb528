"""Sequential: a stack of layers with Keras's user interface.

>>> import cnnlab
>>> model = cnnlab.seed_model()
>>> model.count_params()
1134426
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.errors import InvalidArgumentError, NonFiniteError, ShapeError
from cnnlab.layers import Activation, Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from cnnlab.layers.base import Layer, snake_case
from cnnlab.ops import parallel
from cnnlab.ops.losses import categorical_cross_entropy, softmax_cross_entropy
from cnnlab.optimizers import Optimizer, get_optimizer

LOSSES = ("categorical_crossentropy", "sparse_categorical_crossentropy")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during fit(): a checkpoint was saved (if a checkpoint folder was given)."""

    def __init__(self, message: str, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint


@dataclass
class History:
    """What fit() returns: per-epoch metrics, as Keras's ``History``."""

    history: dict[str, list[float]] = field(default_factory=dict)
    epoch: list[int] = field(default_factory=list)

    def append(self, epoch: int, logs: dict[str, float]) -> None:
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(float(v))


class Callback:
    """Hooks into fit(). Set ``model.stop_training = True`` to stop after this epoch."""

    def on_epoch_end(self, model: Sequential, epoch: int, logs: dict[str, float]) -> None:
        pass

    def on_batch_end(self, model: Sequential, step: int, logs: dict[str, float]) -> None:
        pass


def _as_int_labels(y: np.ndarray, num_classes: int, what: str = "y") -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == num_classes:
        return y.argmax(axis=1)
    if y.ndim != 1:
        raise ShapeError(
            f"{what} has shape {y.shape}: expected (N,) integer labels or (N, {num_classes}) "
            "one-hot rows"
        )
    if y.size and (not np.issubdtype(y.dtype, np.integer)):
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise InvalidArgumentError(f"{what} must hold integer class labels")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        bad = int(np.flatnonzero((y < 0) | (y >= num_classes))[0])
        raise InvalidArgumentError(
            f"{what}[{bad}] = {y[bad]} is not a class label: expected 0..{num_classes - 1}"
        )
    return y.astype(np.int64)


class Sequential:
    """A linear stack of layers.

    Args:
        layers: the layers, first to last.
        input_shape: shape of one example, batch axis excluded, e.g. ``(28, 28, 1)``.
            Given here, the model is built at once and every shape is checked
            before any data flows.
        name: shown by :meth:`summary`.
        seed: seeds weight initialisation, shuffling and dropout. A seeded run
            is reproducible bit for bit on the same machine.
    """

    def __init__(
        self,
        layers: Sequence[Layer] | None = None,
        input_shape: Sequence[int] | None = None,
        name: str = "sequential",
        seed: int | None = None,
    ) -> None:
        self.layers: list[Layer] = []
        self.name = name
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**63))
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.input_shape: tuple[int, ...] | None = None
        self.optimizer: Optimizer | None = None
        self.loss = "categorical_crossentropy"
        self.metrics: list[str] = ["accuracy"]
        self.stop_training = False
        self.compiled = False
        for layer in layers or []:
            self.add(layer)
        if input_shape is not None:
            self.build(input_shape)

    # ------------------------------------------------------------------ structure
    def add(self, layer: Layer) -> None:
        if not isinstance(layer, Layer):
            raise InvalidArgumentError(
                f"Sequential.add expects a Layer, got {type(layer).__name__}"
            )
        if self.input_shape is not None:
            raise InvalidArgumentError("add layers before build(); the model is already built")
        self.layers.append(layer)

    def build(self, input_shape: Sequence[int]) -> None:
        """Name the layers (Keras style), create their weights, infer every shape."""
        try:
            shape = tuple(int(d) for d in input_shape)
        except (TypeError, ValueError):
            raise ShapeError(f"input_shape must be a tuple of ints, got {input_shape!r}") from None
        if not shape or min(shape) <= 0:
            raise ShapeError(f"input_shape must be positive ints, got {input_shape!r}")
        if not self.layers:
            raise InvalidArgumentError("a Sequential model needs at least one layer")
        counts: dict[str, int] = {}
        taken = {layer.name for layer in self.layers if layer.name}
        for layer in self.layers:
            if layer.name is None:
                base = snake_case(layer.kind)
                while True:
                    k = counts.get(base, 0)
                    counts[base] = k + 1
                    candidate = base if k == 0 else f"{base}_{k}"
                    if candidate not in taken:
                        break
                layer.name = candidate
                taken.add(candidate)
        names = [layer.name for layer in self.layers]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise InvalidArgumentError(f"layer names must be unique, repeated: {sorted(dup)}")
        self.input_shape = shape
        current = shape
        for i, layer in enumerate(self.layers):
            try:
                current = layer.build(current, self.rng)
            except ShapeError as e:
                raise ShapeError(
                    f"layer {i} '{layer.name}' ({layer.kind}) cannot take input of shape "
                    f"(None, {', '.join(map(str, current))}): {e}"
                ) from None
            layer.need_input_grad = i > 0
        self.output_shape = current

    @property
    def built(self) -> bool:
        return self.input_shape is not None

    def _require_built(self) -> None:
        if not self.built:
            raise InvalidArgumentError(
                "the model is not built: give input_shape= to Sequential(...) or call build()"
            )

    def get_layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise InvalidArgumentError(
            f"no layer named {name!r}; layers: {', '.join(str(la.name) for la in self.layers)}"
        )

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    def get_weights(self) -> list[np.ndarray]:
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        weights = list(weights)
        expected = sum(len(layer.weights) for layer in self.layers)
        if len(weights) != expected:
            raise InvalidArgumentError(f"expected {expected} weight arrays, got {len(weights)}")
        chunks, i = [], 0
        for layer in self.layers:  # check every layer before changing any
            n = len(layer.weights)
            chunks.append(weights[i : i + n])
            layer.check_weights(chunks[-1])
            i += n
        for layer, chunk in zip(self.layers, chunks, strict=True):
            layer.set_weights(chunk)

    def get_config(self) -> dict[str, Any]:
        """The architecture as JSON-ready data (what model files store)."""
        self._require_built()
        return {
            "class_name": "Sequential",
            "name": self.name,
            "input_shape": list(self.input_shape or ()),
            "layers": [
                {"class_name": layer.kind, "config": layer.get_config()} for layer in self.layers
            ],
        }

    def summary(self, print_fn: Callable[[str], Any] | None = print) -> str:
        """Keras's table: layer (type), output shape, parameter count, totals."""
        self._require_built()
        names = [f" {layer.name} ({layer.kind})" for layer in self.layers]
        shapes = ["(None, " + ", ".join(str(d) for d in layer.output_shape or ()) + ")"
                  for layer in self.layers]
        widths = (max(29, *(len(n) + 2 for n in names)), max(26, *(len(s) + 2 for s in shapes)), 10)
        width = sum(widths)

        def row(*cells: str) -> str:
            return "".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))

        rule = "_" * width
        lines = [f'Model: "{self.name}"', rule, row(" Layer (type)", "Output Shape", "Param #")]
        lines.append("=" * width)
        for layer, name, shape in zip(self.layers, names, shapes, strict=True):
            lines.append(row(name, shape, f"{layer.count_params()}"))
            lines.append("")
        total = self.count_params()
        lines[-1] = "=" * width
        lines += [
            f"Total params: {total:,}",
            f"Trainable params: {total:,}",
            "Non-trainable params: 0",
            rule,
        ]
        text = "\n".join(line.rstrip() for line in lines)
        if print_fn is not None:
            print_fn(text)
        return text

    # ------------------------------------------------------------------ compile
    def compile(
        self,
        optimizer: str | Optimizer | dict[str, Any] = "adam",
        loss: str = "categorical_crossentropy",
        metrics: Sequence[str] = ("accuracy",),
    ) -> None:
        """Choose the optimizer, the loss and the metrics.

        ``loss`` is ``"categorical_crossentropy"`` (labels may be one-hot rows or
        integers) or ``"sparse_categorical_crossentropy"`` (same computation).
        When the last layer is a softmax, the loss is computed from the logits
        with log-sum-exp and the softmax's backward is folded into it.
        """
        self._require_built()
        if loss not in LOSSES:
            raise InvalidArgumentError(f"unknown loss {loss!r}: expected one of {LOSSES}")
        bad = [m for m in metrics if m not in ("accuracy", "acc")]
        if bad:
            raise InvalidArgumentError(f"unknown metrics {bad}: only 'accuracy' is supported")
        self.optimizer = get_optimizer(optimizer)
        self.loss = loss
        self.metrics = ["accuracy"] if metrics else []
        self.compiled = True

    @property
    def _fused_softmax(self) -> bool:
        last = self.layers[-1]
        return isinstance(last, (Activation, Dense, Conv2D)) and last.activation == "softmax"

    @property
    def num_classes(self) -> int:
        self._require_built()
        return int(math.prod(self.output_shape))

    # ------------------------------------------------------------------ data checks
    def _prepare_x(self, x: Any, what: str = "x") -> np.ndarray:
        self._require_built()
        x = np.asarray(x)
        assert self.input_shape is not None
        if x.shape[1:] != self.input_shape:
            if x.ndim == len(self.input_shape) and self.input_shape[-1] == 1 and (
                x.shape[1:] == self.input_shape[:-1]
            ):
                x = x[..., None]  # (N, H, W) grayscale: add the channel axis
            elif x.shape == self.input_shape:
                raise ShapeError(
                    f"{what} has shape {x.shape}, one example; the model expects a batch "
                    f"(N, {', '.join(map(str, self.input_shape))}): use x[None]"
                )
            else:
                raise ShapeError(
                    f"{what} has shape {x.shape}; the model expects "
                    f"(N, {', '.join(map(str, self.input_shape))})"
                )
        if x.dtype.kind not in "fiub":
            raise InvalidArgumentError(f"{what} must be numeric, got dtype {x.dtype}")
        dtype = self.layers[0].dtype
        if x.dtype != dtype:
            x = x.astype(dtype)
        if not np.isfinite(x).all():
            bad = np.argwhere(~np.isfinite(x))[0]
            raise NonFiniteError(
                f"{what} holds a non-finite value ({x[tuple(bad)]}) at index {tuple(bad.tolist())}"
            )
        return x

    # ------------------------------------------------------------------ computation
    def _forward(self, x: np.ndarray, training: bool, logits: bool = False) -> np.ndarray:
        layers = self.layers
        skip_last = logits and self._fused_softmax and isinstance(layers[-1], Activation)
        with parallel.batch_scope(len(x)):
            for layer in layers[:-1] if skip_last else layers:
                x = layer.forward(x, training)
        if logits and self._fused_softmax and not skip_last:
            raise InvalidArgumentError(
                "fused softmax needs a separate Activation('softmax') as the last layer"
            )
        return x

    def _loss_and_grad(self, out: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Loss and its gradient w.r.t. ``out``: logits when the final softmax is folded
        into the loss (a separate ``Activation('softmax')``), probabilities otherwise."""
        if self._uses_logits():
            return softmax_cross_entropy(out, y)
        return categorical_cross_entropy(out, y)

    def _uses_logits(self) -> bool:
        return self._fused_softmax and isinstance(self.layers[-1], Activation)

    def train_on_batch(self, x: np.ndarray, y: np.ndarray, step: int = 0) -> tuple[float, int]:
        """One step: forward, loss, backward, finiteness check, optimizer update.

        Returns ``(loss, number of correct predictions)``.
        """
        if not self.compiled or self.optimizer is None:
            raise InvalidArgumentError("compile() the model before training it")
        with parallel.batch_scope(len(x)):
            return self._train_step(x, y, step)

    def _train_step(self, x: np.ndarray, y: np.ndarray, step: int) -> tuple[float, int]:
        logits = self._uses_logits()
        out = self._forward(x, training=True, logits=logits)
        loss, grad = self._loss_and_grad(out, y)
        if not math.isfinite(loss):
            raise NonFiniteError(f"step {step}: the loss is {loss}; {self._locate_nonfinite(x)}")
        labels = y if y.ndim == 1 else y.argmax(axis=1)
        correct = int((out.argmax(axis=1) == labels).sum())
        layers = self.layers[:-1] if logits else self.layers
        for layer in reversed(layers):
            grad = layer.backward(grad)
        params, grads = [], []
        for layer in self.layers:
            for w, g in zip(layer.weights, layer.grads, strict=True):
                if not np.isfinite(g.sum()):
                    raise NonFiniteError(
                        f"step {step}: a non-finite gradient in layer '{layer.name}' "
                        f"({layer.kind})"
                    )
                params.append(w)
                grads.append(g)
        self.optimizer.step(params, grads)
        return loss, correct

    def _locate_nonfinite(self, x: np.ndarray) -> str:
        """Name the first layer whose weights or output hold NaN or infinity."""
        for layer in self.layers:
            for wname, w in zip(layer.weight_names, layer.weights, strict=True):
                if not np.isfinite(w).all():
                    return f"layer '{layer.name}' ({layer.kind}) has a non-finite {wname}"
            x = layer.forward(x, training=False)
            if not np.isfinite(x).all():
                return (
                    f"the output of layer '{layer.name}' ({layer.kind}) is the first non-finite one"
                )
        return "every layer's output is finite (the loss itself overflowed)"

    def predict(self, x: Any, batch_size: int = 1000) -> np.ndarray:
        """Class probabilities (the last layer's outputs), batch by batch."""
        _check_batch_size(batch_size)
        x = self._prepare_x(x)
        outs = [self._forward(x[i : i + batch_size], training=False)
                for i in range(0, len(x), batch_size)]
        if not outs:
            return np.zeros((0, *self.output_shape), dtype=self.layers[-1].dtype)
        return np.concatenate(outs)

    def feature_maps(self, x: Any) -> list[tuple[str, np.ndarray]]:
        """Every layer's output for ``x``, in order: ``[(layer name, array), ...]``."""
        x = self._prepare_x(x)
        maps = []
        for layer in self.layers:
            x = layer.forward(x, training=False)
            maps.append((str(layer.name), x))
        return maps

    def evaluate(
        self, x: Any, y: Any, batch_size: int = 1000, verbose: int = 0
    ) -> tuple[float, float]:
        """Mean loss and accuracy on ``(x, y)``: the slides' ``Test loss`` and ``Test accuracy``."""
        _check_batch_size(batch_size)
        x = self._prepare_x(x)
        y_arr = np.asarray(y)
        labels = _as_int_labels(y_arr, self.num_classes)
        if len(labels) != len(x):
            raise ShapeError(f"x has {len(x)} examples but y has {len(labels)} labels")
        if len(x) == 0:
            raise InvalidArgumentError("evaluate() needs at least one example")
        total_loss, correct = 0.0, 0
        logits = self._uses_logits()
        for i in range(0, len(x), batch_size):
            xb, yb = x[i : i + batch_size], labels[i : i + batch_size]
            out = self._forward(xb, training=False, logits=logits)
            loss, _ = self._loss_and_grad(out, yb)
            total_loss += loss * len(xb)
            correct += int((out.argmax(axis=1) == yb).sum())
        return total_loss / len(x), correct / len(x)

    # ------------------------------------------------------------------ training
    def fit(
        self,
        x: Any,
        y: Any,
        epochs: int = 1,
        batch_size: int = 32,
        validation_data: tuple[Any, Any] | None = None,
        shuffle: bool = True,
        verbose: int = 1,
        callbacks: Sequence[Callback] = (),
        checkpoint_dir: str | Path | None = None,
        checkpoint_every: int | None = None,
        resume: bool = False,
    ) -> History:
        """Train for ``epochs`` passes over ``(x, y)`` in shuffled mini-batches.

        Args:
            validation_data: ``(x_val, y_val)`` evaluated after each epoch.
            verbose: 1 shows a progress bar per epoch (loss, accuracy, images/s,
                time left); 0 is silent.
            callbacks: :class:`Callback` instances.
            checkpoint_dir: where checkpoints go. One is written atomically
                every ``checkpoint_every`` steps (if given), at the end of each
                epoch, on Ctrl-C, and when a NaN stops training.
            resume: continue from the checkpoint in ``checkpoint_dir``; the
                run ends with the same weights, bit for bit, as one that was
                never interrupted.
        """
        from cnnlab import checkpoint as ckpt  # local: checkpoint imports this module

        if not self.compiled:
            raise InvalidArgumentError("compile() the model before fit()")
        for name, val in (("epochs", epochs), ("batch_size", batch_size)):
            if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val <= 0:
                raise InvalidArgumentError(f"{name} must be a positive int, got {val!r}")
        if checkpoint_every is not None and (
            isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int)
            or checkpoint_every <= 0
        ):
            raise InvalidArgumentError(
                f"checkpoint_every must be a positive int, got {checkpoint_every!r}"
            )
        if (resume or checkpoint_every) and checkpoint_dir is None:
            raise InvalidArgumentError("resume and checkpoint_every need a checkpoint_dir")
        x = self._prepare_x(x)
        labels = _as_int_labels(np.asarray(y), self.num_classes)
        if len(labels) != len(x):
            raise ShapeError(f"x has {len(x)} examples but y has {len(labels)} labels")
        if len(x) == 0:
            raise InvalidArgumentError("fit() needs at least one example")
        if validation_data is not None:
            x_val = self._prepare_x(validation_data[0], "validation x")
            y_val = _as_int_labels(np.asarray(validation_data[1]), self.num_classes,
                                   "validation y")

        state = ckpt.TrainState(epoch=0, step=0, history=History())
        if resume:
            state = ckpt.load_checkpoint(self, checkpoint_dir)
        steps_per_epoch = math.ceil(len(x) / batch_size)
        self.stop_training = False
        history = state.history
        assert self.optimizer is not None

        def save(st: ckpt.TrainState) -> Path | None:
            if checkpoint_dir is None:
                return None
            return ckpt.save_checkpoint(self, checkpoint_dir, st)

        with _sigint_flag() as interrupted:
            for epoch in range(state.epoch, epochs):
                if state.perm is None:
                    state.perm = self.rng.permutation(len(x)) if shuffle else np.arange(len(x))
                    state.loss_sum, state.correct, state.seen = 0.0, 0, 0
                state.epoch = epoch
                t0 = time.perf_counter() - state.elapsed
                bar = _progress(verbose, steps_per_epoch, epoch, epochs, state.step)
                for step in range(state.step, steps_per_epoch):
                    idx = state.perm[step * batch_size : (step + 1) * batch_size]
                    global_step = epoch * steps_per_epoch + step
                    try:
                        loss, correct = self.train_on_batch(x[idx], labels[idx], global_step)
                    except NonFiniteError as e:
                        path = ckpt.last_checkpoint(checkpoint_dir)
                        where = f"; the last good checkpoint is {path}" if path else ""
                        raise NonFiniteError(f"{e}: training stopped{where}") from None
                    state.loss_sum += loss * len(idx)
                    state.correct += correct
                    state.seen += len(idx)
                    state.step = step + 1
                    state.elapsed = time.perf_counter() - t0
                    logs = {"loss": state.loss_sum / state.seen,
                            "accuracy": state.correct / state.seen}
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{logs['loss']:.4f}", acc=f"{logs['accuracy']:.4f}",
                                        img_s=f"{state.seen / max(state.elapsed, 1e-9):.0f}",
                                        refresh=False)
                    for cb in callbacks:
                        cb.on_batch_end(self, global_step, logs)
                    if checkpoint_every and (global_step + 1) % checkpoint_every == 0:
                        save(state)
                    if interrupted() and step + 1 < steps_per_epoch:
                        if bar is not None:
                            bar.close()
                        path = save(state)
                        raise TrainingInterrupted(
                            f"interrupted at epoch {epoch + 1}, step {step + 1}", path
                        )
                if bar is not None:
                    bar.close()
                logs = {"loss": state.loss_sum / state.seen,
                        "accuracy": state.correct / state.seen}
                if validation_data is not None:
                    vl, va = self.evaluate(x_val, y_val)
                    logs.update(val_loss=vl, val_accuracy=va)
                logs["time"] = time.perf_counter() - t0
                history.append(epoch, logs)
                if verbose:
                    _print_epoch(epoch, epochs, logs)
                state.epoch, state.step, state.perm, state.elapsed = epoch + 1, 0, None, 0.0
                for cb in callbacks:
                    cb.on_epoch_end(self, epoch, logs)
                path = save(state)
                if interrupted():
                    raise TrainingInterrupted(f"interrupted after epoch {epoch + 1}", path)
                if self.stop_training:
                    break
        return history

    def save(self, path: str | Path, training_config: dict[str, Any] | None = None) -> Path:
        """Write the model (safetensors weights + JSON architecture), atomically."""
        from cnnlab.serialization import save_model

        return save_model(self, path, training_config)

    def __repr__(self) -> str:
        return f"Sequential({self.layers!r})"


def _check_batch_size(batch_size: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or (
        batch_size <= 0
    ):
        raise InvalidArgumentError(f"batch_size must be a positive int, got {batch_size!r}")


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


def _progress(verbose: int, total: int, epoch: int, epochs: int, initial: int) -> Any:
    if not verbose:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=f"Epoch {epoch + 1}/{epochs}", unit="step",
                leave=True, dynamic_ncols=True, mininterval=0.5)


def _print_epoch(epoch: int, epochs: int, logs: dict[str, float]) -> None:
    parts = [f"{k}: {v:.4f}" for k, v in logs.items() if k != "time"]
    print(f"Epoch {epoch + 1}/{epochs} - {logs['time']:.1f}s - " + " - ".join(parts), flush=True)


def seed_model(seed: int | None = None, input_shape: tuple[int, int, int] = (28, 28, 1),
               num_classes: int = 10) -> Sequential:
    """The slides' MNIST model, layer for layer (1,134,426 parameters).

    Conv2D(16, 2, same, relu) -> MaxPooling2D(2) -> Conv2D(128, 3, relu) ->
    Conv2D(256, 3, relu) -> MaxPooling2D(2) -> Dropout(0.25) -> Flatten ->
    Dense(128, relu) -> Dropout(0.5) -> Dense(10) -> Activation(softmax).
    """
    return Sequential(
        [
            Conv2D(16, 2, padding="same", activation="relu"),
            MaxPooling2D(2),
            Conv2D(128, 3, activation="relu"),
            Conv2D(256, 3, activation="relu"),
            MaxPooling2D(2),
            Dropout(0.25),
            Flatten(),
            Dense(128, activation="relu"),
            Dropout(0.5),
            Dense(num_classes),
            Activation("softmax"),
        ],
        input_shape=input_shape,
        seed=seed,
    )


def as_labels(y: Any, num_classes: int) -> np.ndarray:
    """Integer labels from integer or one-hot ``y`` (validated)."""
    return _as_int_labels(np.asarray(y), num_classes)

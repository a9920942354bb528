"""Sequential: a stack of layers with Keras's user interface.

>>> from cnnlab.layers import Dense
>>> model = Sequential([Dense(3)], input_shape=(4,), seed=0)
>>> model.count_params()
15
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.backend import array_module, get_device, module_for, to_device, to_numpy
from cnnlab.errors import InvalidArgumentError, NonFiniteError, ShapeError
from cnnlab.layers import Activation
from cnnlab.layers.base import Layer, snake_case
from cnnlab.ops import parallel
from cnnlab.ops.losses import (
    categorical_cross_entropy,
    check_label_smoothing,
    softmax_cross_entropy,
)
from cnnlab.optimizers import Optimizer, get_optimizer
from cnnlab.pixels import scale_pixels
from cnnlab.serialization import save_model
from cnnlab.training import (
    Callback,
    GradientReducer,
    History,
    local_gradients,
    regularization_loss,
    train_step,
)
from cnnlab.training import fit as training_fit
from cnnlab.training.data import BatchTransform
from cnnlab.validation import check_positive_int

LOSSES = ("categorical_crossentropy", "sparse_categorical_crossentropy")
#: Keras's class names of the losses, as a serialized loss names them.
LOSS_CLASSES = {"CategoricalCrossentropy": "categorical_crossentropy",
                "SparseCategoricalCrossentropy": "sparse_categorical_crossentropy"}


def _parse_loss(loss: Any, label_smoothing: float | None) -> tuple[str, float]:
    """``(loss name, label smoothing)`` from compile's ``loss`` and ``label_smoothing``.

    ``loss`` is a name of :data:`LOSSES` or Keras's serialized loss,
    ``{"class_name": "CategoricalCrossentropy", "config": {"label_smoothing": s}}``
    (what a model file's ``training_config`` keeps when smoothing is on).
    """
    smoothing = None if label_smoothing is None else check_label_smoothing(label_smoothing)
    if isinstance(loss, dict):
        name = LOSS_CLASSES.get(loss.get("class_name"))  # type: ignore[arg-type]
        config = loss.get("config", {})
        if name is None or not isinstance(config, dict) or set(config) - {"label_smoothing"}:
            raise InvalidArgumentError(
                f"unknown loss {loss!r:.120}: expected one of {LOSSES} or "
                '{"class_name": "CategoricalCrossentropy", "config": {"label_smoothing": s}}'
            )
        from_dict = check_label_smoothing(config.get("label_smoothing", 0.0))
        if smoothing is not None and smoothing != from_dict:
            raise InvalidArgumentError(
                f"label_smoothing={smoothing} disagrees with the loss's {from_dict}: give one"
            )
        loss, smoothing = name, from_dict
    if loss not in LOSSES:
        raise InvalidArgumentError(f"unknown loss {loss!r}: expected one of {LOSSES}")
    smoothing = smoothing or 0.0
    if smoothing and loss != "categorical_crossentropy":
        raise InvalidArgumentError(
            "label_smoothing needs loss='categorical_crossentropy' (Keras's "
            "SparseCategoricalCrossentropy has none); integer labels work with it too"
        )
    return str(loss), smoothing


#: The most bytes of weights a model may have: a spec that asks for more is refused
#: before anything is allocated (raise it for a bigger machine).
MAX_WEIGHT_BYTES = 4 << 30


def _layer_shape_error(index: int, layer: Layer, shape: tuple[int, ...],
                       error: ShapeError) -> ShapeError:
    return ShapeError(
        f"layer {index} '{layer.name}' ({layer.kind}) cannot take input of shape "
        f"(None, {', '.join(map(str, shape))}): {error}"
    )


def _mib(nbytes: int) -> str:
    return f"{nbytes / 2**20:,.1f} MiB"


@dataclass(frozen=True)
class LossHead:
    """The cross-entropy, decided once at compile: from the logits or from probabilities.

    With ``from_logits`` (the last layer is a separate ``Activation("softmax")``)
    training skips that layer and computes the loss from its input with
    log-sum-exp; the softmax's backward folds into the loss's gradient,
    ``softmax(z) - label``. Otherwise the loss reads the probabilities.
    ``label_smoothing = s`` replaces the labels by ``label * (1 - s) + s / K``
    in both (Keras's ``CategoricalCrossentropy(label_smoothing=s)``).
    """

    from_logits: bool
    label_smoothing: float = 0.0

    @classmethod
    def for_layers(cls, layers: Sequence[Layer], label_smoothing: float = 0.0) -> LossHead:
        last = layers[-1]
        return cls(isinstance(last, Activation) and last.activation == "softmax",
                   label_smoothing)

    def __call__(self, out: Any, y: Any) -> tuple[float, Any]:
        """Mean loss and its gradient with respect to ``out``."""
        if self.from_logits:
            return softmax_cross_entropy(out, y, label_smoothing=self.label_smoothing)
        return categorical_cross_entropy(out, y, label_smoothing=self.label_smoothing)


def _is_lazy_array(x: Any) -> bool:
    """An ndarray, or an object that reads rows when indexed (``shape``, ``dtype``,
    ``__getitem__``: e.g. :class:`cnnlab.datasets.IndexedArray` over a memory map)."""
    return isinstance(x, np.ndarray) or all(
        hasattr(x, a) for a in ("shape", "dtype", "__getitem__", "__len__"))


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
        #: Where the weights live: ``"cpu"`` (NumPy) or ``"gpu"`` (CuPy); see :meth:`to`.
        self.device = "cpu"
        self.input_shape: tuple[int, ...] | None = None
        self.optimizer: Optimizer | None = None
        #: The loss's name; Keras's serialized loss (a dict) when label smoothing is on,
        #: which is what model files keep in ``training_config["loss"]``.
        self.loss: str | dict[str, Any] = "categorical_crossentropy"
        self.label_smoothing = 0.0
        self.metrics: list[str] = ["accuracy"]
        self.stop_training = False
        self.compiled = False
        self._loss_head: LossHead | None = None
        #: One name per output class (kept in model files); None: the indices.
        self.class_names: list[str] | None = None
        #: How an image file becomes this model's input (kept in model files):
        #: ``{"mode": "digit"}`` (the slides' MNIST preparation) or
        #: ``{"mode": "resize", "size": [H, W], "color": "grayscale" | "rgb"}``.
        self.preprocessing: dict[str, Any] | None = None
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
        self._check_plan(shape)
        self.input_shape = shape
        current = shape
        for i, layer in enumerate(self.layers):
            try:
                current = layer.build(current, self.rng)
            except ShapeError as e:
                raise _layer_shape_error(i, layer, current, e) from None
            layer.need_input_grad = i > 0
        self.output_shape = current
        if self.device != "cpu":  # placed before it was built: the new weights follow
            self._place()

    # ------------------------------------------------------------------ device
    def to(self, device: str) -> Sequential:
        """Place the model on ``device``, ``"cpu"`` or ``"gpu"`` (CuPy); returns the model.

        Moves every layer's weights and gradients and the optimizer's slots
        there, once; training and inference then keep them there, and only each
        input batch goes over (the results come back as NumPy arrays:
        :meth:`predict`, :meth:`evaluate`, the loss and accuracy of ``fit``).
        Without CuPy or a CUDA device, ``to("gpu")`` raises
        :class:`~cnnlab.errors.DeviceError` naming what is missing. Model files
        and checkpoints are the same from either device: saving copies to the
        host, :func:`cnnlab.load_model` returns a CPU model.

        >>> from cnnlab.layers import Dense
        >>> model = Sequential([Dense(3)], input_shape=(4,), seed=0)
        >>> model.to("cpu").device
        'cpu'
        """
        self.device = get_device(device)
        if self.built:
            self._place()
        return self

    @property
    def xp(self) -> Any:
        """The array module of the model's device (``numpy`` on the CPU)."""
        return np if self.device == "cpu" else module_for(self.device)

    def _place(self) -> None:
        for layer in self.layers:
            layer.to_device(self.device)
        if self.optimizer is not None:
            self.optimizer.to_device(self.device)

    def _on_device(self, x: Any) -> Any:
        """An input batch moved to the model's device (as it is on the CPU)."""
        return x if self.device == "cpu" else to_device(x, self.device)

    def _check_plan(self, shape: tuple[int, ...]) -> None:
        """Every layer's output shape and weight sizes, before any weight is allocated.

        Raises ShapeError naming the first layer that cannot take its input, and
        InvalidArgumentError naming the layer past which the weights would exceed
        ``MAX_WEIGHT_BYTES``.
        """
        current, total = shape, 0
        for i, layer in enumerate(self.layers):
            try:
                out = layer.compute_output_shape(current)
                shapes = layer.weight_shapes(current)
            except ShapeError as e:
                raise _layer_shape_error(i, layer, current, e) from None
            nbytes = sum(math.prod(s) for s in shapes) * layer.dtype.itemsize
            total += nbytes
            if total > MAX_WEIGHT_BYTES:
                raise InvalidArgumentError(
                    f"layer {i} '{layer.name}' ({layer.kind}) would need {_mib(nbytes)} of "
                    f"weights {shapes}, bringing the model to {_mib(total)}: over the limit "
                    f"of {_mib(MAX_WEIGHT_BYTES)} (cnnlab.model.MAX_WEIGHT_BYTES); nothing "
                    "was allocated"
                )
            current = out

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

    def to_json(self, indent: int | None = 2) -> str:
        """The architecture as JSON (:meth:`get_config`): what a spec file holds and
        :func:`cnnlab.model_from_json` reads back."""
        return json.dumps(self.get_config(), indent=indent)

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
        trainable = sum(layer.count_trainable_params() for layer in self.layers)
        lines[-1] = "=" * width
        lines += [
            f"Total params: {total:,}",
            f"Trainable params: {trainable:,}",
            f"Non-trainable params: {total - trainable:,}",
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
        loss: str | dict[str, Any] = "categorical_crossentropy",
        metrics: Sequence[str] = ("accuracy",),
        label_smoothing: float | None = None,
    ) -> None:
        """Choose the optimizer, the loss and the metrics.

        ``loss`` is ``"categorical_crossentropy"`` (labels may be one-hot rows or
        integers) or ``"sparse_categorical_crossentropy"`` (same computation).
        When the last layer is a separate ``Activation("softmax")``, training
        computes the loss from the logits with log-sum-exp and folds the
        softmax's backward into it (:class:`LossHead`); decided here, once.

        ``label_smoothing=s`` (in [0, 1]; with ``categorical_crossentropy``)
        trains against ``label * (1 - s) + s / K``, as Keras's
        ``CategoricalCrossentropy(label_smoothing=s)``; ``evaluate`` and
        ``val_loss`` report that same smoothed loss, as Keras's do. ``loss`` may
        also be Keras's serialized loss, ``{"class_name":
        "CategoricalCrossentropy", "config": {"label_smoothing": s}}``: with
        smoothing on, :attr:`loss` is that dict, so a model file's
        ``training_config`` keeps it and ``load_model`` recompiles with it.

        Layers' ``kernel_regularizer`` penalties are added to the loss that
        training and ``evaluate`` report (Keras's ``model.losses``).
        """
        self._require_built()
        name, smoothing = _parse_loss(loss, label_smoothing)
        bad = [m for m in metrics if m not in ("accuracy", "acc")]
        if bad:
            raise InvalidArgumentError(f"unknown metrics {bad}: only 'accuracy' is supported")
        self.optimizer = get_optimizer(optimizer)
        self._loss_head = LossHead.for_layers(self.layers, smoothing)
        self.label_smoothing = smoothing
        self.loss = name if not smoothing else {
            "class_name": "CategoricalCrossentropy", "config": {"label_smoothing": smoothing}}
        self.metrics = ["accuracy"] if metrics else []
        self.compiled = True

    @property
    def loss_head(self) -> LossHead:
        """The loss computation :meth:`compile` chose (the default one before it)."""
        if self._loss_head is None:
            self._require_built()
            return LossHead.for_layers(self.layers)
        return self._loss_head

    def class_name(self, index: int) -> str:
        """The name of class ``index`` (its number when the model has no names)."""
        return self.class_names[index] if self.class_names is not None else str(index)

    @property
    def num_classes(self) -> int:
        self._require_built()
        return int(math.prod(self.output_shape))

    # ------------------------------------------------------------------ data checks
    def check_inputs(self, x: Any, what: str = "x") -> np.ndarray:
        """``x`` checked against the model's input (shape, numeric, finite), not copied.

        ``(N, H, W)`` gets the channel axis of a one-channel model (a view).
        A memory-mapped array stays one: floats are checked chunk by chunk.
        """
        self._require_built()
        if not _is_lazy_array(x):
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
        if x.dtype.kind == "f":
            step = max(1, (64 << 20) // max(1, x[:1].nbytes))  # about 64 MB at a time
            for lo in range(0, len(x), step):
                part = x[lo : lo + step]
                if not np.isfinite(part).all():
                    bad = np.argwhere(~np.isfinite(part))[0]
                    bad[0] += lo
                    raise NonFiniteError(
                        f"{what} holds a non-finite value ({x[tuple(bad)]}) at index "
                        f"{tuple(bad.tolist())}"
                    )
        return x

    def cast_inputs(self, x: np.ndarray) -> np.ndarray:
        """Checked inputs as the first layer's dtype: 8-bit pixels are scaled to [0, 1]
        (:func:`cnnlab.pixels.scale_pixels`); other numbers are used as they are."""
        dtype = self.layers[0].dtype
        if x.dtype == np.uint8:
            return scale_pixels(x, dtype)
        return x if x.dtype == dtype else x.astype(dtype)

    def _prepare_x(self, x: Any, what: str = "x") -> np.ndarray:
        return self.cast_inputs(self.check_inputs(x, what))

    def check_labels(self, y: Any, count: int, what: str = "x") -> np.ndarray:
        """Integer labels from integers or one-hot rows, one per input."""
        labels = _as_int_labels(np.asarray(y), self.num_classes,
                                "y" if what == "x" else f"{what.removesuffix(' x')} y")
        if len(labels) != count:
            raise ShapeError(f"{what} has {count} examples but y has {len(labels)} labels")
        return labels

    def prepare_batch(self, x: Any, y: Any, what: str = "x") -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` checked and converted: inputs of the model's shape and dtype,
        integer labels (from integers or one-hot rows), as many labels as inputs."""
        x = self._prepare_x(x, what)
        return x, self.check_labels(y, len(x), what)

    # ------------------------------------------------------------------ computation
    def _forward(self, x: np.ndarray, layers: Sequence[Layer] | None = None) -> np.ndarray:
        """Inference through ``layers`` (default: all), batch-parallel for large batches."""
        x = self._on_device(x)
        with parallel.batch_scope(len(x), self.xp):
            for layer in self.layers if layers is None else layers:
                x = layer.forward(x, False)
        return x

    def train_on_batch(self, x: Any, y: Any, step: int = 0) -> tuple[float, int]:
        """One step: forward, loss, backward, finiteness check, optimizer update.

        Returns ``(loss, number of correct predictions)``.
        """
        if not self.compiled or self.optimizer is None:
            raise InvalidArgumentError("compile() the model before training it")
        x, labels = self.prepare_batch(x, y)
        with parallel.batch_scope(len(x), self.xp):
            return train_step(self, x, labels, step)

    def locate_nonfinite(self, x: np.ndarray) -> str:
        """Name the first layer whose weights or output hold NaN or infinity."""
        x = self._on_device(x)
        xp = array_module(x)
        for layer in self.layers:
            for wname, w in zip(layer.weight_names, layer.weights, strict=True):
                if not xp.isfinite(w).all():
                    return f"layer '{layer.name}' ({layer.kind}) has a non-finite {wname}"
            x = layer.forward(x, training=False)
            if not xp.isfinite(x).all():
                return (
                    f"the output of layer '{layer.name}' ({layer.kind}) is the first non-finite one"
                )
        return "every layer's output is finite (the loss itself overflowed)"

    def predict(self, x: Any, batch_size: int = 1000) -> np.ndarray:
        """Class probabilities (the last layer's outputs), batch by batch."""
        check_positive_int(batch_size, "batch_size")
        x = self.check_inputs(x)
        outs = [to_numpy(self._forward(self.cast_inputs(x[i : i + batch_size])))
                for i in range(0, len(x), batch_size)]
        if not outs:
            return np.zeros((0, *self.output_shape), dtype=self.layers[-1].dtype)
        return np.concatenate(outs)

    def feature_maps(self, x: Any) -> list[tuple[str, np.ndarray]]:
        """Every layer's output for ``x``, in order: ``[(layer name, array), ...]``."""
        x = self._on_device(self._prepare_x(x))
        maps = []
        for layer in self.layers:
            x = layer.forward(x, training=False)
            maps.append((str(layer.name), to_numpy(x)))
        return maps

    def evaluate(
        self, x: Any, y: Any, batch_size: int = 1000, verbose: int = 0
    ) -> tuple[float, float]:
        """Mean loss and accuracy on ``(x, y)``: the slides' ``Test loss`` and ``Test accuracy``.

        The loss is the compiled one (label smoothing included) plus the layers'
        weight penalties (``kernel_regularizer``), as Keras's ``evaluate`` reports it.
        """
        check_positive_int(batch_size, "batch_size")
        x = self.check_inputs(x)
        labels = self.check_labels(y, len(x))
        if len(x) == 0:
            raise InvalidArgumentError("evaluate() needs at least one example")
        head = self.loss_head
        layers = self.layers[:-1] if head.from_logits else self.layers
        total_loss, correct = 0.0, 0
        for i in range(0, len(x), batch_size):
            xb, yb = self.cast_inputs(x[i : i + batch_size]), labels[i : i + batch_size]
            out = self._forward(xb, layers)
            loss, _ = head(out, yb)
            total_loss += loss * len(xb)
            correct += int((to_numpy(out.argmax(axis=1)) == yb).sum())
        return total_loss / len(x) + regularization_loss(self.layers), correct / len(x)

    # ------------------------------------------------------------------ training
    def fit(
        self,
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
        """Train for ``epochs`` passes over the data in mini-batches.

        Args:
            x, y: inputs and labels (integers or one-hot rows), shuffled into
                mini-batches of ``batch_size`` each epoch (``shuffle=True``);
                ``x`` may be uint8 pixels (scaled to [0, 1] batch by batch) and
                memory-mapped (``np.load(path, mmap_mode="r")``), larger than memory;
                or ``x`` alone: any re-iterable object yielding ``(x_batch,
                y_batch)`` pairs (see :mod:`cnnlab.training.data`).
            validation_data: ``(x_val, y_val)``, or an iterable of batches,
                evaluated after each epoch.
            verbose: 1 shows a progress bar per epoch (loss, accuracy, images/s,
                time left) and a line of metrics; 0 is silent.
            callbacks: :class:`~cnnlab.training.Callback` instances (Keras's hooks).
            checkpoint_dir: where checkpoints go. One is written atomically
                every ``checkpoint_every`` steps (if given), at the end of each
                epoch, on Ctrl-C, and when a NaN stops training.
            resume: continue from the checkpoint in ``checkpoint_dir``; the
                run ends with the same weights, bit for bit, as one that was
                never interrupted.
            reduce_gradients: combines the gradients in place before each
                update (data-parallel training); by default nothing to combine.
            augment: ``augment(batch, rng)`` returns a transformed training batch
                (e.g. :class:`cnnlab.datasets.augment.Augment`), drawing from the
                model's generator; never applied to validation data.

        Returns the :class:`~cnnlab.training.History`. The loop itself is
        :func:`cnnlab.training.fit`.
        """
        return training_fit(
            self, x, y, epochs=epochs, batch_size=batch_size, validation_data=validation_data,
            shuffle=shuffle, verbose=verbose, callbacks=callbacks, checkpoint_dir=checkpoint_dir,
            checkpoint_every=checkpoint_every, resume=resume, reduce_gradients=reduce_gradients,
            augment=augment,
        )

    def save(self, path: str | Path, training_config: dict[str, Any] | None = None) -> Path:
        """Write the model (safetensors weights + JSON architecture), atomically.

        A path ending in ``.keras`` writes a Keras 3 file instead
        (:func:`cnnlab.keras_format.save_keras`).
        """
        if Path(path).suffix.lower() == ".keras":
            from cnnlab.keras_format import save_keras

            return save_keras(self, path, training_config)
        return save_model(self, path, training_config)

    def export_onnx(self, path: str | Path, *, layer_outputs: bool = False,
                    input_dtype: str = "float32") -> Path:
        """Write the model as an ONNX file (opset 17), atomically; needs the ``onnx`` package.

        The graph takes ``(batch, H, W, C)`` float32 input, as :meth:`predict`
        does after scaling 8-bit pixels (``input_dtype="uint8"`` puts that
        scaling in the graph), and outputs what :meth:`predict` returns. See
        :mod:`cnnlab.export.onnx`.

        >>> model.export_onnx("model.onnx")  # doctest: +SKIP
        PosixPath('model.onnx')
        """
        from cnnlab.export.onnx import export_onnx

        return export_onnx(self, path, layer_outputs=layer_outputs, input_dtype=input_dtype)

    def __repr__(self) -> str:
        return f"Sequential({self.layers!r})"


def as_labels(y: Any, num_classes: int) -> np.ndarray:
    """Integer labels from integer or one-hot ``y`` (validated)."""
    return _as_int_labels(np.asarray(y), num_classes)

"""The slides' figures, and the documentation's pictures, drawn from the library itself.

Every ``*_figure`` function writes one PNG (atomically) and returns its
:class:`~pathlib.Path`. The numbers a figure draws come from a matching
``*_data`` function (or :func:`confusion_matrix`), which tests and callers can
use to check a picture against the model.

Drawing uses :class:`matplotlib.figure.Figure` with the Agg canvas directly,
never ``pyplot``: nothing global (backend, rcParams, current figure) is touched,
so the functions are safe to call from a web server's threads.

Sizes are fixed by ``figsize`` and :data:`DPI` (no tight bounding box), so a
figure's pixel size depends only on its arguments; each docstring gives it.

Any image model works: grayscale or RGB inputs of any size. An RGB input is
drawn in colour; the first convolution of an RGB model is drawn as small
colour images (:func:`filter_images`); the per-class figures name the classes
with ``model.class_name(i)`` (:func:`class_names_for`), long names shortened
by :func:`short_name`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from cnnlab.errors import DataFormatError, InvalidArgumentError, ShapeError
from cnnlab.fileio import atomic_write_bytes
from cnnlab.layers import AveragePooling2D, Conv2D, MaxPooling2D
from cnnlab.model import as_labels
from cnnlab.ops.conv import conv2d_forward_reference
from cnnlab.ops.padding import PADDING_MODES, output_hw, pad2d, resolve_padding
from cnnlab.ops.pooling import avg_pool2d_forward, max_pool2d_forward
from cnnlab.preprocess import scale_pixels
from cnnlab.validation import check_positive_int
from cnnlab.viz.names import DEFAULT_LAYERS, FIGURE_NAMES, FIGURES

DPI = 100
"""Dots per inch of every PNG: a figure of ``w x h`` inches is ``100 w x 100 h`` pixels."""

MAX_IMAGES = 64

PathLike = str | os.PathLike[str]

_RIGHT = "#2e7d32"  # a correct prediction
_WRONG = "#c62828"  # a mistake
_BAR = "#9fb3c8"  # the other classes
_PAD = "#d9d9d9"  # padding cells


# --------------------------------------------------------------------------- helpers
def _save(fig: Figure, path: PathLike) -> Path:
    """Render ``fig`` with Agg and write it to ``path`` atomically."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return atomic_write_bytes(path, buf.getvalue())


def _input_shape(model: Any) -> tuple[int, int, int]:
    shape = getattr(model, "input_shape", None)
    if shape is None or len(shape) != 3:
        raise InvalidArgumentError(
            f"the model takes inputs of shape {shape}; these figures need images (H, W, C)"
        )
    return int(shape[0]), int(shape[1]), int(shape[2])


def as_model_batch(model: Any, images: Any, what: str = "images") -> np.ndarray:
    """Images as the model's input batch: float32 ``(N, H, W, C)``.

    Accepts one image (``(H, W)`` for one channel, or ``(H, W, C)``) or a batch
    (``(N, H, W)`` or ``(N, H, W, C)``). ``uint8`` images are scaled to [0, 1]
    by :func:`cnnlab.preprocess.scale_pixels`, as
    :func:`cnnlab.datasets.to_model_input` does; floats are used as they are.

    Raises:
        ShapeError: the images do not have the model's input shape.
        InvalidArgumentError: the array is not numeric.
    """
    h, w, c = _input_shape(model)
    arr = np.asarray(images)
    if arr.dtype.kind not in "fiu":
        raise InvalidArgumentError(f"{what} must be numeric images, got dtype {arr.dtype}")
    if arr.shape == (h, w, c) or (c == 1 and arr.shape == (h, w)):
        arr = arr[None]
    if c == 1 and arr.ndim == 3 and arr.shape[1:] == (h, w):
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[1:] != (h, w, c):
        single = f"({h}, {w})" if c == 1 else f"({h}, {w}, {c})"
        raise ShapeError(
            f"{what} has shape {arr.shape}; the model takes images {single}, "
            f"or batches (N, {h}, {w}) / (N, {h}, {w}, {c})"
        )
    if arr.dtype == np.uint8:
        return scale_pixels(arr)
    return arr.astype(np.float32, copy=False)


def _one_image(model: Any, image: Any) -> np.ndarray:
    batch = as_model_batch(model, image, "image")
    if len(batch) != 1:
        raise ShapeError(f"image: expected one image, got a batch of {len(batch)}")
    return batch


# --------------------------------------------------------------------------- class names
NAME_CHARS = 16
"""Longest class name drawn on an axis before it is shortened (:func:`short_name`)."""


def short_name(name: Any, max_chars: int = NAME_CHARS) -> str:
    """``name`` as a string of at most ``max_chars`` characters, a cut marked with "…".

    >>> short_name("golden retriever", 8)
    'golden…'
    >>> short_name("cat", 8)
    'cat'
    """
    text = str(name)
    if len(text) <= max_chars:
        return text
    return text[: max(1, max_chars - 1)].rstrip() + "…"


def class_names_for(model: Any, k: int, class_names: Sequence[Any] | None = None) -> list[str]:
    """The full names of ``k`` classes: ``class_names`` if given, else the model's
    (``model.class_name(i)``), else the indices ``"0" .. "k-1"``.

    Raises:
        InvalidArgumentError: ``class_names`` does not hold ``k`` names.
    """
    if class_names is not None:
        names = [str(n) for n in class_names]
        if len(names) != k:
            raise InvalidArgumentError(f"{len(names)} class names for {k} classes")
        return names
    own = getattr(model, "class_names", None) if model is not None else None
    if own is not None and len(own) == k:
        if hasattr(model, "class_name"):
            return [str(model.class_name(i)) for i in range(k)]
        return [str(n) for n in own]
    return [str(i) for i in range(k)]


def _display(img: np.ndarray) -> np.ndarray:
    """One model input ``(H, W, C)`` as something ``imshow`` draws: gray or RGB."""
    if img.shape[-1] == 1:
        return img[..., 0]
    if img.shape[-1] == 3:
        return np.clip(img, 0.0, 1.0)
    return img[..., 0]


def _show_image(ax: Any, img: np.ndarray) -> None:
    """One model input: grayscale with a gray colour map, RGB in colour (clipped to [0, 1])."""
    disp = _display(img)
    if disp.ndim == 3:
        ax.imshow(disp, interpolation="nearest")
    else:
        lo, hi = float(disp.min()), float(disp.max())
        in_unit = lo >= 0.0 and hi <= 1.0
        ax.imshow(disp, cmap="gray", vmin=0.0 if in_unit else None,
                  vmax=1.0 if in_unit else None, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _labels(y: Any, n: int, num_classes: int, what: str = "labels") -> np.ndarray:
    labels = as_labels(y, num_classes)
    if len(labels) != n:
        raise ShapeError(f"{what}: {len(labels)} labels for {n} images")
    return labels


def _predict(model: Any, x: np.ndarray) -> np.ndarray:
    probs = np.asarray(model.predict(x))
    return probs.reshape(len(x), -1)


def _spatial_layers(model: Any) -> list[str]:
    return [str(layer.name) for layer in model.layers
            if isinstance(layer, (Conv2D, MaxPooling2D, AveragePooling2D))]


def _conv_layers(model: Any) -> list[str]:
    return [str(layer.name) for layer in model.layers if isinstance(layer, Conv2D)]


def _check_layer(model: Any, name: Any, valid: list[str], what: str) -> str:
    choices = ", ".join(valid) if valid else "(none in this model)"
    names = [str(layer.name) for layer in model.layers]
    if not isinstance(name, str) or name not in names:
        raise InvalidArgumentError(f"no layer named {name!r}; {what}: {choices}")
    if name not in valid:
        kind = type(model.get_layer(name)).__name__
        raise InvalidArgumentError(f"layer {name!r} ({kind}) cannot be drawn; {what}: {choices}")
    return name


def _grid(count: int, max_cols: int | None = None) -> tuple[int, int]:
    """(rows, cols) of a near-square grid holding ``count`` cells."""
    cols = max(1, math.ceil(math.sqrt(count)))
    if max_cols is not None:
        cols = min(cols, max_cols)
    return math.ceil(count / cols), cols


# --------------------------------------------------------------------------- feature maps
FM_INPUT_W, FM_PANEL_W, FM_H = 2.4, 3.8, 4.4


def feature_maps_data(
    model: Any, image: Any, layers: str | Sequence[str] = DEFAULT_LAYERS
) -> dict[str, np.ndarray]:
    """The maps :func:`feature_maps_figure` draws: ``{layer name: (H, W, C) array}``.

    They are ``model.feature_maps(image)`` for the chosen layers, in the order
    given, for the one image.

    Raises:
        InvalidArgumentError: a name is not a convolution or pooling layer of the
            model (the message lists the valid names).
        ShapeError: ``image`` is not one image of the model's input shape.
    """
    names = [layers] if isinstance(layers, str) else list(layers)
    if not names:
        raise InvalidArgumentError(
            f"choose at least one layer: {', '.join(_spatial_layers(model))}"
        )
    valid = _spatial_layers(model)
    for name in names:
        _check_layer(model, name, valid, "layers with feature maps")
    x = _one_image(model, image)
    maps = dict(model.feature_maps(x))
    return {name: np.asarray(maps[name][0]) for name in names}


def _build_feature_maps(
    model: Any, image: Any, layers: str | Sequence[str]
) -> tuple[Figure, dict[str, np.ndarray]]:
    data = feature_maps_data(model, image, layers)
    x = _one_image(model, image)[0]
    n = len(data)
    fig = Figure(figsize=(FM_INPUT_W + FM_PANEL_W * n, FM_H), dpi=DPI)
    subs = fig.subfigures(1, n + 1, width_ratios=[FM_INPUT_W] + [FM_PANEL_W] * n, wspace=0)
    ax = subs[0].add_axes((0.08, 0.2, 0.84, 0.6))
    _show_image(ax, x)
    colour = " RGB" if x.shape[-1] == 3 else ""
    ax.set_title(f"input {x.shape[0]}×{x.shape[1]}{colour}", fontsize=11)
    for sub, (name, maps) in zip(subs[1:], data.items(), strict=True):
        h, w, c = maps.shape
        rows, cols = _grid(c)
        axes = sub.subplots(rows, cols, squeeze=False, gridspec_kw=dict(
            left=0.04, right=0.96, top=0.84, bottom=0.03, wspace=0.08, hspace=0.08))
        for i, a in enumerate(axes.flat):
            a.set_axis_off()
            if i < c:
                a.imshow(maps[:, :, i], cmap="viridis", interpolation="nearest")
        kind = type(model.get_layer(name)).__name__
        sub.suptitle(f"→ {name} ({kind})\n{c} maps of {h}×{w}", fontsize=11)
    return fig, data


def feature_maps_figure(
    model: Any,
    image: Any,
    layers: str | Sequence[str] = DEFAULT_LAYERS,
    path: PathLike = "feature_maps.png",
) -> Path:
    """The slides' figure: the input beside every channel of each chosen layer's output.

    Args:
        model: a built :class:`~cnnlab.model.Sequential`.
        image: one image, ``(H, W)``, ``(H, W, C)`` or ``(1, H, W, C)``; uint8 is
            scaled to [0, 1].
        layers: names of convolution or pooling layers (default: the first
            convolution and the first max pooling, as in the slides).
        path: where the PNG goes.

    Each map is drawn with its own colour scale (viridis). Size:
    ``(2.4 + 3.8 * len(layers)) x 4.4`` inches at :data:`DPI`.

    Raises:
        InvalidArgumentError: an unknown or non-spatial layer (the valid names are listed).
        ShapeError: ``image`` is not one image of the model's input shape.
    """
    fig, _ = _build_feature_maps(model, image, layers)
    return _save(fig, path)


# --------------------------------------------------------------------------- outputs
OUT_PAIR_W, OUT_ROW_H = 5.6, 2.0


def outputs_data(model: Any, images: Any, labels: Any | None = None) -> dict[str, np.ndarray]:
    """What :func:`outputs_figure` draws.

    Returns ``{"images": (N, H, W, C) model inputs, "probabilities": (N, K)
    model.predict(images), "predicted": (N,) argmax, "labels": (N,) true labels
    or absent}``.
    """
    x = as_model_batch(model, images)
    if len(x) == 0:
        raise InvalidArgumentError("images: need at least one image")
    if len(x) > MAX_IMAGES:
        raise InvalidArgumentError(f"images: at most {MAX_IMAGES} per figure, got {len(x)}")
    probs = _predict(model, x)
    data = {"images": x, "probabilities": probs, "predicted": probs.argmax(axis=1)}
    if labels is not None:
        data["labels"] = _labels(labels, len(x), probs.shape[1])
    return data


def _bar_tick_labels(names: list[str]) -> tuple[list[str], float]:
    """Tick labels for ``k`` bars about 3.4 inches wide, and their rotation (degrees):
    upright up to two characters, else slanted (45 degrees; 90 beyond 20 classes),
    at most 10 characters so that they stay clear of the next row's title."""
    k = len(names)
    if max(len(n) for n in names) <= 2:
        return names, 0.0
    return [short_name(n, 10) for n in names], 45.0 if k <= 20 else 90.0


def _build_outputs(
    model: Any, images: Any, labels: Any | None, columns: int,
    class_names: Sequence[Any] | None = None,
) -> tuple[Figure, dict[str, np.ndarray]]:
    columns = check_positive_int(columns, "columns")
    data = outputs_data(model, images, labels)
    probs, pred = data["probabilities"], data["predicted"]
    truth = data.get("labels")
    n, k = probs.shape
    names = class_names_for(model, k, class_names)
    ticks, rotation = _bar_tick_labels(names)
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    titles = []
    for i in range(n):
        title = f"predicted {short_name(names[pred[i]])} ({probs[i, pred[i]]:.1%})"
        if truth is not None:
            true_name = short_name(names[truth[i]])
            # one line while it fits above the bars (about 36 characters), else two
            title += ("\n" if len(title) + len(true_name) > 30 else " · ") + f"true {true_name}"
        titles.append(title)
    two_lines = any("\n" in t for t in titles)
    fig = Figure(figsize=(OUT_PAIR_W * cols, OUT_ROW_H * rows), dpi=DPI)
    height = OUT_ROW_H * rows
    # Slanted names and two-line titles take room from the bars, not from the figure's size.
    gs = fig.add_gridspec(rows, 2 * cols, width_ratios=[1.0, 2.3] * cols, left=0.03,
                          right=0.98, top=1 - (0.5 if two_lines else 0.35) / height,
                          bottom=(0.3 if rotation == 0 else 0.62) / height,
                          wspace=0.35, hspace=0.75 if rotation == 0 else 1.0)
    for i in range(n):
        r, c = divmod(i, cols)
        ax_img = fig.add_subplot(gs[r, 2 * c])
        _show_image(ax_img, data["images"][i])
        ax = fig.add_subplot(gs[r, 2 * c + 1])
        ok = truth is None or truth[i] == pred[i]
        colors = [_BAR] * k
        colors[pred[i]] = _RIGHT if ok else _WRONG
        ax.bar(np.arange(k), probs[i], color=colors, width=0.75)
        ax.set_ylim(0, 1.0)
        if k <= 40:
            ax.set_xticks(np.arange(k), ticks, rotation=rotation,
                          ha="right" if rotation == 45.0 else "center",
                          rotation_mode="anchor" if rotation == 45.0 else "default")
        else:  # too many classes to name on the axis: the title names them
            ax.set_xticks([])
        ax.set_yticks([0, 0.5, 1])
        ax.tick_params(labelsize=8 if rotation == 0 else 7 if k <= 20 else 6)
        ax.spines[["top", "right"]].set_visible(False)
        if truth is not None and k <= 40:
            ax.get_xticklabels()[truth[i]].set_fontweight("bold")
        ax.set_title(titles[i], fontsize=9, color="black" if ok else _WRONG)
    return fig, data


def outputs_figure(
    model: Any,
    images: Any,
    labels: Any | None = None,
    path: PathLike = "outputs.png",
    columns: int = 2,
    class_names: Sequence[Any] | None = None,
) -> Path:
    """The slides' "outputs of the final layer": each image beside its softmax outputs.

    The bars are ``model.predict(images)``; the predicted class's bar is
    highlighted (green when right, red when wrong) and the title gives the
    predicted class with its probability and the true class (bold on the axis).
    Classes are named as :func:`class_names_for` says (on the axis shortened to
    10 characters and slanted when longer than two; not on the axis beyond 40
    classes; in the title shortened to :data:`NAME_CHARS`).
    An RGB image is drawn in colour.

    Args:
        images: ``(N, H, W)`` or ``(N, H, W, C)`` (or one image); uint8 is scaled to [0, 1].
        labels: true classes, integers or one-hot (optional).
        columns: image/bar pairs per row.
        class_names: the names of the classes (default: the model's).

    Size: ``5.6 * min(columns, N) x 2.0 * ceil(N / columns)`` inches at :data:`DPI`.
    """
    fig, _ = _build_outputs(model, images, labels, columns, class_names)
    return _save(fig, path)


# --------------------------------------------------------------------------- filters
FILT_CELL_W, FILT_CELL_H, FILT_BAR_W, FILT_TOP = 1.1, 1.25, 0.9, 0.7
FILT_RGB_MARGIN = 0.3


def filter_images(kernel: Any) -> np.ndarray:
    """A kernel with 3 input channels as colour images: ``(C_out, kh, kw, 3)`` in [0, 1].

    Filter ``f`` is ``kernel[:, :, :, f]`` (its three input channels read as
    R, G, B) normalised on its own: ``(w - w.min()) / (w.max() - w.min())``,
    so its most negative weight is black and its most positive white; a
    constant filter is grey (0.5).

    Raises:
        ShapeError: ``kernel`` is not ``(kh, kw, 3, C_out)``.
    """
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 4 or k.shape[2] != 3:
        raise ShapeError(
            f"colour filters need a kernel (kh, kw, 3, C_out), got shape {k.shape}"
        )
    f = np.moveaxis(k, -1, 0)  # (C_out, kh, kw, 3)
    lo = f.min(axis=(1, 2, 3), keepdims=True)
    span = f.max(axis=(1, 2, 3), keepdims=True) - lo
    safe = np.where(span > 0, span, 1.0)
    return np.where(span > 0, (f - lo) / safe, 0.5)


def _takes_rgb_first(model: Any, layer: str) -> bool:
    """Whether ``layer`` is the first convolution of a model whose input is RGB."""
    shape = getattr(model, "input_shape", None) or ()
    conv = _conv_layers(model)
    return len(shape) == 3 and shape[-1] == 3 and bool(conv) and conv[0] == layer


def filters_data(model: Any, layer: str = "conv2d") -> dict[str, Any]:
    """The weights :func:`filters_figure` draws: ``{"layer", "kernel" (kh, kw, C_in, C_out),
    "bias" (C_out,) or None, "rgb"}`` (copies). ``"rgb"`` is :func:`filter_images`
    of the kernel, ``(C_out, kh, kw, 3)``, for the first convolution of an RGB
    model (3 input channels), else None.

    Raises:
        InvalidArgumentError: ``layer`` is not a convolution of the model.
    """
    _check_layer(model, layer, _conv_layers(model), "convolution layers")
    conv = model.get_layer(layer)
    bias = conv.bias
    kernel = np.array(conv.kernel, copy=True)
    rgb = kernel.shape[2] == 3 and _takes_rgb_first(model, layer)
    return {
        "layer": layer,
        "kernel": kernel,
        "bias": None if bias is None else np.array(bias, copy=True),
        "rgb": filter_images(kernel) if rgb else None,
    }


def _filters_layout(cin: int, cout: int, max_filters: int, max_channels: int) -> tuple[int, ...]:
    ci, co = min(cin, max_channels), min(cout, max_filters)
    cols = min(co, 8)
    rows_per = math.ceil(co / cols)
    return ci, co, cols, rows_per


def _build_rgb_filters(data: dict[str, Any], max_filters: int) -> Figure:
    images = data["rgb"]
    cout, kh, kw, _ = images.shape
    co = min(cout, max_filters)
    cols = min(co, 8)
    rows = math.ceil(co / cols)
    width, height = FILT_CELL_W * cols + FILT_RGB_MARGIN, FILT_CELL_H * rows + FILT_TOP
    fig = Figure(figsize=(width, height), dpi=DPI)
    gs = fig.add_gridspec(rows, cols, left=0.15 / width, right=1 - 0.15 / width,
                          top=1 - FILT_TOP / height, bottom=0.1 / height, wspace=0.15,
                          hspace=0.35)
    for f in range(co):
        ax = fig.add_subplot(gs[divmod(f, cols)])
        ax.imshow(images[f], interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"filter {f}", fontsize=8)
    shown = f"{co} of {cout} filters" if co < cout else f"{cout} filters"
    fig.suptitle(f"{data['layer']}: {shown}, {kh}×{kw}×RGB\n"
                 "each scaled to its own range",
                 fontsize=10 if cols > 2 else 8, y=1 - 0.08 / height, va="top")
    return fig


def _build_filters(
    model: Any, layer: str, max_filters: int, max_channels: int, rgb: bool | None = None
) -> tuple[Figure, dict[str, Any]]:
    max_filters = check_positive_int(max_filters, "max_filters")
    max_channels = check_positive_int(max_channels, "max_channels")
    data = filters_data(model, layer)
    kernel = data["kernel"]
    if rgb and data["rgb"] is None:
        raise InvalidArgumentError(
            f"layer {layer!r} cannot be drawn in colour: that needs the first convolution of "
            f"an RGB model (3 input channels); its kernel is {kernel.shape}"
        )
    if data["rgb"] is not None and rgb is not False:
        return _build_rgb_filters(data, max_filters), data
    kh, kw, cin, cout = kernel.shape
    ci, co, cols, rows_per = _filters_layout(cin, cout, max_filters, max_channels)
    rows = ci * rows_per
    width, height = FILT_CELL_W * cols + FILT_BAR_W, FILT_CELL_H * rows + FILT_TOP
    fig = Figure(figsize=(width, height), dpi=DPI)
    gs = fig.add_gridspec(rows, cols, left=0.1 / width * 2, right=1 - FILT_BAR_W / width,
                          top=1 - FILT_TOP / height, bottom=0.1 / height, wspace=0.15,
                          hspace=0.35)
    m = float(np.abs(kernel).max()) or 1.0
    annotate = kh * kw <= 9
    im = None
    for c_in in range(ci):
        for f in range(co):
            r, c = divmod(f, cols)
            ax = fig.add_subplot(gs[c_in * rows_per + r, c])
            w = kernel[:, :, c_in, f]
            im = ax.imshow(w, cmap="RdBu_r", vmin=-m, vmax=m, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            label = f"filter {f}" if ci == 1 else f"f{f} · in {c_in}"
            ax.set_title(label, fontsize=8)
            if annotate:
                for (a, b), v in np.ndenumerate(w):
                    ax.text(b, a, f"{v:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if abs(v) > 0.6 * m else "black")
    shown = f"{co} of {cout} filters" if co < cout else f"{cout} filters"
    if ci < cin:
        shown += f", {ci} of {cin} input channels"
    elif cin > 1:
        shown += f" × {cin} input channels"
    fig.suptitle(f"{layer}: {shown}, {kh}×{kw} each", fontsize=11, y=1 - 0.12 / height,
                 va="top")
    grid_top, grid_bottom = 1 - (FILT_TOP + 0.2) / height, 0.1 / height
    cax = fig.add_axes((1 - 0.75 / width, grid_bottom, 0.15 / width, grid_top - grid_bottom))
    fig.colorbar(im, cax=cax)
    cax.tick_params(labelsize=8)
    return fig, data


def filters_figure(
    model: Any,
    path: PathLike = "filters.png",
    layer: str = "conv2d",
    max_filters: int = 32,
    max_channels: int = 3,
    rgb: bool | None = None,
) -> Path:
    """The learned filters of a convolution: one ``kh x kw`` image per filter and input channel.

    One diverging colour scale (blue negative, red positive) is shared by all
    filters; with at most 9 taps per filter the weights are written in the cells.

    The first convolution of an RGB model is drawn instead as one small colour
    image per filter, its three input channels as R, G, B, each filter scaled
    to its own range (:func:`filter_images`): what colours and edges it
    responds to.

    Args:
        layer: a Conv2D layer's name (default: the first convolution).
        max_filters, max_channels: draw at most this many output filters / input
            channels (deeper layers have thousands of kernels).
        rgb: ``None`` (default): colour images where possible; ``False``: one
            image per input channel always; ``True``: colour images or
            :class:`~cnnlab.errors.InvalidArgumentError`.

    Size: ``1.1 * cols + 0.9 x 1.25 * rows + 0.7`` inches at :data:`DPI`, where
    ``cols = min(filters shown, 8)`` and ``rows = channels shown * ceil(filters shown / cols)``;
    in colour ``1.1 * cols + 0.3 x 1.25 * ceil(filters shown / cols) + 0.7``.
    """
    fig, _ = _build_filters(model, layer, max_filters, max_channels, rgb)
    return _save(fig, path)


# --------------------------------------------------------------------------- curves
CURVES_SIZE = (11.0, 4.2)
_HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")
_ALIASES = {"acc": "accuracy", "val_acc": "val_accuracy"}


def _read_history_file(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataFormatError(f"{path}: no such history file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataFormatError(f"{path}: cannot read the history file: {e}") from None
    if path.suffix.lower() == ".csv" or (path.suffix.lower() != ".json"
                                         and not text.lstrip().startswith("{")):
        rows = list(csv.reader(io.StringIO(text)))
        rows = [r for r in rows if any(cell.strip() for cell in r)]
        if not rows:
            raise DataFormatError(f"{path}: empty history CSV")
        header = [h.strip() for h in rows[0]]
        out: dict[str, list[Any]] = {h: [] for h in header if h and h != "epoch"}
        for line, row in enumerate(rows[1:], start=2):
            if len(row) != len(header):
                raise DataFormatError(
                    f"{path}: line {line} has {len(row)} fields, the header has {len(header)}"
                )
            for h, cell in zip(header, row, strict=True):
                if h in out:
                    out[h].append(cell.strip())
        return out
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataFormatError(f"{path}: not valid JSON: {e}") from None


def load_history(history: Any) -> dict[str, list[float]]:
    """Training history as ``{"loss": [...], "accuracy": [...], "val_loss": [...],
    "val_accuracy": [...]}`` (only the keys present).

    Args:
        history: a :class:`~cnnlab.model.History`, a dict like ``History.history``,
            or the path of a ``history.json`` (that dict) or ``history.csv``
            (header ``epoch,loss,accuracy,val_loss,val_accuracy``). ``acc`` and
            ``val_acc`` are read as ``accuracy`` and ``val_accuracy``; other keys
            (``time``...) are ignored.

    Raises:
        DataFormatError: a file is missing, unreadable or malformed.
        InvalidArgumentError: no loss or accuracy, non-numeric values, or lists
            of different lengths.
    """
    source = "history"
    if isinstance(history, (str, os.PathLike)):
        source = str(history)
        history = _read_history_file(Path(history))
    elif hasattr(history, "history") and isinstance(history.history, Mapping):
        history = history.history
    if not isinstance(history, Mapping):
        raise InvalidArgumentError(
            f"{source}: expected a History, a dict of lists or a JSON/CSV file, "
            f"got {type(history).__name__}"
        )
    out: dict[str, list[float]] = {}
    for key, values in history.items():
        name = _ALIASES.get(str(key), str(key))
        if name not in _HISTORY_KEYS:
            continue
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise InvalidArgumentError(f"{source}: {key!r} must be a list of numbers")
        try:
            nums = [float(v) for v in values]
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"{source}: {key!r} holds a non-number") from None
        out[name] = nums
    if not out.get("loss") and not out.get("accuracy"):
        raise InvalidArgumentError(
            f"{source}: no 'loss' or 'accuracy' values (keys: {', '.join(map(str, history))})"
        )
    lengths = {k: len(v) for k, v in out.items()}
    if len(set(lengths.values())) > 1:
        raise InvalidArgumentError(f"{source}: lists of different lengths: {lengths}")
    return {k: out[k] for k in _HISTORY_KEYS if k in out}


def _build_curves(history: Any) -> tuple[Figure, dict[str, list[float]]]:
    data = load_history(history)
    fig = Figure(figsize=CURVES_SIZE, dpi=DPI)
    axes = fig.subplots(1, 2, gridspec_kw=dict(left=0.07, right=0.98, top=0.82, bottom=0.13,
                                               wspace=0.22))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for key, label, color in ((metric, "train", "#1f77b4"),
                                  (f"val_{metric}", "validation", "#ff7f0e")):
            values = data.get(key)
            if not values:
                continue
            epochs = np.arange(1, len(values) + 1)
            ax.plot(epochs, values, marker="o", markersize=4, color=color,
                    label=f"{label} (last {values[-1]:.4f})")
        ax.set_title(metric, fontsize=12)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=9)
        else:
            ax.text(0.5, 0.5, f"no {metric} recorded", ha="center", va="center",
                    transform=ax.transAxes, color="gray")
    fig.suptitle("Training curves", fontsize=13)
    return fig, data


def curves_figure(history: Any, path: PathLike = "curves.png") -> Path:
    """Loss and accuracy per epoch, train and validation, side by side.

    Args:
        history: anything :func:`load_history` reads (History, dict, JSON or CSV path).

    Size: ``11 x 4.2`` inches at :data:`DPI`.
    """
    fig, _ = _build_curves(history)
    return _save(fig, path)


# --------------------------------------------------------------------------- confusion
CONFUSION_SIZE = (7.0, 6.2)


def _confusion_from_probs(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    k = probs.shape[1]
    pred = probs.argmax(axis=1)
    return np.bincount(labels * k + pred, minlength=k * k).reshape(k, k).astype(np.int64)


def confusion_matrix(model: Any, x: Any, y: Any) -> np.ndarray:
    """Counts ``M[true, predicted]`` of ``model``'s predictions on ``(x, y)``: ``(K, K)`` int64.

    ``M.sum()`` is ``len(x)`` and ``trace(M)`` the number of correct predictions.
    ``x`` is a batch of images (uint8 is scaled to [0, 1]); ``y`` integer or one-hot labels.
    """
    xb = as_model_batch(model, x, "x")
    if len(xb) == 0:
        raise InvalidArgumentError("x: need at least one image")
    probs = _predict(model, xb)
    return _confusion_from_probs(probs, _labels(y, len(xb), probs.shape[1], "y"))


def confusion_labels(class_names: Sequence[Any] | None, k: int) -> list[str]:
    """The tick labels of a ``k x k`` confusion matrix: the class names shortened to
    :data:`NAME_CHARS` characters (:func:`short_name`), or the indices.

    Raises:
        InvalidArgumentError: ``class_names`` does not hold ``k`` names.
    """
    names = [str(i) for i in range(k)] if class_names is None else [str(s) for s in class_names]
    if len(names) != k:
        raise InvalidArgumentError(f"{len(names)} class names for a {k}x{k} matrix")
    return [short_name(n) for n in names]


def _build_confusion(matrix: Any, class_names: Sequence[str] | None) -> Figure:
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
        raise ShapeError(f"confusion matrix must be square (K, K), got shape {m.shape}")
    if m.dtype.kind not in "iu" and not (m.dtype.kind == "f" and np.all(m == np.round(m))):
        raise InvalidArgumentError("confusion matrix must hold integer counts")
    if (m < 0).any():
        raise InvalidArgumentError("confusion matrix counts must be >= 0")
    m = m.astype(np.int64)
    k = m.shape[0]
    names = confusion_labels(class_names, k)
    longest = max(len(n) for n in names)
    # Room for the names: the axes shrink as the longest label grows (about 0.07 in a character).
    margin = 0.1 if longest <= 2 else min(0.3, 0.06 + 0.0105 * longest)
    fig = Figure(figsize=CONFUSION_SIZE, dpi=DPI)
    ax = fig.add_axes((margin, margin, 0.88 - margin, 0.88 - margin))
    im = ax.imshow(np.log1p(m), cmap="Blues", interpolation="nearest")
    hi = float(np.log1p(m).max()) or 1.0
    size = 9 if k <= 10 else max(5, 9 - (k - 10) // 3)
    for (i, j), v in np.ndenumerate(m):
        if v or i == j:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=size,
                    color="white" if np.log1p(v) > 0.6 * hi else "black")
    label_size = 10 if k <= 10 else max(5, 10 - (k - 10) // 4)
    ax.set_xticks(np.arange(k), names, rotation=0 if longest <= 2 else 45,
                  ha="center" if longest <= 2 else "right", rotation_mode="anchor",
                  fontsize=label_size)
    ax.set_yticks(np.arange(k), names, fontsize=label_size)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    total, right = int(m.sum()), int(np.trace(m))
    acc = right / total if total else 0.0
    ax.set_title(f"Confusion matrix: {total} images, {right} right ({acc:.2%})", fontsize=11)
    cax = fig.add_axes((0.9, margin, 0.025, 0.88 - margin))
    cb = fig.colorbar(im, cax=cax)
    cb.set_label("log(1 + count)", fontsize=8)
    cax.tick_params(labelsize=7)
    return fig


def confusion_figure(
    matrix: Any, path: PathLike = "confusion_matrix.png",
    class_names: Sequence[str] | None = None,
) -> Path:
    """Draw a confusion matrix (rows: true class, columns: predicted) with the counts in the cells.

    The colour is ``log(1 + count)`` so that the rare mistakes stay visible
    beside the large diagonal. The axes are labelled with ``class_names``
    (shortened by :func:`confusion_labels`; slanted when longer than two
    characters), or the class indices. Size: ``7 x 6.2`` inches at :data:`DPI`.

    Raises:
        ShapeError: not a square 2-D matrix.
        InvalidArgumentError: negative or non-integer counts.
    """
    return _save(_build_confusion(matrix, class_names), path)


# --------------------------------------------------------------------------- mistakes
MIS_CELL_W, MIS_CELL_H, MIS_TOP = 1.5, 1.85, 0.5


def _mistakes_from_probs(
    x: np.ndarray, probs: np.ndarray, labels: np.ndarray, n: int
) -> dict[str, np.ndarray]:
    pred = probs.argmax(axis=1)
    conf = probs[np.arange(len(probs)), pred]
    wrong = np.flatnonzero(pred != labels)
    order = wrong[np.argsort(-conf[wrong], kind="stable")][:n]
    return {
        "indices": order,
        "predicted": pred[order],
        "probability": conf[order],
        "labels": labels[order],
        "images": x[order],
        "total": np.int64(len(x)),
        "mistakes": np.int64(len(wrong)),
    }


def mistakes_data(model: Any, x: Any, y: Any, n: int = 16) -> dict[str, np.ndarray]:
    """The ``n`` most confident mistakes: ``{"indices", "predicted", "probability"
    (of the predicted class), "labels" (true), "images", "total", "mistakes"}``,
    most confident first (fewer if the model makes fewer mistakes)."""
    n = check_positive_int(n, "n")
    xb = as_model_batch(model, x, "x")
    if len(xb) == 0:
        raise InvalidArgumentError("x: need at least one image")
    probs = _predict(model, xb)
    return _mistakes_from_probs(xb, probs, _labels(y, len(xb), probs.shape[1], "y"), n)


def _mistakes_size(n: int) -> tuple[int, int, float, float]:
    cols = min(n, 8)
    rows = math.ceil(n / cols)
    return rows, cols, MIS_CELL_W * cols, MIS_CELL_H * rows + MIS_TOP


def _draw_mistakes(data: dict[str, np.ndarray], n: int,
                   class_names: Sequence[str] | None = None) -> Figure:
    rows, cols, width, height = _mistakes_size(n)
    fig = Figure(figsize=(width, height), dpi=DPI)
    gs = fig.add_gridspec(rows, cols, left=0.02, right=0.98, top=1 - (MIS_TOP + 0.35) / height,
                          bottom=0.05 / height, wspace=0.1, hspace=0.6)
    shown = len(data["indices"])
    for i in range(rows * cols):
        ax = fig.add_subplot(gs[divmod(i, cols)])
        if i >= shown:
            ax.set_axis_off()
            continue
        _show_image(ax, data["images"][i])
        pred, true = int(data["predicted"][i]), int(data["labels"][i])
        if class_names is not None:
            pred_name = short_name(class_names[pred], 9)
            true_name = short_name(class_names[true], 9)
        else:
            pred_name, true_name = str(pred), str(true)
        ax.set_title(
            f"pred {pred_name} ({data['probability'][i]:.0%})\n"
            f"true {true_name} · #{data['indices'][i]}",
            fontsize=9, color=_WRONG,
        )
    total, wrong = int(data["total"]), int(data["mistakes"])
    if shown:
        head = f"The {shown} most confident mistakes ({wrong} of {total} images wrong)"
    else:
        head = f"No mistakes on {total} images"
    fig.suptitle(head, fontsize=11)
    return fig


def mistakes_figure(model: Any, x: Any, y: Any, path: PathLike = "mistakes.png",
                    n: int = 16, class_names: Sequence[Any] | None = None) -> Path:
    """A gallery of the ``n`` most confident mistakes: image, predicted class with
    its probability, true class and test index. Classes are named as
    :func:`class_names_for` says (shortened to 9 characters).

    Size: ``1.5 * min(n, 8) x 1.85 * ceil(n / 8) + 0.5`` inches at :data:`DPI`
    (empty cells when there are fewer mistakes).
    """
    data = mistakes_data(model, x, y, n)
    k = int(np.prod(model.output_shape))
    return _save(_draw_mistakes(data, n, class_names_for(model, k, class_names)), path)


# --------------------------------------------------------------------------- padding
PADDING_SIZE = (13.0, 8.6)


def padding_data(size: int = 5, kernel: int = 3) -> dict[str, dict[str, Any]]:
    """Each padding mode run through the library on a ``size x size`` input
    (values ``1 .. size²``) and a ``kernel x kernel`` filter of ones, stride 1.

    Returns ``{mode: {"pads": ((top, bottom), (left, right)) from resolve_padding,
    "input": (size, size), "padded": pad2d(...) (Hp, Wp), "is_padding": bool mask,
    "kernel": (k, k), "output": conv2d_forward_reference(...) (Ho, Wo)}}`` for
    ``valid``, ``same`` and ``full``.
    """
    size, kernel = check_positive_int(size, "size"), check_positive_int(kernel, "kernel")
    if kernel > size:
        raise InvalidArgumentError(f"kernel {kernel} is larger than the {size}x{size} input")
    x = np.arange(1, size * size + 1, dtype=np.float64).reshape(1, size, size, 1)
    k = np.ones((kernel, kernel, 1, 1))
    out = {}
    for mode in PADDING_MODES:
        pads = resolve_padding(mode, (kernel, kernel), (1, 1), (size, size))
        padded = pad2d(x, pads)
        mask = pad2d(np.ones_like(x), pads) == 0
        y = conv2d_forward_reference(x, k, None, (1, 1), pads)
        assert y.shape[1:3] == output_hw((size, size), (kernel, kernel), (1, 1), pads)
        out[mode] = {
            "pads": pads,
            "input": x[0, :, :, 0],
            "padded": padded[0, :, :, 0],
            "is_padding": mask[0, :, :, 0],
            "kernel": k[:, :, 0, 0],
            "output": y[0, :, :, 0],
        }
    return out


def _cells(ax: Any, values: np.ndarray, extent: int, face: Any, text_color: Any,
           fontsize: float) -> None:
    h, w = values.shape
    off_r, off_c = (extent - h) / 2, (extent - w) / 2
    rects, faces = [], []
    for (i, j), v in np.ndenumerate(values):
        rects.append(Rectangle((off_c + j, off_r + i), 1, 1))
        faces.append(face(i, j))
        ax.text(off_c + j + 0.5, off_r + i + 0.5, f"{v:g}", ha="center", va="center",
                fontsize=fontsize, color=text_color(i, j))
    ax.add_collection(PatchCollection(rects, facecolors=faces, edgecolors="#555555",
                                      linewidths=0.8), autolim=False)
    ax.set_xlim(-0.06, extent + 0.06)
    ax.set_ylim(extent + 0.06, -0.06)
    ax.set_aspect("equal")
    ax.set_axis_off()


def _build_padding(size: int, kernel: int) -> tuple[Figure, dict[str, dict[str, Any]]]:
    data = padding_data(size, kernel)
    top = max(d["padded"].shape[0] for d in data.values())
    bottom = max(d["output"].shape[0] for d in data.values())
    fig = Figure(figsize=PADDING_SIZE, dpi=DPI)
    gs = fig.add_gridspec(2, 3, height_ratios=[top, bottom], left=0.02, right=0.98, top=0.86,
                          bottom=0.02, wspace=0.12, hspace=0.22)
    fs = 9 if top <= 9 else 7
    for col, (mode, d) in enumerate(data.items()):
        ax = fig.add_subplot(gs[0, col])
        mask = d["is_padding"]
        _cells(ax, d["padded"], top,
               face=lambda i, j, m=mask: _PAD if m[i, j] else "#fff3c4",
               text_color=lambda i, j, m=mask: "#8a8a8a" if m[i, j] else "black", fontsize=fs)
        hp = d["padded"].shape[0]
        off = (top - hp) / 2
        ax.add_patch(Rectangle((off, off), kernel, kernel, fill=False, edgecolor=_WRONG,
                               linewidth=2.2))
        (t, b), (left, r) = d["pads"]
        ho, wo = d["output"].shape
        ax.set_title(f"{mode}: pad top/bottom {t}/{b}, left/right {left}/{r}\n"
                     f"padded input {hp}×{d['padded'].shape[1]}", fontsize=11)
        ax2 = fig.add_subplot(gs[1, col])
        out = d["output"]
        hi = float(out.max()) or 1.0
        _cells(ax2, out, bottom,
               face=lambda i, j, o=out, h=hi: (0.75 - 0.45 * o[i, j] / h,
                                               0.85 - 0.35 * o[i, j] / h, 1.0),
               text_color=lambda i, j: "black", fontsize=fs)
        ax2.set_title(f"output {ho}×{wo}", fontsize=11)
    fig.suptitle(
        f"Padding modes: a {size}×{size} input (values 1..{size * size}) convolved with a "
        f"{kernel}×{kernel} kernel of ones, stride 1\n"
        "grey cells: zeros added by the padding; red square: the kernel's first position",
        fontsize=12,
    )
    return fig, data


def padding_figure(path: PathLike = "padding.png", size: int = 5, kernel: int = 3) -> Path:
    """The three padding modes drawn from real arrays (see :func:`padding_data`).

    Top row: the padded input, zeros in grey; bottom row: the convolution's
    output (each cell the sum of its window) and its size. Size: ``13 x 8.6``
    inches at :data:`DPI`.
    """
    fig, _ = _build_padding(size, kernel)
    return _save(fig, path)


# --------------------------------------------------------------------------- pooling
POOLING_SIZE = (11.0, 4.4)
POOLING_INPUT = np.array(
    [[1, 3, 2, 1],
     [4, 6, 5, 0],
     [3, 1, 1, 2],
     [2, 8, 0, 4]], dtype=np.float32,
)
_WINDOW_COLORS = ("#bbdefb", "#c8e6c9", "#ffe0b2", "#f8bbd0", "#d1c4e9", "#b2ebf2")


def pooling_data(x: Any = None, pool: int = 2) -> dict[str, np.ndarray]:
    """Max and average pooling (``pool x pool`` windows, stride ``pool``, no padding)
    of a 2-D array through :mod:`cnnlab.ops.pooling`.

    Returns ``{"input", "max", "average", "argmax"}``; ``argmax`` is the flat
    position of each window's winner (row-major in the window).
    """
    x = POOLING_INPUT if x is None else np.asarray(x, dtype=np.float32)
    pool = check_positive_int(pool, "pool")
    if x.ndim != 2:
        raise ShapeError(f"pooling_data: expected a 2-D array, got shape {x.shape}")
    batch = x[None, :, :, None]
    pads = ((0, 0), (0, 0))
    mx, arg = max_pool2d_forward(batch, (pool, pool), (pool, pool), pads)
    avg, _ = avg_pool2d_forward(batch, (pool, pool), (pool, pool), pads)
    return {"input": x, "max": mx[0, :, :, 0], "average": avg[0, :, :, 0],
            "argmax": arg[0, :, :, 0].astype(np.int64)}


def _build_pooling(x: Any, pool: int) -> tuple[Figure, dict[str, np.ndarray]]:
    data = pooling_data(x, pool)
    inp = data["input"]
    ho, wo = data["max"].shape
    p = pool

    def window_color(i: int, j: int) -> str:
        wi, wj = i // p, j // p
        if wi >= ho or wj >= wo:
            return "white"
        return _WINDOW_COLORS[(wi * wo + wj) % len(_WINDOW_COLORS)]

    winners = set()
    for (wi, wj), a in np.ndenumerate(data["argmax"]):
        winners.add((wi * p + a // p, wj * p + a % p))
    extent = max(inp.shape)
    fig = Figure(figsize=POOLING_SIZE, dpi=DPI)
    gs = fig.add_gridspec(1, 3, left=0.02, right=0.98, top=0.78, bottom=0.04, wspace=0.15)
    ax = fig.add_subplot(gs[0, 0])
    _cells(ax, inp, extent, face=window_color, text_color=lambda i, j: "black", fontsize=13)
    for t in ax.texts:
        pos = t.get_position()
        if (int(pos[1]), int(pos[0])) in winners:
            t.set_fontweight("bold")
            t.set_color(_WRONG)
    ax.set_title(f"input {inp.shape[0]}×{inp.shape[1]}\n{p}×{p} windows, stride {p}",
                 fontsize=11)
    for col, key, title in ((1, "max", "max pooling"), (2, "average", "average pooling")):
        a = fig.add_subplot(gs[0, col])
        vals = data[key]
        _cells(a, vals, extent,
               face=lambda i, j: _WINDOW_COLORS[(i * wo + j) % len(_WINDOW_COLORS)],
               text_color=lambda i, j: "black", fontsize=13)
        a.set_title(f"{title} → {ho}×{wo}", fontsize=11)
    fig.suptitle("Pooling: each output cell summarises one window "
                 "(max: its largest value, in red; average: its mean)", fontsize=12)
    return fig, data


def pooling_figure(path: PathLike = "pooling.png", x: Any = None, pool: int = 2) -> Path:
    """Max against average pooling of a small array, values written in the cells.

    Args:
        x: a 2-D array (default :data:`POOLING_INPUT`, 4x4).
        pool: window size and stride.

    Size: ``11 x 4.4`` inches at :data:`DPI`.
    """
    fig, _ = _build_pooling(x, pool)
    return _save(fig, path)


# --------------------------------------------------------------------------- all
def make_all(
    model: Any,
    out_dir: PathLike,
    x_test: Any,
    y_test: Any,
    history: Any | None = None,
    *,
    index: int | None = None,
    indices: Sequence[int] | None = None,
    n_outputs: int = 8,
    layers: str | Sequence[str] = DEFAULT_LAYERS,
    n_mistakes: int = 16,
    which: Iterable[str] | None = None,
    class_names: Sequence[Any] | None = None,
) -> dict[str, Path]:
    """Write every figure into ``out_dir`` under its standard name (:data:`FIGURE_NAMES`).

    Args:
        model: the trained model (``None`` is allowed when ``which`` holds only
            ``padding``, ``pooling`` and ``curves``).
        x_test, y_test: test images (uint8 or model input) and labels; the
            confusion matrix and the mistakes cover all of them.
        history: anything :func:`load_history` reads; without it there is no
            ``curves.png`` (unless asked for by ``which``, which is an error).
        index: the test image of the feature-map figure (default: ``indices[0]`` or 0).
        indices: the test images of the outputs figure (default: the first ``n_outputs``).
        layers: the feature-map figure's layers.
        which: names from :data:`FIGURES` (default: all).
        class_names: the names of the classes (default: the model's, see
            :func:`class_names_for`).

    Returns:
        ``{figure name: path written}`` in :data:`FIGURES` order.
    """
    chosen = list(FIGURES) if which is None else list(dict.fromkeys(which))
    unknown = [w for w in chosen if w not in FIGURE_NAMES]
    if unknown:
        raise InvalidArgumentError(
            f"unknown figure {unknown[0]!r}; choose from: {', '.join(FIGURES)}"
        )
    if "curves" in chosen and history is None:
        if which is not None:
            raise InvalidArgumentError("the curves figure needs a training history")
        chosen.remove("curves")
    out = Path(out_dir)
    needs_model = [w for w in chosen if w not in ("padding", "pooling", "curves")]
    written: dict[str, Path] = {}
    if needs_model:
        if model is None:
            raise InvalidArgumentError(f"these figures need a model: {', '.join(needs_model)}")
        x = as_model_batch(model, x_test, "x_test")
        n_test = len(x)
        if n_test == 0:
            raise InvalidArgumentError("x_test: need at least one image")
        for i in [index] if index is not None else []:
            _check_index(i, n_test)
        picks = list(range(min(check_positive_int(n_outputs, "n_outputs"), n_test))) \
            if indices is None else [_check_index(i, n_test) for i in indices]
        if not picks:
            raise InvalidArgumentError("indices: choose at least one test image")
        first = index if index is not None else picks[0]
        probs = labels = None
        names = class_names_for(model, int(np.prod(model.output_shape)), class_names)
        if "confusion" in chosen or "mistakes" in chosen:
            probs = _predict(model, x)
            labels = _labels(y_test, n_test, probs.shape[1], "y_test")
    for name in FIGURES:
        if name not in chosen:
            continue
        path = out / FIGURE_NAMES[name]
        if name == "feature_maps":
            written[name] = feature_maps_figure(model, x[first], layers, path)
        elif name == "outputs":
            y_arr = np.asarray(y_test)
            written[name] = outputs_figure(model, x[picks], y_arr[picks], path,
                                           class_names=names)
        elif name == "filters":
            conv = _conv_layers(model)
            if not conv:
                raise InvalidArgumentError("the model has no convolution layer to draw")
            written[name] = filters_figure(model, path, conv[0])
        elif name == "curves":
            written[name] = curves_figure(history, path)
        elif name == "confusion":
            assert probs is not None and labels is not None
            written[name] = confusion_figure(_confusion_from_probs(probs, labels), path,
                                             class_names=names)
        elif name == "mistakes":
            assert probs is not None and labels is not None
            n_shown = check_positive_int(n_mistakes, "n_mistakes")
            data = _mistakes_from_probs(x, probs, labels, n_shown)
            written[name] = _save(_draw_mistakes(data, n_mistakes, names), path)
        elif name == "padding":
            written[name] = padding_figure(path)
        elif name == "pooling":
            written[name] = pooling_figure(path)
    return written


def _check_index(i: Any, n: int) -> int:
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
        raise InvalidArgumentError(f"image index must be an int, got {i!r}")
    if not 0 <= i < n:
        raise InvalidArgumentError(f"image index {i} is out of range: the test set has {n} images")
    return int(i)


# --------------------------------------------------------------------------- explain (issue 20)
# Why the model decided: attributions over the images, the sanity check, and the slides'
# conclusion measured (parameter sharing, receptive fields, equivariance). The numbers come
# from cnnlab.explain; these functions only draw them.
ATTR_METHODS = ("saliency", "grad_cam", "occlusion")
ATTR_TITLES = {"saliency": "saliency |dz/dx|", "grad_cam": "Grad-CAM",
               "occlusion": "occlusion (prob. drop)"}
ATTR_CELL = 2.1


def attributions_data(model: Any, images: Any, labels: Any | None = None,
                      methods: Sequence[str] = ATTR_METHODS,
                      randomize: bool = False) -> dict[str, Any]:
    """The maps :func:`attributions_figure` draws, for each image's *predicted* class.

    Returns ``{"images", "predicted", "probability" (of the predicted class),
    "labels" (true, or None), method: (N, H, W) maps ...}``; with
    ``randomize``, also ``"rho_<method>"`` (N,): Spearman's rho between the
    trained model's map and that of the model with every layer re-initialised
    (:func:`cnnlab.explain.randomization_check`, seed 0).
    """
    from cnnlab import explain

    unknown = [m for m in methods if m not in ATTR_METHODS]
    if unknown:
        raise InvalidArgumentError(
            f"unknown attribution method {unknown[0]!r}; choose from {', '.join(ATTR_METHODS)}")
    x = as_model_batch(model, images, "images")
    probs = _predict(model, x)
    pred = probs.argmax(axis=1)
    data: dict[str, Any] = {
        "images": x, "predicted": pred, "probability": probs[np.arange(len(x)), pred],
        "labels": None if labels is None else _labels(labels, len(x), probs.shape[1]),
    }
    fns = {"saliency": explain.saliency, "grad_cam": explain.grad_cam,
           "occlusion": explain.occlusion}
    for m in methods:
        data[m] = np.asarray(fns[m](model, x, pred).map).reshape(len(x), *x.shape[1:3])
        if randomize:
            check = explain.randomization_check(model, x, pred, m)
            data[f"rho_{m}"] = check.correlation
    return data


def attributions_figure(model: Any, images: Any, labels: Any | None = None,
                        path: PathLike = "attributions.png",
                        methods: Sequence[str] = ATTR_METHODS, randomize: bool = True,
                        class_names: Sequence[Any] | None = None) -> Path:
    """One row per image: the image, then each method's map drawn over it (inferno,
    alpha 0.6), for the class the model predicted; titles give the prediction (and the
    true class when ``labels`` is given) and, with ``randomize``, Spearman's rho of
    each map against the randomised model's (Adebayo et al.'s sanity check).

    Size: ``2.1 * (1 + len(methods)) x 2.1 * N + 0.4`` inches at :data:`DPI`.
    """
    data = attributions_data(model, images, labels, methods, randomize)
    n = len(data["images"])
    k = int(np.prod(model.output_shape))
    names = class_names_for(model, k, class_names)
    fig = Figure(figsize=(ATTR_CELL * (1 + len(methods)), ATTR_CELL * n + 0.4), dpi=DPI)
    axes = fig.subplots(n, 1 + len(methods), squeeze=False,
                        gridspec_kw=dict(left=0.02, right=0.98,
                                         top=1 - 0.75 / (ATTR_CELL * n + 0.4),
                                         bottom=0.02, wspace=0.08, hspace=0.35))
    for i in range(n):
        img = data["images"][i]
        _show_image(axes[i, 0], img)
        pred = int(data["predicted"][i])
        title = f"pred {short_name(names[pred], 9)} ({data['probability'][i]:.0%})"
        if data["labels"] is not None:
            true = int(data["labels"][i])
            title += f"\ntrue {short_name(names[true], 9)}"
        axes[i, 0].set_title(title, fontsize=8,
                             color=_RIGHT if data["labels"] is None or
                             int(data["labels"][i]) == pred else _WRONG)
        for j, m in enumerate(methods, start=1):
            ax = axes[i, j]
            _show_image(ax, img)
            heat = np.asarray(data[m][i], dtype=np.float64)
            top = float(np.abs(heat).max()) or 1.0
            ax.imshow(np.clip(heat / top, 0, 1), cmap="inferno", alpha=0.6, vmin=0, vmax=1,
                      interpolation="nearest")
            sub = ATTR_TITLES[m]
            if randomize:
                rho = float(data[f"rho_{m}"][i])
                sub += "\nrandom weights: " + ("ρ undefined" if np.isnan(rho) else f"ρ={rho:.2f}")
            ax.set_title(sub, fontsize=8)
    fig.suptitle("Why this answer? Attributions for the predicted class", fontsize=10)
    return _save(fig, path)


def sanity_figure(model: Any, image: Any, path: PathLike = "sanity_check.png",
                  methods: Sequence[str] = ("saliency", "grad_cam"), seed: int = 0) -> Path:
    """Adebayo et al.'s cascading randomisation for one image: one row per method, the
    trained model's map, then the map after re-initialising the layers from the top
    down, one more at each step, with Spearman's rho against the trained map.

    Size: ``1.7 * (2 + steps) x 1.9 * len(methods) + 0.5`` inches at :data:`DPI`.
    """
    from cnnlab import explain

    x = _one_image(model, image)
    pred = int(_predict(model, x).argmax(axis=1)[0])
    checks = []
    for m in methods:
        if m not in ATTR_METHODS:
            raise InvalidArgumentError(f"unknown attribution method {m!r}")
        check = explain.randomization_check(model, x, pred, m, mode="cascade", seed=seed)
        steps = [sm[0] for sm in check.step_maps]
        checks.append((m, check, steps))
    n_steps = max(len(c[2]) for c in checks)
    fig = Figure(figsize=(1.7 * (2 + n_steps), 1.9 * len(methods) + 0.5), dpi=DPI)
    axes = fig.subplots(len(methods), 2 + n_steps, squeeze=False,
                        gridspec_kw=dict(left=0.02, right=0.98, top=0.86, bottom=0.02,
                                         wspace=0.1, hspace=0.45))
    for r, (m, check, steps) in enumerate(checks):
        _show_image(axes[r, 0], x[0])
        axes[r, 0].set_title(f"{ATTR_TITLES[m]}\n(pred {pred})", fontsize=8)
        maps = [check.trained[0], *steps]
        for c, mp in enumerate(maps, start=1):
            ax = axes[r, c]
            top = float(np.abs(mp).max()) or 1.0
            ax.imshow(np.clip(mp / top, 0, 1), cmap="inferno", vmin=0, vmax=1,
                      interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 1:
                ax.set_title("trained", fontsize=8)
            else:
                names, rho = check.steps[c - 2]
                val = float(rho[0])
                ax.set_title(f"to {short_name(names[-1], 10)}\n"
                             + ("ρ undefined" if np.isnan(val) else f"ρ={val:.2f}"), fontsize=8)
        for c in range(len(maps) + 1, 2 + n_steps):
            axes[r, c].set_axis_off()
    fig.suptitle("Sanity check: layers re-initialised from the top down (Adebayo et al., 2018)",
                 fontsize=10)
    return _save(fig, path)


def parameter_sharing_figure(model: Any, path: PathLike = "parameter_sharing.png") -> Path:
    """Each layer's parameter count beside a dense layer connecting the same input and
    output maps (:func:`cnnlab.explain.conclusion.parameter_sharing`), log scale.

    Size: ``8 x (1.2 + 0.55 * layers)`` inches at :data:`DPI`.
    """
    from cnnlab.explain.conclusion import parameter_sharing

    rows = parameter_sharing(model)
    if not rows:
        raise InvalidArgumentError("the model has no layer with weights")
    fig = Figure(figsize=(8.0, 1.2 + 0.55 * len(rows)), dpi=DPI)
    ax = fig.add_axes((0.24, 0.9 / (1.2 + 0.55 * len(rows)), 0.62,
                       1 - 1.15 / (1.2 + 0.55 * len(rows))))
    ys = np.arange(len(rows))[::-1]
    own = [r["params"] for r in rows]
    dense = [r["dense_params"] for r in rows]
    ax.barh(ys + 0.2, dense, height=0.38, color=_BAR, label="dense layer, same maps")
    ax.barh(ys - 0.2, own, height=0.38, color=_RIGHT, label="the layer (shared weights)")
    ax.set_xscale("log")
    ax.set_yticks(ys, [f"{r['layer']}\n{r['kind']}" for r in rows], fontsize=8)
    for y, a, b in zip(ys, own, dense, strict=True):
        ax.text(a, y - 0.2, f" {a:,}", va="center", fontsize=7)
        if b != a:
            ax.text(b, y + 0.2, f" {b:,} ({b / a:,.0f}x)", va="center", fontsize=7)
    ax.set_xlabel("parameters (log scale)")
    ax.set_xlim(1, max(dense) * 40)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Parameter sharing: a convolution reuses its filter at every position",
                 fontsize=10)
    return _save(fig, path)


_RF_COLOURS = ("#e53935", "#fb8c00", "#fdd835", "#43a047", "#1e88e5", "#8e24aa", "#6d4c41")


def receptive_fields_figure(model: Any, image: Any, path: PathLike = "receptive_fields.png",
                            position: Sequence[float] | None = None) -> Path:
    """Sparse interactions: the receptive field of the unit at the image's centre (or
    ``position``) in every convolution and pooling layer, drawn as boxes on the input
    (:func:`cnnlab.explain.conclusion.receptive_fields`), beside the gradient of the
    deepest such unit with respect to the image (zero outside its box).

    Size: ``9 x 4.4`` inches at :data:`DPI`.
    """
    from cnnlab.explain.conclusion import influence, receptive_fields

    x = _one_image(model, image)
    fields = receptive_fields(model, position)
    if not fields:
        raise InvalidArgumentError("the model has no convolution or pooling layer")
    fig = Figure(figsize=(9.0, 4.4), dpi=DPI)
    ax, ax2 = fig.subplots(1, 2, gridspec_kw=dict(left=0.02, right=0.72, top=0.86,
                                                  bottom=0.04, wspace=0.08))
    _show_image(ax, x[0])
    for i, f in enumerate(fields):
        r0, r1, c0, c1 = f["box"]
        colour = _RF_COLOURS[i % len(_RF_COLOURS)]
        ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, fill=False,
                               edgecolor=colour, linewidth=1.6))
        fig.text(0.74, 0.8 - 0.08 * i,
                 f"{f['layer']} ({f['kind']})\n{f['size'][0]}x{f['size'][1]} pixels, "
                 f"stride {f['jump'][0]}", color=colour, fontsize=8, va="top")
    ax.set_title("receptive fields of one unit per layer", fontsize=9)
    deep = fields[-1]
    grad = influence(model, x, deep["layer"], deep["unit"])
    ax2.imshow(grad, cmap="magma", interpolation="nearest")
    r0, r1, c0, c1 = deep["box"]
    ax2.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, fill=False,
                            edgecolor=_RF_COLOURS[(len(fields) - 1) % len(_RF_COLOURS)],
                            linewidth=1.6))
    ax2.set_xticks([])
    ax2.set_yticks([])
    ax2.set_title(f"|d {deep['layer']}[{deep['unit'][0]},{deep['unit'][1]}] / d image|",
                  fontsize=9)
    fig.suptitle("Sparse interactions: each unit sees only its receptive field", fontsize=10)
    return _save(fig, path)


def equivariance_figure(model: Any, image: Any, label: int | None = None,
                        path: PathLike = "equivariance.png", max_shift: int = 4,
                        grid: int = 6) -> Path:
    """Equivariance, measured: left, for shifts of 0..``max_shift`` pixels to the right,
    each convolution and pooling layer's error against its own maps shifted by
    ``round(k / stride)`` units, away from the borders (filled: exact shifts, where
    the stride divides ``k``; open: the others); right, the probability of ``label``
    (default: the predicted class) for the image moved by every ``(dy, dx)`` in
    ``-grid..grid`` (:mod:`cnnlab.explain.conclusion`).

    Size: ``11 x 4.4`` inches at :data:`DPI`.
    """
    from cnnlab.explain.conclusion import equivariance, shift_predictions

    x = _one_image(model, image)
    if label is None:
        label = int(_predict(model, x).argmax(axis=1)[0])
    rows = equivariance(model, x, range(0, check_positive_int(max_shift, "max_shift") + 1))
    sp = shift_predictions(model, x, int(label), range(-grid, grid + 1))
    fig = Figure(figsize=(11.0, 4.4), dpi=DPI)
    ax, ax2 = fig.subplots(1, 2, gridspec_kw=dict(left=0.07, right=0.95, top=0.86,
                                                  bottom=0.13, wspace=0.3))
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    floor = 1e-9
    for i, name in enumerate(layers):
        mine = [r for r in rows if r["layer"] == name and r["units"] > 0]
        colour = _RF_COLOURS[i % len(_RF_COLOURS)]
        ks = [r["shift"] for r in mine]
        errs = [max(r["error"], floor) for r in mine]
        ax.plot(ks, errs, color=colour, linewidth=1,
                label=f"{name} (stride {mine[0]['jump'] if mine else '?'})")
        for r, e in zip(mine, errs, strict=True):
            ax.plot(r["shift"], e, "o", color=colour,
                    markerfacecolor=colour if r["exact"] else "white")
    ax.set_yscale("log")
    ax.set_ylim(floor / 3, 3)
    ax.set_xlabel("shift k (pixels to the right)")
    ax.set_ylabel("max |maps(shifted) - shifted maps| / max |maps|")
    ax.set_title(f"maps: exact for k a multiple of the stride (error < {floor:g} drawn at "
                 f"{floor:g})", fontsize=9)
    ax.legend(fontsize=7)
    im = ax2.imshow(sp["probability"], cmap="viridis", vmin=0, vmax=1,
                    extent=(-grid - 0.5, grid + 0.5, grid + 0.5, -grid - 0.5))
    wrong = sp["predicted"] != label
    ys, xs = np.nonzero(wrong)
    ax2.plot(sp["shifts"][xs], sp["shifts"][ys], "x", color="white", markersize=4)
    ax2.set_xlabel("dx (pixels right)")
    ax2.set_ylabel("dy (pixels down)")
    kept = int((~wrong).sum())
    ax2.set_title(f"probability of class {label} under shifts; x: prediction changes "
                  f"({kept}/{wrong.size} kept)", fontsize=9)
    fig.colorbar(im, ax=ax2, fraction=0.046)
    fig.suptitle("Equivariance: the maps move with the image; the prediction only roughly "
                 "stays", fontsize=10)
    return _save(fig, path)


def make_explain(model: Any, out_dir: PathLike, x_test: Any, y_test: Any | None = None,
                 which: Iterable[str] | None = None, class_names: Sequence[Any] | None = None,
                 randomize: bool = True) -> dict[str, Path]:
    """Write the explain figures (:data:`cnnlab.viz.names.EXPLAIN_FIGURE_NAMES`) into
    ``out_dir``: ``attributions`` for every image of ``x_test`` (keep it to a few),
    the others for its first image. Returns ``{figure name: path}``."""
    from cnnlab.viz.names import EXPLAIN_FIGURE_NAMES, EXPLAIN_FIGURES

    chosen = list(EXPLAIN_FIGURES) if which is None else list(dict.fromkeys(which))
    unknown = [w for w in chosen if w not in EXPLAIN_FIGURE_NAMES]
    if unknown:
        raise InvalidArgumentError(
            f"unknown figure {unknown[0]!r}; choose from: {', '.join(EXPLAIN_FIGURES)}")
    out = Path(out_dir)
    x = as_model_batch(model, x_test, "x_test")
    if len(x) == 0:
        raise InvalidArgumentError("x_test: need at least one image")
    written: dict[str, Path] = {}
    for name in EXPLAIN_FIGURES:
        if name not in chosen:
            continue
        path = out / EXPLAIN_FIGURE_NAMES[name]
        if name == "attributions":
            written[name] = attributions_figure(model, x, y_test, path, randomize=randomize,
                                                class_names=class_names)
        elif name == "sanity":
            written[name] = sanity_figure(model, x[0], path)
        elif name == "parameter_sharing":
            written[name] = parameter_sharing_figure(model, path)
        elif name == "receptive_fields":
            written[name] = receptive_fields_figure(model, x[0], path)
        elif name == "equivariance":
            written[name] = equivariance_figure(model, x[0], path=path)
    return written

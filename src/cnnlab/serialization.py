"""Model files: safetensors weights with the architecture as JSON metadata.

One file holds everything: tensors named ``<layer>/<weight>`` (e.g.
``conv2d/kernel``), and metadata keys ``cnnlab_format``, ``architecture`` (the
model's :meth:`~cnnlab.Sequential.get_config`), ``training_config``,
and when known ``class_names`` (one per output) and ``preprocessing`` (how
an image becomes the model's input: ``{"mode": "digit"}`` for the slides'
MNIST preparation, ``{"mode": "resize", "size": [H, W], "color": ...}``)
(optimizer, loss, batch size, epochs ...). Loading parses JSON and raw
little-endian arrays only: no pickle, no code runs.

This module is the codec: it reads and writes the bytes and never imports
the model class. :mod:`cnnlab.saving` (above the model) rebuilds models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.backend import copy_into, to_numpy
from cnnlab.errors import ModelFileError
from cnnlab.fileio import atomic_write_bytes

FORMAT_VERSION = "1"
MAX_METADATA_BYTES = 10 * 1024 * 1024


def tensors_of(model: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """The weights as contiguous NumPy arrays named ``<layer>/<weight>``, copied to
    the host from whichever device holds them (a file never depends on the device)."""
    out = {}
    for layer in model.layers:
        for wname, w in zip(layer.weight_names, layer.weights, strict=True):
            out[f"{prefix}{layer.name}/{wname}"] = np.ascontiguousarray(to_numpy(w))
    return out


def encode(tensors: dict[str, np.ndarray], metadata: dict[str, Any]) -> bytes:
    from safetensors.numpy import save

    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    return save(tensors, metadata=meta)


def save_model(model: Any, path: str | Path, training_config: dict[str, Any] | None = None) -> Path:
    """Save ``model`` to ``path`` (``.safetensors``) atomically."""
    cfg = dict(training_config or {})
    if model.compiled and model.optimizer is not None:
        cfg.setdefault("optimizer", model.optimizer.get_config())
        cfg.setdefault("loss", model.loss)
    meta = {
        "cnnlab_format": FORMAT_VERSION,
        "architecture": model.get_config(),
        "training_config": cfg,
    }
    if getattr(model, "class_names", None) is not None:
        meta["class_names"] = list(model.class_names)
    if getattr(model, "preprocessing", None) is not None:
        meta["preprocessing"] = dict(model.preprocessing)
    return atomic_write_bytes(path, encode(tensors_of(model), meta))


def read_file(path: str | Path) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """Metadata and tensors of a safetensors file, or :class:`ModelFileError`."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    size = path.stat().st_size
    if size < 8:
        raise ModelFileError(f"{path}: {size} bytes is too short to be a model file (truncated?)")
    with open(path, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
    if header_len > min(size - 8, MAX_METADATA_BYTES):
        raise ModelFileError(
            f"{path}: header claims {header_len} bytes but the file holds {size} "
            "(truncated, or not a safetensors file)"
        )
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, TypeError) as e:
        raise ModelFileError(f"{path}: not a readable safetensors file ({e})") from None
    return meta, tensors


def parse_json_meta(meta: dict[str, str], key: str, source: str) -> Any:
    if key not in meta:
        raise ModelFileError(f"{source}: metadata has no {key!r} entry (not a cnnlab file?)")
    try:
        return json.loads(meta[key])
    except json.JSONDecodeError as e:
        raise ModelFileError(f"{source}: metadata {key!r} is not valid JSON ({e})") from None


def assign_tensors(model: Any, tensors: dict[str, np.ndarray], source: str,
                   prefix: str = "") -> None:
    """Copy tensors into the model, checking names, shapes and dtypes one by one.

    The model's weights keep their device: host tensors are copied onto a model
    placed on a GPU."""
    expected = {f"{prefix}{layer.name}/{wn}": (layer, i)
                for layer in model.layers for i, wn in enumerate(layer.weight_names)}
    present = {k for k in tensors if k.startswith(prefix)} if prefix else set(tensors)
    missing = sorted(set(expected) - present)
    extra = sorted(present - set(expected))
    if missing:
        raise ModelFileError(f"{source}: missing tensors {missing}")
    if extra:
        raise ModelFileError(f"{source}: unexpected tensors {extra} (another architecture?)")
    for key, (layer, i) in expected.items():
        t = tensors[key]
        want = layer.weights[i]
        if t.shape != want.shape:
            raise ModelFileError(
                f"{source}: tensor {key} has shape {t.shape}, the architecture needs {want.shape}"
            )
        if t.dtype.kind != "f":
            raise ModelFileError(f"{source}: tensor {key} has dtype {t.dtype}, expected floats")
        if not np.isfinite(t).all():
            raise ModelFileError(f"{source}: tensor {key} holds NaN or infinity")
        copy_into(want, t)

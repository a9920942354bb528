"""Training checkpoints: everything needed to continue a run bit for bit.

A checkpoint is one safetensors file, ``<dir>/checkpoint.safetensors``,
written atomically (temporary file, fsync, rename). It holds the weights, the
optimizer's slots and step count, the current epoch's shuffled order, and as
JSON metadata the architecture, the random generator's state, the position
(epoch, step), the running sums of the epoch's metrics and the history so far.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.backend import to_numpy
from cnnlab.errors import ModelFileError
from cnnlab.fileio import atomic_write_bytes
from cnnlab.serialization import assign_tensors, encode, parse_json_meta, read_file, tensors_of
from cnnlab.training.state import History, TrainState

CHECKPOINT_NAME = "checkpoint.safetensors"


def last_checkpoint(directory: str | Path | None) -> Path | None:
    """The checkpoint file in ``directory``, or ``None`` if there is none yet."""
    if directory is None:
        return None
    path = Path(directory) / CHECKPOINT_NAME
    return path if path.is_file() else None


def save_checkpoint(model: Any, directory: str | Path, state: TrainState) -> Path:
    """Write ``model``'s weights, optimizer and generator with ``state``, atomically."""
    assert model.optimizer is not None
    tensors = tensors_of(model, "model/")
    for key, arr in model.optimizer.get_state().items():
        tensors[f"optimizer/{key}"] = np.ascontiguousarray(to_numpy(arr))  # from any device
    if state.perm is not None:
        tensors["train/perm"] = np.ascontiguousarray(state.perm.astype(np.int64))
    meta = {
        "cnnlab_format": "checkpoint-1",
        "architecture": model.get_config(),
        "optimizer": model.optimizer.get_config(),
        "loss": model.loss,
        "rng_state": model.rng.bit_generator.state,
        "position": {
            "epoch": state.epoch, "step": state.step, "loss_sum": state.loss_sum,
            "correct": state.correct, "seen": state.seen, "elapsed": state.elapsed,
        },
        "history": {"epoch": state.history.epoch, "history": state.history.history},
    }
    return atomic_write_bytes(Path(directory) / CHECKPOINT_NAME, encode(tensors, meta))


def load_checkpoint(model: Any, directory: str | Path) -> TrainState:
    """Restore weights, optimizer and generator into ``model``; return the position."""
    path = last_checkpoint(directory)
    if path is None:
        raise ModelFileError(f"{directory}: no {CHECKPOINT_NAME} to resume from")
    source = str(path)
    meta, tensors = read_file(path)
    if meta.get("cnnlab_format") != "checkpoint-1":
        raise ModelFileError(f"{source}: not a cnnlab checkpoint")
    arch = parse_json_meta(meta, "architecture", source)
    if arch != model.get_config():
        raise ModelFileError(f"{source}: the checkpoint was written by a different architecture")
    assign_tensors(model, tensors, source, prefix="model/")
    assert model.optimizer is not None
    opt_state = {k[len("optimizer/"):]: v for k, v in tensors.items() if k.startswith("optimizer/")}
    params = [w for layer in model.layers for w in layer.trainable_weights]
    try:
        model.optimizer.set_state(opt_state, params)
        model.rng.bit_generator.state = parse_json_meta(meta, "rng_state", source)
        pos = parse_json_meta(meta, "position", source)
        hist = parse_json_meta(meta, "history", source)
        state = TrainState(
            epoch=int(pos["epoch"]), step=int(pos["step"]),
            history=History(history=hist["history"], epoch=hist["epoch"]),
            perm=tensors.get("train/perm"), loss_sum=float(pos["loss_sum"]),
            correct=int(pos["correct"]), seen=int(pos["seen"]), elapsed=float(pos["elapsed"]),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{source}: incomplete checkpoint ({e})") from None
    return state


def read_training_config(directory: str | Path) -> dict[str, Any]:
    """The ``training_config.json`` that ``cnnlab train`` writes beside a checkpoint."""
    path = Path(directory) / "training_config.json"
    if not path.is_file():
        raise ModelFileError(f"{directory}: no training_config.json (not a cnnlab run folder?)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ModelFileError(f"{path}: not valid JSON ({e})") from None

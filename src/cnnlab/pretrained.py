"""The trained seed model shipped with the package (see README: how it was trained)."""

from __future__ import annotations

from pathlib import Path

from cnnlab.errors import ModelFileError

PRETRAINED_PATH = Path(__file__).parent / "models" / "mnist_seed.safetensors"


def pretrained_path() -> Path:
    """Path of the shipped MNIST model, or :class:`ModelFileError` if it is missing."""
    if not PRETRAINED_PATH.is_file():
        raise ModelFileError(f"the shipped model {PRETRAINED_PATH} is missing")
    return PRETRAINED_PATH


def load_pretrained():
    """The shipped trained seed model (compiled, ready to evaluate or predict)."""
    from cnnlab.saving import load_model

    return load_model(pretrained_path())

"""Layers with Keras's names and arguments; the math lives in :mod:`cnnlab.ops`."""

from cnnlab.layers.base import Layer
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.core import Activation, Dense, Dropout, Flatten
from cnnlab.layers.pooling import AveragePooling2D, MaxPooling2D

LAYER_TYPES: dict[str, type[Layer]] = {
    cls.__name__: cls
    for cls in (Conv2D, MaxPooling2D, AveragePooling2D, Dense, Dropout, Flatten, Activation)
}

__all__ = [
    "LAYER_TYPES",
    "Activation",
    "AveragePooling2D",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "Layer",
    "MaxPooling2D",
]

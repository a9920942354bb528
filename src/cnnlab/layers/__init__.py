"""Layers with Keras's names and arguments; the math lives in :mod:`cnnlab.ops`."""

from cnnlab.layers.base import Layer
from cnnlab.layers.conv import Conv2D
from cnnlab.layers.core import Activation, Dense, Dropout, Flatten
from cnnlab.layers.normalization import BatchNormalization
from cnnlab.layers.pooling import (
    AveragePooling2D,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    MaxPooling2D,
)
from cnnlab.layers.reshape import ZeroPadding2D

LAYER_TYPES: dict[str, type[Layer]] = {
    cls.__name__: cls
    for cls in (Conv2D, MaxPooling2D, AveragePooling2D, Dense, Dropout, Flatten, Activation,
                BatchNormalization, GlobalAveragePooling2D, GlobalMaxPooling2D, ZeroPadding2D)
}

__all__ = [
    "LAYER_TYPES",
    "Activation",
    "AveragePooling2D",
    "BatchNormalization",
    "Conv2D",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "Layer",
    "MaxPooling2D",
    "ZeroPadding2D",
]

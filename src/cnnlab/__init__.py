"""cnnlab: convolutional neural networks from first principles, in NumPy.

>>> import cnnlab
>>> model = cnnlab.seed_model(seed=0)
>>> model.count_params()
1134426
"""

from cnnlab import ops
from cnnlab.errors import (
    ChecksumError,
    CnnlabError,
    DataFormatError,
    DownloadError,
    ImageDecodeError,
    InvalidArgumentError,
    ModelFileError,
    NoDigitError,
    NonFiniteError,
    ShapeError,
    SpecError,
)
from cnnlab.layers import (
    Activation,
    AveragePooling2D,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    Layer,
    MaxPooling2D,
    ZeroPadding2D,
)
from cnnlab.model import Sequential
from cnnlab.optimizers import SGD, Adadelta, Adam, RMSprop
from cnnlab.saving import load_model, model_from_json, save_model
from cnnlab.schedules import Constant, OneCycle
from cnnlab.training import Callback, History, TrainingInterrupted
from cnnlab.zoo import seed_model, small_cnn

__version__ = "0.1.0"

__all__ = [
    "SGD",
    "Activation",
    "Adadelta",
    "Adam",
    "AveragePooling2D",
    "BatchNormalization",
    "Callback",
    "ChecksumError",
    "Constant",
    "CnnlabError",
    "Conv2D",
    "DataFormatError",
    "DownloadError",
    "ImageDecodeError",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "History",
    "InvalidArgumentError",
    "Layer",
    "MaxPooling2D",
    "ModelFileError",
    "NoDigitError",
    "NonFiniteError",
    "OneCycle",
    "RMSprop",
    "Sequential",
    "ShapeError",
    "SpecError",
    "TrainingInterrupted",
    "ZeroPadding2D",
    "load_model",
    "model_from_json",
    "ops",
    "save_model",
    "seed_model",
    "small_cnn",
    "__version__",
]

"""cnnlab: convolutional neural networks from first principles, in NumPy.

>>> import cnnlab
>>> model = cnnlab.seed_model(seed=0)
>>> model.count_params()
1134426
"""

from cnnlab import ops, regularizers
from cnnlab.errors import (
    ChecksumError,
    CnnlabError,
    DataFormatError,
    DeviceError,
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
from cnnlab.optimizers import SGD, Adadelta, Adam, AdamW, RMSprop
from cnnlab.regularizers import L2
from cnnlab.saving import load_model, model_from_json, save_model
from cnnlab.schedules import Constant, OneCycle
from cnnlab.training import (
    Callback,
    CSVLogger,
    EarlyStopping,
    History,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TrainingInterrupted,
)
from cnnlab.zoo import seed_model, small_cnn

__version__ = "0.1.0"

__all__ = [
    "SGD",
    "Activation",
    "Adadelta",
    "Adam",
    "AdamW",
    "AveragePooling2D",
    "BatchNormalization",
    "CSVLogger",
    "Callback",
    "ChecksumError",
    "Constant",
    "CnnlabError",
    "Conv2D",
    "DataFormatError",
    "DeviceError",
    "DownloadError",
    "ImageDecodeError",
    "Dense",
    "Dropout",
    "EarlyStopping",
    "Flatten",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "History",
    "InvalidArgumentError",
    "L2",
    "Layer",
    "MaxPooling2D",
    "ModelCheckpoint",
    "ModelFileError",
    "NoDigitError",
    "NonFiniteError",
    "OneCycle",
    "RMSprop",
    "ReduceLROnPlateau",
    "Sequential",
    "ShapeError",
    "SpecError",
    "TrainingInterrupted",
    "ZeroPadding2D",
    "load_model",
    "model_from_json",
    "ops",
    "regularizers",
    "save_model",
    "seed_model",
    "small_cnn",
    "__version__",
]

"""Training: the loop, its state, callbacks and checkpoints.

:func:`fit` runs epochs of :func:`train_step` over a batch source
(:mod:`~cnnlab.training.data`), calls :class:`Callback` hooks, writes
checkpoints (:mod:`~cnnlab.training.checkpoint`) and turns Ctrl-C into a
resumable stop. ``reduce_gradients`` is where a distributed run combines
gradients across processes. Keras's standard callbacks (:class:`EarlyStopping`,
:class:`ModelCheckpoint`, :class:`ReduceLROnPlateau`, :class:`CSVLogger`) are in
:mod:`~cnnlab.training.keras_callbacks`.
"""

from cnnlab.training.callbacks import Callback, CallbackList, ProgressLogger
from cnnlab.training.checkpoint import (
    last_checkpoint,
    load_checkpoint,
    read_training_config,
    save_checkpoint,
)
from cnnlab.training.data import ArrayBatches, IterableBatches
from cnnlab.training.keras_callbacks import (
    CSVLogger,
    EarlyStopping,
    ModelCheckpoint,
    ReduceLROnPlateau,
)
from cnnlab.training.loop import (
    DataParallel,
    GradientReducer,
    TrainingInterrupted,
    apply_gradients,
    compute_gradients,
    fit,
    local_gradients,
    regularization_loss,
    train_step,
)
from cnnlab.training.state import History, TrainState

__all__ = [
    "ArrayBatches",
    "CSVLogger",
    "Callback",
    "CallbackList",
    "DataParallel",
    "EarlyStopping",
    "GradientReducer",
    "History",
    "IterableBatches",
    "ModelCheckpoint",
    "ProgressLogger",
    "ReduceLROnPlateau",
    "TrainState",
    "TrainingInterrupted",
    "apply_gradients",
    "compute_gradients",
    "fit",
    "last_checkpoint",
    "load_checkpoint",
    "local_gradients",
    "read_training_config",
    "regularization_loss",
    "save_checkpoint",
    "train_step",
]

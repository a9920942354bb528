"""Training: the loop, its state, callbacks and checkpoints.

:func:`fit` runs epochs of :func:`train_step` over a batch source
(:mod:`~cnnlab.training.data`), calls :class:`Callback` hooks, writes
checkpoints (:mod:`~cnnlab.training.checkpoint`) and turns Ctrl-C into a
resumable stop. ``reduce_gradients`` is where a distributed run combines
gradients across processes.
"""

from cnnlab.training.callbacks import Callback, CallbackList, ProgressLogger
from cnnlab.training.checkpoint import (
    last_checkpoint,
    load_checkpoint,
    read_training_config,
    save_checkpoint,
)
from cnnlab.training.data import ArrayBatches, IterableBatches
from cnnlab.training.loop import (
    GradientReducer,
    TrainingInterrupted,
    fit,
    local_gradients,
    train_step,
)
from cnnlab.training.state import History, TrainState

__all__ = [
    "ArrayBatches",
    "Callback",
    "CallbackList",
    "GradientReducer",
    "History",
    "IterableBatches",
    "ProgressLogger",
    "TrainState",
    "TrainingInterrupted",
    "fit",
    "last_checkpoint",
    "load_checkpoint",
    "local_gradients",
    "read_training_config",
    "save_checkpoint",
    "train_step",
]

"""Ready-made architectures: the slides' MNIST model and a small demo CNN.

>>> seed_model(seed=0).count_params()
1134426
>>> small_cnn(seed=0).count_params()
13610
"""

from __future__ import annotations

from cnnlab.layers import Activation, Conv2D, Dense, Dropout, Flatten, MaxPooling2D
from cnnlab.model import Sequential


def seed_model(seed: int | None = None, input_shape: tuple[int, int, int] = (28, 28, 1),
               num_classes: int = 10) -> Sequential:
    """The slides' MNIST model, layer for layer (1,134,426 parameters).

    Conv2D(16, 2, same, relu) -> MaxPooling2D(2) -> Conv2D(128, 3, relu) ->
    Conv2D(256, 3, relu) -> MaxPooling2D(2) -> Dropout(0.25) -> Flatten ->
    Dense(128, relu) -> Dropout(0.5) -> Dense(10) -> Activation(softmax).
    """
    return Sequential(
        [
            Conv2D(16, 2, padding="same", activation="relu"),
            MaxPooling2D(2),
            Conv2D(128, 3, activation="relu"),
            Conv2D(256, 3, activation="relu"),
            MaxPooling2D(2),
            Dropout(0.25),
            Flatten(),
            Dense(128, activation="relu"),
            Dropout(0.5),
            Dense(num_classes),
            Activation("softmax"),
        ],
        input_shape=input_shape,
        seed=seed,
    )


def small_cnn(seed: int | None = None, input_shape: tuple[int, int, int] = (28, 28, 1),
              num_classes: int = 10) -> Sequential:
    """A small CNN that trains in seconds (the demo's model when none is given).

    Conv2D(8, 3, relu) -> MaxPooling2D(2) -> Flatten -> Dense(10) -> Activation(softmax).
    """
    return Sequential(
        [Conv2D(8, 3, activation="relu"), MaxPooling2D(2), Flatten(), Dense(num_classes),
         Activation("softmax")],
        input_shape=input_shape,
        name="small_cnn",
        seed=seed,
    )

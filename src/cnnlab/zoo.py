"""Ready-made architectures, by name: the slides' model, LeNet-5, a small VGG; and specs.

:func:`get_model` builds a zoo entry (``"seed"``, ``"lenet5"``, ``"vgg-small"``)
or a JSON spec file for a data set's input shape and class count.

>>> seed_model(seed=0).count_params()
1134426
>>> lenet5(seed=0).count_params()
61706
>>> vgg_small(seed=0).count_params()
289642
>>> small_cnn(seed=0).count_params()
13610
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from cnnlab.errors import CnnlabError, SpecError
from cnnlab.layers import (
    Activation,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    MaxPooling2D,
)
from cnnlab.model import Sequential
from cnnlab.saving import load_spec, model_from_config


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


def lenet5(seed: int | None = None, input_shape: tuple[int, int, int] = (28, 28, 1),
           num_classes: int = 10) -> Sequential:
    """LeNet-5 (LeCun, Bottou, Bengio and Haffner, 1998) in its usual modern form.

    C1 Conv2D(6, 5x5, same) -> S2 pool 2 -> C3 Conv2D(16, 5x5) -> S4 pool 2 ->
    C5 Dense(120) -> F6 Dense(84) -> output Dense(10) + softmax: 61,706
    parameters on 28x28 MNIST. Departures from the paper, each the common
    modern choice:

    * C1 pads the 28x28 digit by 2 ("same"), as the paper's 32x32 input frame did;
    * ReLU instead of the scaled tanh ``1.7159 tanh(2x/3)``;
    * max pooling instead of the trainable average subsampling with a sigmoid;
    * C3 connects every S2 map to every C3 map (the paper's table connects
      each C3 map to 3, 4 or 6 of them, to break symmetry and save weights);
    * C5 is a Dense layer (on 5x5 maps a 5x5 convolution is one);
    * a softmax with cross-entropy instead of the Euclidean RBF output units
      and the paper's MAP criterion.
    """
    return Sequential(
        [
            Conv2D(6, 5, padding="same", activation="relu"),
            MaxPooling2D(2),
            Conv2D(16, 5, activation="relu"),
            MaxPooling2D(2),
            Flatten(),
            Dense(120, activation="relu"),
            Dense(84, activation="relu"),
            Dense(num_classes),
            Activation("softmax"),
        ],
        input_shape=input_shape,
        name="lenet5",
        seed=seed,
    )


def vgg_small(seed: int | None = None, input_shape: tuple[int, int, int] = (32, 32, 3),
              num_classes: int = 10) -> Sequential:
    """A small VGG-style network for 32x32 colour images.

    289,642 parameters at 10 classes (896 of them BatchNormalization's moving
    statistics, not trained).

    Three blocks of two 3x3 convolutions (32, 64, 128 filters, "same" padding,
    no bias) each followed by BatchNormalization and ReLU, then 2x2 max
    pooling; global average pooling, Dropout(0.3), Dense(classes) + softmax.
    As in Simonyan and Zisserman (2015): stacks of 3x3 convolutions, the width
    doubling after each pooling; BatchNormalization (Ioffe and Szegedy, 2015)
    and global average pooling (Lin et al., 2014) in place of VGG's large
    fully connected layers. Any input of at least 8x8 works.
    """
    layers: list = []
    for filters in (32, 64, 128):
        for _ in range(2):
            layers += [Conv2D(filters, 3, padding="same", use_bias=False),
                       BatchNormalization(), Activation("relu")]
        layers.append(MaxPooling2D(2))
    layers += [GlobalAveragePooling2D(), Dropout(0.3), Dense(num_classes), Activation("softmax")]
    return Sequential(layers, input_shape=input_shape, name="vgg_small", seed=seed)


Builder = Callable[..., Sequential]

#: The zoo: name -> builder ``(seed, input_shape, num_classes) -> Sequential``.
ZOO: dict[str, Builder] = {"seed": seed_model, "lenet5": lenet5, "vgg-small": vgg_small}
_ALIASES = {"seed_model": "seed"}


def get_model(name_or_spec: str | Path, *, input_shape: Sequence[int], num_classes: int | None,
              seed: int | None = 0) -> Sequential:
    """A zoo entry by name, or a JSON spec file (``*.json``), built for the data.

    The spec's input shape and last layer must agree with ``input_shape`` and
    ``num_classes`` (left out of the spec, the input shape comes from the data).

    Raises:
        SpecError: an unknown name, an unreadable or invalid spec, or a model
            that does not fit the data (naming the layer and the shapes).
    """
    name = str(name_or_spec)
    key = _ALIASES.get(name, name)
    if key in ZOO:
        try:
            return ZOO[key](seed=seed, input_shape=tuple(input_shape),
                            num_classes=10 if num_classes is None else num_classes)
        except CnnlabError as e:  # a zoo model that cannot take this data's shape
            raise SpecError(f"model {key!r} does not fit the data: {e}") from None
    if name.endswith(".json") or Path(name).is_file():
        spec = load_spec(name)
        return model_from_config(spec, name, input_shape=input_shape, num_classes=num_classes,
                                 seed=seed)
    raise SpecError(f"unknown model {name!r}: expected one of {', '.join(sorted(ZOO))} or a "
                    "JSON spec file")

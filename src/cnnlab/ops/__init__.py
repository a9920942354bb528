"""Pure functions on arrays: padding, convolution, pooling, activations, losses.

Each forward sits beside its backward, and each docstring states the formula.
"""

from cnnlab.ops.activations import get_activation, relu, sigmoid, softmax, tanh
from cnnlab.ops.conv import (
    conv2d_backward,
    conv2d_backward_filter_reference,
    conv2d_backward_input_reference,
    conv2d_forward,
    conv2d_forward_reference,
    correlate2d,
)
from cnnlab.ops.losses import categorical_cross_entropy, softmax_cross_entropy
from cnnlab.ops.padding import dilate2d, output_hw, pad2d, resolve_padding
from cnnlab.ops.pooling import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)

__all__ = [
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "categorical_cross_entropy",
    "conv2d_backward",
    "conv2d_backward_filter_reference",
    "conv2d_backward_input_reference",
    "conv2d_forward",
    "conv2d_forward_reference",
    "correlate2d",
    "dilate2d",
    "get_activation",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "output_hw",
    "pad2d",
    "relu",
    "resolve_padding",
    "sigmoid",
    "softmax",
    "softmax_cross_entropy",
    "tanh",
]

"""Why did the model decide that? Gradients, attributions and checks on a trained model.

:func:`backprop` is the base: one inference-mode pass that keeps every layer's
input, output and gradients (see :mod:`cnnlab.explain.backprop`).
"""

from cnnlab.explain.backprop import OBJECTIVES, Trace, backprop

__all__ = ["OBJECTIVES", "Trace", "backprop"]

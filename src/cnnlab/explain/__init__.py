"""Why did the model decide that? Gradients, attributions and checks on a trained model.

:func:`backprop` is the base: one inference-mode pass that keeps every layer's
input, output and gradients (see :mod:`cnnlab.explain.backprop`). On it:

* :func:`saliency`: the input gradient of a class score (Simonyan et al., 2014).
* :func:`grad_cam`: Grad-CAM on the last convolution (Selvaraju et al., 2017).
* :func:`occlusion`: the probability drop under a sliding patch (Zeiler and Fergus, 2014).
* :func:`randomization_check`: the maps of a re-initialised model against the
  trained model's, Spearman's rank correlation (Adebayo et al., 2018).
* :func:`confusion`: the confusion matrix and, per cell, its images by confidence.
* :mod:`cnnlab.explain.conclusion`: the slides' conclusion measured: parameter
  sharing, sparse interactions (receptive fields), equivariance to shifts.
"""

from cnnlab.explain._common import (
    Attribution,
    rankdata,
    resize_bilinear,
    spearman,
    with_weights,
)
from cnnlab.explain.backprop import OBJECTIVES, Trace, backprop
from cnnlab.explain.confusion import Confusion, confusion, confusion_from_probabilities
from cnnlab.explain.gradcam import grad_cam, last_conv_layer
from cnnlab.explain.occlusion import occlusion
from cnnlab.explain.saliency import saliency
from cnnlab.explain.sanity import (
    RandomizationCheck,
    randomization_check,
    randomized_model,
    reinitialized_weights,
)

__all__ = [
    "OBJECTIVES",
    "Attribution",
    "Confusion",
    "RandomizationCheck",
    "Trace",
    "backprop",
    "confusion",
    "confusion_from_probabilities",
    "grad_cam",
    "last_conv_layer",
    "occlusion",
    "randomization_check",
    "randomized_model",
    "rankdata",
    "reinitialized_weights",
    "resize_bilinear",
    "saliency",
    "spearman",
    "with_weights",
]

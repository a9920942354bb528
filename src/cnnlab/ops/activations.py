"""Activation functions, each forward beside its backward.

Every backward takes ``(grad, y, x)``: the upstream gradient, the
activation's output ``y`` and its input ``x``. All but GELU need only ``y``,
so layers may compute them in place (``out=x``) and keep one array per pass:

* ReLU:    ``y = max(x, 0)``,              ``dx = dy * (y > 0)``
* sigmoid: ``y = 1 / (1 + e^-x)``,         ``dx = dy * y * (1 - y)``
* tanh:    ``y = tanh(x)``,                ``dx = dy * (1 - y^2)``
* softmax: ``y_i = e^{x_i} / sum_k e^{x_k}`` (the slides' formula, computed
  after subtracting the row maximum so it cannot overflow),
  ``dx = y * (dy - sum_i dy_i y_i)``
* linear:  ``y = x``,                      ``dx = dy``
* leaky ReLU: ``y = x if x > 0 else a x`` (``a = 0.2``, Keras 3's
  ``negative_slope`` for the name ``"leaky_relu"``), ``dx = dy * (1 if y > 0 else a)``
* ELU:     ``y = x if x > 0 else alpha (e^x - 1)`` (``alpha = 1``),
  ``dx = dy * (1 if y > 0 else y + alpha)``
* GELU:    ``y = x Phi(x) = (x / 2)(1 + erf(x / sqrt 2))``, exact (Keras 3's
  ``"gelu"`` is ``approximate=False``), ``dx = dy * (Phi(x) + x phi(x))``
  with ``phi`` the standard normal density.

GELU's derivative cannot be read from ``y`` (it is not one-to-one below
``x = -0.75``): :func:`gelu_backward` recomputes it from ``x``, so layers keep
the input of the activations :func:`reads_input` names (and never compute
those in place). NumPy has no ``erf``: ``Phi`` comes from :func:`normal_cdf`, a
Chebyshev expansion of the scaled complementary error function.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from cnnlab.backend import array_module
from cnnlab.errors import InvalidArgumentError


def relu(x: Any, out: Any | None = None) -> Any:
    """``max(x, 0)``; pass ``out=x`` to work in place."""
    xp = array_module(x)
    return xp.maximum(x, 0, out=out)


def relu_backward(grad: Any, y: Any, x: Any = None) -> Any:
    return grad * (y > 0)


def sigmoid(x: Any, out: Any | None = None) -> Any:
    xp = array_module(x)
    # stable on both tails: e^-|x| never overflows
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def sigmoid_backward(grad: Any, y: Any, x: Any = None) -> Any:
    return grad * y * (1 - y)


def tanh(x: Any, out: Any | None = None) -> Any:
    xp = array_module(x)
    return xp.tanh(x, out=out)


def tanh_backward(grad: Any, y: Any, x: Any = None) -> Any:
    return grad * (1 - y * y)


def softmax(x: Any, out: Any | None = None, axis: int = -1) -> Any:
    """``e^{x_i} / sum_k e^{x_k}`` along ``axis``, shifted by the maximum for stability."""
    xp = array_module(x)
    z = x - x.max(axis=axis, keepdims=True)
    e = xp.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def softmax_backward(grad: Any, y: Any, x: Any = None, axis: int = -1) -> Any:
    return y * (grad - (grad * y).sum(axis=axis, keepdims=True))


def linear(x: Any, out: Any | None = None) -> Any:
    return x


def linear_backward(grad: Any, y: Any, x: Any = None) -> Any:
    return grad


#: Keras 3's ``negative_slope`` of ``keras.activations.leaky_relu`` (the name ``"leaky_relu"``).
LEAKY_RELU_SLOPE = 0.2
#: Keras 3's ``alpha`` of ``keras.activations.elu``.
ELU_ALPHA = 1.0


def leaky_relu(x: Any, out: Any | None = None, negative_slope: float = LEAKY_RELU_SLOPE) -> Any:
    """``x`` where ``x > 0``, else ``negative_slope * x``."""
    xp = array_module(x)
    return xp.where(x > 0, x, x * x.dtype.type(negative_slope))


def leaky_relu_backward(grad: Any, y: Any, x: Any = None,
                        negative_slope: float = LEAKY_RELU_SLOPE) -> Any:
    """``y > 0`` exactly where ``x > 0`` (for a positive ``negative_slope``)."""
    xp = array_module(grad)
    return xp.where(y > 0, grad, grad * grad.dtype.type(negative_slope))


def elu(x: Any, out: Any | None = None, alpha: float = ELU_ALPHA) -> Any:
    """``x`` where ``x > 0``, else ``alpha * (e^x - 1)`` (``expm1``: exact near 0)."""
    xp = array_module(x)
    neg = xp.expm1(xp.minimum(x, 0))  # the minimum: no overflow warning for large x
    if alpha != 1.0:
        neg *= x.dtype.type(alpha)
    return xp.where(x > 0, x, neg)


def elu_backward(grad: Any, y: Any, x: Any = None, alpha: float = ELU_ALPHA) -> Any:
    """For ``x <= 0``, ``dy/dx = alpha e^x = y + alpha``; ``y > 0`` exactly where ``x > 0``
    (for a positive ``alpha``)."""
    xp = array_module(grad)
    return xp.where(y > 0, grad, grad * (y + y.dtype.type(alpha)))


# ----------------------------------------------------------------------------- GELU

#: Chebyshev coefficients, ``f(u) = sum_k c_k T_k(u)``, of ``f = (1 + 2t) e^{t^2} erfc(t)``
#: on ``u = (t - K) / (t + K)`` in ``[-1, 1)`` for ``t`` in ``[0, inf)``: Shepherd and
#: Laframboise's mapping (Math. Comp. 36, 1981) of the scaled complementary error
#: function, which is smooth over the whole half-line. Computed for cnnlab with
#: mpmath at 50 digits (a 160-point discrete cosine transform); every coefficient
#: above 1e-17 is kept. Truncating after the first 14 leaves an error under 1.3e-10
#: (enough for float32), after all 25 under 2.3e-16 (``tests/test_new_layers.py``
#: checks against ``math.erfc``).
_ERFCX_K = 3.0
_ERFCX_CHEB = (
    1.17756257419656, 0.005353904539615676, -0.09377550342284209, 0.05436652555744322,
    -0.018976596707845208, 0.004453426061462712, -0.0006335531710553147,
    1.7661719523171593e-05, 1.2841532864056671e-05, -2.0072285659059913e-06,
    -1.807522790414837e-07, 7.549828343825093e-08, 1.885668523838603e-09,
    -2.699519049798364e-09, -1.460079119939105e-11, 1.0361607445969489e-10,
    1.475715976623473e-12, -4.277340064396911e-12, -2.07922492859799e-13,
    1.8134502003176963e-13, 1.973425574544739e-14, -7.287943737592673e-15,
    -1.5169878690228116e-15, 2.3514112258781403e-16, 1.0006111691821667e-16,
)
#: How many coefficients float16/float32 inputs use (float64 ones use all).
_ERFCX_TERMS_FLOAT32 = 14
#: The same truncated expansions as polynomials in ``u``, highest power first, for
#: Horner's rule (two operations per term where Clenshaw's recurrence takes three);
#: their coefficients stay under 2.5 in size, so nothing cancels.
_ERFCX_POLY = {
    n: tuple(float(a) for a in np.polynomial.chebyshev.cheb2poly(_ERFCX_CHEB[:n])[::-1])
    for n in (_ERFCX_TERMS_FLOAT32, len(_ERFCX_CHEB))
}
_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_GELU_TANH_C = math.sqrt(2.0 / math.pi)

#: Elements per block in :func:`gelu` on the CPU: the block's float64
#: temporaries (64 KiB each) stay in the core's cache through the twenty-odd
#: passes of the expansion, about five times faster than whole-array passes on a
#: (32, 28, 28, 32) map; much smaller blocks pay NumPy's per-call cost instead.
GELU_BLOCK = 1 << 13


def _terms_for(dtype: Any) -> int:
    return len(_ERFCX_CHEB) if dtype.itemsize >= 8 else _ERFCX_TERMS_FLOAT32


def _cdf_pdf(v: Any, terms: int) -> tuple[Any, Any]:
    """``(Phi(v), phi(v))`` for a float64 array, from ``erfc(|v| / sqrt 2)``."""
    xp = array_module(v)
    poly = _ERFCX_POLY[terms]
    t = xp.abs(v)
    t *= _SQRT_HALF
    u = t - _ERFCX_K
    u /= t + _ERFCX_K
    f = xp.full_like(t, poly[0])
    for a in poly[1:]:  # f(u) = (1 + 2t) e^{t^2} erfc(t)
        f *= u
        f += a
    f /= 2.0 * t + 1.0
    gauss = t
    xp.multiply(t, t, out=gauss)
    xp.negative(gauss, out=gauss)
    xp.exp(gauss, out=gauss)  # e^{-t^2} = e^{-v^2 / 2}
    f *= gauss
    f *= 0.5  # Phi(-|v|) = erfc(t) / 2: accurate in the far left tail too
    cdf = xp.where(v < 0, f, 1.0 - f)
    gauss *= _INV_SQRT_2PI
    return cdf, gauss


def normal_cdf(x: Any, terms: int | None = None) -> Any:
    """``Phi(x) = P(Z <= x) = erfc(-x / sqrt 2) / 2`` for a standard normal ``Z``, in float64.

    Absolute error under 3e-16 with all 25 coefficients (``terms``' default for
    float64 ``x``), under 7e-11 with the 14 that float32 ``x`` uses.

    >>> import numpy as np
    >>> normal_cdf(np.array([-1.0, 0.0, 1.96]))
    array([0.15865525, 0.5       , 0.9750021 ])
    """
    xp = array_module(x)
    terms = _terms_for(x.dtype) if terms is None else terms
    if terms not in _ERFCX_POLY:
        raise InvalidArgumentError(f"normal_cdf: terms must be one of {sorted(_ERFCX_POLY)}, "
                                   f"got {terms!r}")
    return _cdf_pdf(x.astype(xp.float64, copy=False), terms)[0]


def _gelu(x: Any, approximate: bool, derivative: bool) -> Any:
    """``x Phi(x)`` (or the tanh form), or with ``derivative`` its ``dy/dx``; computed
    in float64, block by block (``GELU_BLOCK``), returned in ``x``'s dtype."""
    xp = array_module(x)
    out = xp.empty(x.shape, dtype=x.dtype)
    xs, os_ = x.reshape(-1), out.reshape(-1)
    block = GELU_BLOCK if xp.__name__ == "numpy" else max(xs.size, 1)
    terms = _terms_for(x.dtype)
    for lo in range(0, xs.size, block):
        v = xs[lo : lo + block].astype(xp.float64)
        if approximate:
            th = xp.tanh(_GELU_TANH_C * (v + 0.044715 * v**3))
            if derivative:
                os_[lo : lo + block] = 0.5 * (1.0 + th) + (
                    0.5 * v * (1.0 - th * th) * _GELU_TANH_C * (1.0 + 3 * 0.044715 * v * v))
            else:
                os_[lo : lo + block] = 0.5 * v * (1.0 + th)
            continue
        cdf, pdf = _cdf_pdf(v, terms)
        if derivative:
            pdf *= v
            pdf += cdf
            os_[lo : lo + block] = pdf  # Phi(x) + x phi(x)
        else:
            cdf *= v
            os_[lo : lo + block] = cdf  # x Phi(x)
    return out


def gelu(x: Any, out: Any | None = None, approximate: bool = False) -> Any:
    """``x Phi(x)``, or with ``approximate=True`` the tanh form
    ``(x / 2)(1 + tanh(sqrt(2 / pi)(x + 0.044715 x^3)))``. Never in place
    (``out`` is ignored): the backward needs ``x``.

    >>> import numpy as np
    >>> x = np.array([-3.0, -0.5, 0.0, 1.0])
    >>> gelu(x)
    array([-0.00404969, -0.15426877,  0.        ,  0.84134475])
    >>> gelu_backward(np.ones(4), gelu(x), x)  # Phi(x) + x phi(x)
    array([-0.01194565,  0.13250488,  0.5       ,  1.08331547])
    """
    return _gelu(x, approximate, derivative=False)


def gelu_backward(grad: Any, y: Any, x: Any = None, approximate: bool = False) -> Any:
    """``dx = dy * (Phi(x) + x phi(x))`` (or the tanh form's derivative), from ``x``."""
    if x is None:
        raise InvalidArgumentError("gelu_backward needs the activation's input x")
    return grad * _gelu(x, approximate, derivative=True)


#: Activations whose backward reads the input ``x``: never computed in place.
READS_INPUT = frozenset({"gelu"})


def reads_input(name: str) -> bool:
    """Whether the named activation's backward needs its input (layers then keep it)."""
    return name in READS_INPUT


ACTIVATIONS: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {
    "relu": (relu, relu_backward),
    "sigmoid": (sigmoid, sigmoid_backward),
    "tanh": (tanh, tanh_backward),
    "softmax": (softmax, softmax_backward),
    "linear": (linear, linear_backward),
    "leaky_relu": (leaky_relu, leaky_relu_backward),
    "elu": (elu, elu_backward),
    "gelu": (gelu, gelu_backward),
}


def get_activation(name: str | None) -> tuple[str, Callable[..., Any], Callable[..., Any]]:
    """``(name, forward(x, out=None), backward(grad, y, x))`` by name (``None``: linear)."""
    key = "linear" if name is None else name
    if not isinstance(key, str) or key.lower() not in ACTIVATIONS:
        raise InvalidArgumentError(
            f"unknown activation {name!r}: expected one of {', '.join(sorted(ACTIVATIONS))}"
        )
    key = key.lower()
    fwd, bwd = ACTIVATIONS[key]
    return key, fwd, bwd

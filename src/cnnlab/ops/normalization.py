"""Batch normalization (Ioffe and Szegedy, 2015) over one axis of an array.

The statistics are taken over every axis but the normalised one (``axis``,
the channels: the last axis of ``(N, H, W, C)`` or ``(N, F)``), so each
channel ``c`` gets, from the ``m = N * H * W`` values it holds in the batch:

* training (:func:`batch_norm_forward`), with the batch's own statistics::

      mu_c  = (1/m) sum x                    (the batch mean)
      var_c = (1/m) sum (x - mu_c)^2          (the biased batch variance)
      x_hat = (x - mu_c) / sqrt(var_c + eps)
      y     = gamma_c * x_hat + beta_c

* backward (:func:`batch_norm_backward`), with ``g = dL/dy``::

      dbeta_c  = sum g
      dgamma_c = sum g * x_hat
      dx       = gamma_c / sqrt(var_c + eps) * (g - dbeta_c / m - x_hat * dgamma_c / m)

  (the standard result: ``mu`` and ``var`` depend on every ``x`` of the
  channel, which gives the two subtracted terms);

* inference (:func:`batch_norm_inference`), with given (moving) statistics::

      y = x * a + b,   a = gamma / sqrt(var + eps),   b = beta - mean * a

``gamma`` and ``beta`` may be ``None`` (Keras's ``scale=False`` and
``center=False``): 1 and 0. Sums over the batch accumulate in float64 (a
float32 sum over tens of thousands of values along a strided axis would
otherwise lose digits); the results have the input's dtype.

>>> import numpy as np
>>> x = np.array([[1.0, 10.0], [3.0, 30.0]])
>>> y, cache = batch_norm_forward(x, None, None, epsilon=0.0)
>>> y
array([[-1., -1.],
       [ 1.,  1.]])
>>> cache.mean, cache.var
(array([ 2., 20.]), array([  1., 100.]))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnnlab.backend import array_module
from cnnlab.errors import ShapeError


@dataclass
class BatchNormCache:
    """What :func:`batch_norm_backward` needs, and the batch statistics (for the moving ones)."""

    x_hat: Any  #: the normalised input, ``(x - mean) / sqrt(var + eps)``
    inv_std: Any  #: ``1 / sqrt(var + eps)``, shape ``(C,)``
    gamma: Any  #: the scale used, or ``None`` (scale 1)
    axis: int  #: the normalised axis, non-negative
    count: int  #: values per channel, ``m``
    mean: Any  #: batch mean per channel, ``(C,)``, the input's dtype
    var: Any  #: biased batch variance per channel, ``(C,)``, the input's dtype


def _axis(x: Any, axis: int) -> int:
    ax = axis + x.ndim if axis < 0 else axis
    if not 0 <= ax < x.ndim:
        raise ShapeError(f"axis {axis} is out of range for an array of {x.ndim} dimensions")
    return ax


def _reduce_axes(ndim: int, axis: int) -> tuple[int, ...]:
    return tuple(i for i in range(ndim) if i != axis)


def _per_channel(v: Any, ndim: int, axis: int) -> Any:
    """A ``(C,)`` vector shaped to broadcast along ``axis`` of an ``ndim`` array."""
    shape = [1] * ndim
    shape[axis] = -1
    return v.reshape(shape)


def batch_norm_forward(
    x: Any, gamma: Any | None, beta: Any | None, epsilon: float, axis: int = -1
) -> tuple[Any, BatchNormCache]:
    """Normalise ``x`` with its batch statistics along every axis but ``axis``.

    Returns ``(y, cache)``; ``cache.mean`` and ``cache.var`` are the batch mean
    and biased variance per channel (what Keras folds into its moving statistics).
    """
    xp = array_module(x)
    ax = _axis(x, axis)
    axes = _reduce_axes(x.ndim, ax)
    count = x.size // x.shape[ax]
    dt = x.dtype
    mean = (x.sum(axis=axes, dtype=xp.float64) / count).astype(dt)
    centred = x - _per_channel(mean, x.ndim, ax)
    var = ((centred * centred).sum(axis=axes, dtype=xp.float64) / count).astype(dt)
    inv_std = (1.0 / xp.sqrt(var.astype(xp.float64) + epsilon)).astype(dt)
    x_hat = centred
    x_hat *= _per_channel(inv_std, x.ndim, ax)
    if gamma is None:
        y = x_hat.copy()
    else:
        y = x_hat * _per_channel(gamma, x.ndim, ax)
    if beta is not None:
        y += _per_channel(beta, x.ndim, ax)
    return y, BatchNormCache(x_hat, inv_std, gamma, ax, count, mean, var)


def batch_norm_backward(
    grad: Any, cache: BatchNormCache, need_input_grad: bool = True
) -> tuple[Any | None, Any, Any]:
    """``(dx, dgamma, dbeta)`` from ``grad = dL/dy``; ``dx`` is ``None`` unless needed.

    ``dgamma`` and ``dbeta`` are returned even when the forward had no
    ``gamma`` or ``beta`` (the layer keeps only the ones it has).
    """
    xp = array_module(grad)
    ax, m, x_hat = cache.axis, cache.count, cache.x_hat
    axes = _reduce_axes(grad.ndim, ax)
    dt = grad.dtype
    dbeta = grad.sum(axis=axes, dtype=xp.float64)
    dgamma = (grad * x_hat).sum(axis=axes, dtype=xp.float64)
    if not need_input_grad:
        return None, dgamma.astype(dt), dbeta.astype(dt)
    scale = cache.inv_std if cache.gamma is None else cache.gamma * cache.inv_std
    # dx = gamma * inv_std * (g - dbeta / m - x_hat * dgamma / m)
    dx = x_hat * _per_channel((dgamma / m).astype(dt), grad.ndim, ax)
    xp.subtract(grad, dx, out=dx)
    dx -= _per_channel((dbeta / m).astype(dt), grad.ndim, ax)
    dx *= _per_channel(scale.astype(dt, copy=False), grad.ndim, ax)
    return dx, dgamma.astype(dt), dbeta.astype(dt)


def batch_norm_inference(
    x: Any, mean: Any, var: Any, gamma: Any | None, beta: Any | None, epsilon: float,
    axis: int = -1,
) -> Any:
    """``y = x * a + b`` with ``a = gamma / sqrt(var + eps)`` and ``b = beta - mean * a``.

    As Keras's ``ops.batch_normalization``: the per-channel factors are formed
    first, then one multiply-add over the array.
    """
    xp = array_module(x)
    ax = _axis(x, axis)
    dt = x.dtype
    a = 1.0 / xp.sqrt(var.astype(xp.float64) + epsilon)
    if gamma is not None:
        a = a * gamma
    b = -mean * a
    if beta is not None:
        b = b + beta
    y = x * _per_channel(a.astype(dt), x.ndim, ax)
    y += _per_channel(b.astype(dt), x.ndim, ax)
    return y

"""The array-module seam, and where arrays live (the device).

Every op asks :func:`array_module` for the module that owns its inputs instead
of importing NumPy directly, so the same code runs on any array library with
the NumPy API (CuPy on a GPU, as Chainer's ``get_array_module``):
``xp = array_module(x); xp.zeros(...)``.

Two devices are known, by name:

* ``"cpu"``: NumPy arrays. The default; choosing it never imports CuPy.
* ``"gpu"`` (alias ``"cuda"``): CuPy arrays on the current CUDA device. It
  needs the ``gpu`` extra (``pip install cnnlab[gpu]``, which installs
  ``cupy-cuda12x``; install ``cupy-cuda13x`` yourself for CUDA 13) and a
  working CUDA device and driver; otherwise :func:`get_device` raises
  :class:`~cnnlab.errors.DeviceError` saying which is missing.

A model is placed with :meth:`cnnlab.Sequential.to` (``model.to("gpu")``),
which moves its weights, gradients and optimizer slots once; from then on
they stay on the device, and only each input batch goes to the device and
each step's metrics (the loss, the correct count, the finiteness check) come
back. Random numbers: weights are drawn on the host from the model's seeded
NumPy generator and moved once (so a seed gives the same initial weights on
every device); dropout masks are drawn on the device (:func:`device_generator`).

>>> import numpy as np
>>> get_device("cpu"), device_of(np.zeros(2))
('cpu', 'cpu')
>>> to_numpy(to_device(np.arange(3), "cpu"))
array([0, 1, 2])
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from cnnlab.errors import DeviceError, InvalidArgumentError

#: Device names :func:`get_device` accepts (``"cuda"`` is an alias of ``"gpu"``).
DEVICES = ("cpu", "gpu")
_ALIASES = {"cpu": "cpu", "gpu": "gpu", "cuda": "gpu"}
#: The ``pip`` line that installs CuPy, named in the errors.
GPU_INSTALL_HINT = "pip install 'cnnlab[gpu]' (CuPy for CUDA 12; cupy-cuda13x for CUDA 13)"

_gpu_checked = False  # set once a GPU was found usable (failures are re-checked)


def _is_cupy_array(a: Any) -> bool:
    return type(a).__module__.startswith("cupy")


def array_module(*arrays: Any) -> ModuleType:
    """Return the array module (``numpy``, or ``cupy``) that owns ``arrays``.

    >>> import numpy as np
    >>> array_module(np.zeros(3)) is np
    True
    """
    for a in arrays:
        if _is_cupy_array(a):
            import cupy  # type: ignore[import-not-found]

            return cupy
    return np


def _require_gpu() -> ModuleType:
    """``cupy``, once it is known to reach a CUDA device; else :class:`DeviceError`."""
    global _gpu_checked
    try:
        import cupy  # type: ignore[import-not-found]
    except ImportError as e:
        raise DeviceError(
            f"device 'gpu' needs CuPy, which is not installed ({e}): {GPU_INSTALL_HINT}"
        ) from None
    if _gpu_checked:
        return cupy
    version = getattr(cupy, "__version__", "?")
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
        if count > 0:
            cupy.zeros(1, dtype=cupy.float32).sum().item()  # a real allocation and kernel
    except Exception as e:  # CUDARuntimeError, CompileException, a missing libcuda ...
        raise DeviceError(
            f"device 'gpu': CuPy {version} is installed but cannot use a CUDA device "
            f"({type(e).__name__}: {e}); check the NVIDIA driver (nvidia-smi) and that the "
            "CuPy wheel matches the machine's CUDA version"
        ) from None
    if count == 0:
        raise DeviceError(f"device 'gpu': CuPy {version} is installed but finds no CUDA device")
    _gpu_checked = True
    return cupy


def get_device(name: str) -> str:
    """The canonical device name for ``name``, checked to be usable.

    ``"cpu"`` is always usable (and imports nothing); ``"gpu"`` or ``"cuda"``
    needs CuPy and a CUDA device, else :class:`~cnnlab.errors.DeviceError`
    names what is missing. Any other name is an
    :class:`~cnnlab.errors.InvalidArgumentError`.

    >>> get_device("CPU")
    'cpu'
    """
    key = name.lower() if isinstance(name, str) else None
    if key not in _ALIASES:
        raise InvalidArgumentError(f"unknown device {name!r}: expected one of {DEVICES}")
    device = _ALIASES[key]
    if device == "gpu":
        _require_gpu()
    return device


def module_for(device: str) -> ModuleType:
    """The array module of a device name: ``numpy`` for ``"cpu"``, ``cupy`` for ``"gpu"``."""
    return np if get_device(device) == "cpu" else _require_gpu()


def device_of(array: Any) -> str:
    """``"gpu"`` for a CuPy array, ``"cpu"`` for anything else.

    >>> device_of([1, 2])
    'cpu'
    """
    return "gpu" if _is_cupy_array(array) else "cpu"


def to_numpy(array: Any) -> np.ndarray:
    """A NumPy array with ``array``'s values (a device array is copied to the host;
    a NumPy array is returned as it is, not copied)."""
    if _is_cupy_array(array):
        return array.get()
    return np.asarray(array)


def to_device(array: Any, device: str) -> Any:
    """``array`` on ``device`` (``"cpu"`` or ``"gpu"``); returned as it is when it is
    already there, else copied once. The dtype is kept."""
    if device == "cpu":
        return to_numpy(array)
    if device != "gpu":
        device = get_device(device)
        if device == "cpu":
            return to_numpy(array)
    if _is_cupy_array(array):
        return array
    return _require_gpu().asarray(array)


def copy_into(dst: Any, src: Any) -> None:
    """``dst[...] = src`` in ``dst``'s dtype, wherever either lives (``src`` is moved
    to ``dst``'s device first). Keeps ``dst`` the same object."""
    if _is_cupy_array(dst) != _is_cupy_array(src):
        src = to_device(src, device_of(dst))
    dst[...] = src


def device_generator(host_rng: np.random.Generator, xp: ModuleType) -> Any:
    """A random generator that draws on ``xp``'s device, seeded from ``host_rng``.

    For NumPy it is ``host_rng`` itself (so CPU results are unchanged). For
    CuPy it is a new ``cupy.random.Generator`` over a Philox4x32-10 bit
    generator (counter-based: cheap to create), seeded with one 63-bit integer
    drawn from ``host_rng``. Creating one per use (a training step) keeps the
    device's random stream a function of the model's NumPy generator, whose
    state checkpoints save: a resumed GPU run draws the same masks as an
    uninterrupted one.
    """
    if xp is np:
        return host_rng
    seed = int(host_rng.integers(0, 2**63 - 1))
    return xp.random.Generator(xp.random.Philox4x3210(seed, size=1 << 16))


def first_nonfinite_sum(arrays: Sequence[Any]) -> int | None:
    """Index of the first array whose sum is NaN or infinite, or ``None``.

    NumPy: ``np.isfinite(a.sum())`` array by array (stopping at the first bad
    one). On a device, every check runs there and the flags come back in one
    transfer: one host synchronisation for the whole list, not one per array.
    """
    if not arrays:
        return None
    xp = array_module(*arrays)
    if xp is np:
        for i, a in enumerate(arrays):
            if not np.isfinite(a.sum()):
                return i
        return None
    flags = to_numpy(xp.stack([xp.isfinite(a.sum()) for a in arrays]))
    bad = np.flatnonzero(~flags)
    return int(bad[0]) if bad.size else None


def sliding_window_view(x: Any, window_shape: tuple[int, ...], axis: tuple[int, ...]) -> Any:
    """A strided view of all windows, as ``numpy.lib.stride_tricks``'s (read-only on NumPy).

    ``x.shape`` with each axis in ``axis`` shortened to its number of window
    positions, then the window axes appended. Built directly with
    ``as_strided``: NumPy's general version spends tens of microseconds
    checking its arguments, which shows in batch-1 inference. CuPy's
    ``as_strided`` has no ``writeable`` argument: there the view is writable,
    and callers must only read it (they do).
    """
    xp = array_module(x)
    shape = list(x.shape)
    for ax, size in zip(axis, window_shape, strict=True):
        if not 0 < size <= shape[ax]:
            raise ValueError(f"window size {size} does not fit axis {ax} of length {shape[ax]}")
        shape[ax] -= size - 1
    strides = tuple(x.strides) + tuple(x.strides[ax] for ax in axis)
    if xp is np:
        return np.lib.stride_tricks.as_strided(
            x, tuple(shape) + tuple(window_shape), strides, writeable=False
        )
    return xp.lib.stride_tricks.as_strided(x, tuple(shape) + tuple(window_shape), strides)

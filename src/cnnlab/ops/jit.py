"""Where cnnlab's compiled (Numba) kernels come from, and whether they are used.

A few memory-bound loops (the Winograd transforms, 2x2 max pooling) run as
Numba kernels on NumPy arrays: one pass over memory where NumPy needs
several. Every one of them has a NumPy path that computes the same thing,
which the tests hold both to, and which runs

* when ``CNNLAB_JIT`` is ``0``, ``false``, ``no`` or ``off``;
* when Numba cannot be imported (it is a dependency, but a platform without
  its wheels can still run cnnlab);
* for arrays that are not NumPy's (CuPy on a GPU).

Numba is imported on the first use of a kernel, not with cnnlab; compiled
code is cached on disk (``cache=True``: in ``__pycache__`` beside the
module, or in ``NUMBA_CACHE_DIR``), so only the first process to use a
kernel on a machine pays for compiling it.
"""

from __future__ import annotations

import os
import warnings
from functools import cache
from typing import Any


def enabled_by_env() -> bool:
    """``CNNLAB_JIT`` unset, or anything but ``0``/``false``/``no``/``off``."""
    return os.environ.get("CNNLAB_JIT", "1").strip().lower() not in ("0", "false", "no", "off")


@cache
def numba_module() -> Any | None:
    """The ``numba`` module, or None when it cannot be imported."""
    try:
        import numba
    except ImportError:
        return None
    return numba


def _probe(x: Any) -> Any:  # pragma: no cover - compiled
    total = x[0] * 0
    for i in range(x.shape[0]):
        total += x[i]
    return total


@cache
def compiles() -> bool:
    """Whether Numba compiles here: a tiny kernel, once per process (then cached on disk).

    Where it cannot (say, under a tool that rewrites cnnlab's bytecode, as atheris's
    coverage instrumentation does), a warning says so and the NumPy paths run."""
    if numba_module() is None:
        return False
    try:
        import numpy as np

        njit(_probe)(np.ones(3, dtype=np.float32))
    except Exception as e:  # any failure to compile means: do not use the kernels
        warnings.warn(f"cnnlab: Numba cannot compile here ({type(e).__name__}: "
                      f"{str(e).splitlines()[0] if str(e) else ''}); cnnlab runs its NumPy "
                      "paths instead (CNNLAB_JIT=0 chooses them without this warning)",
                      RuntimeWarning, stacklevel=2)
        return False
    return True


def available() -> bool:
    """True when NumPy arrays take the compiled kernels."""
    return enabled_by_env() and compiles()


def _required() -> Any:
    numba = numba_module()
    if numba is None:  # pragma: no cover - callers check available() first
        raise RuntimeError("cnnlab's compiled kernels need Numba (pip install numba)")
    return numba


def njit(fn: Any) -> Any:
    """``fn`` compiled the way cnnlab's kernels are: no GIL (the batch-split workers
    run kernels side by side), cached on disk, no bounds checks, multiply-adds fused."""
    return _required().njit(nogil=True, cache=True, boundscheck=False,
                            fastmath={"contract"})(fn)


def inline(fn: Any) -> Any:
    """``fn`` compiled to be inlined where a kernel calls it (the Python function again
    if it was compiled before)."""
    return _required().njit(inline="always")(getattr(fn, "py_func", fn))

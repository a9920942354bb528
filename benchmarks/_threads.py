"""Thread counts for a benchmark, set from ``--threads N`` before NumPy or PyTorch load.

BLAS reads ``OPENBLAS_NUM_THREADS`` (and its kin) once, when it is loaded, so a
benchmark imports this module and calls :func:`threads_from_argv` before
importing NumPy.
"""

from __future__ import annotations

import os
import sys


def set_threads(threads: int | str) -> None:
    """Set the BLAS/OpenMP thread variables for libraries loaded from now on."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def threads_from_argv(default: str | None = "2") -> str | None:
    """:func:`set_threads` from ``--threads N`` in ``sys.argv`` (else ``default``;
    ``None`` leaves the environment as it is)."""
    threads = default
    for i, arg in enumerate(sys.argv):
        if arg == "--threads" and i + 1 < len(sys.argv):
            threads = sys.argv[i + 1]
        elif arg.startswith("--threads="):
            threads = arg.split("=", 1)[1]
    if threads is not None:
        set_threads(threads)
    return threads


def blas_kernels() -> str:
    """Which BLAS and kernel set NumPy loaded, and the OpenBLAS variables that chose it.

    OpenBLAS picks its kernels when it loads: ``OPENBLAS_CORETYPE`` overrides
    its CPU detection (some machines set it to an older core, such as Haswell,
    which halves the GEMM rate of an AVX-512 CPU), so a benchmark says which
    kernels it ran. The kernel names come from threadpoolctl where it is installed.
    """
    forced = ", ".join(f"{v}={os.environ[v]}" for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
                       if v in os.environ) or "no OPENBLAS_CORETYPE set"
    try:
        import threadpoolctl
    except ImportError:
        return f"unknown kernels (pip install threadpoolctl to see them); {forced}"
    import numpy  # noqa: F401  (loads the BLAS threadpoolctl reports on)

    blas = [i for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
    names = "; ".join(f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')}"
                      for i in blas) or "no BLAS found"
    return f"{names} ({forced})"

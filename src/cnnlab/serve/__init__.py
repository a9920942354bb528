"""The browser demo: ``cnnlab serve``: draw a digit or drop a picture, and watch the CNN.

:func:`create_app` (in :mod:`cnnlab.serve.app`) builds the FastAPI application
around a model; :mod:`cnnlab.serve.cli` adds the ``serve`` subcommand. FastAPI
and uvicorn are the optional ``serve`` extra (``pip install 'cnnlab[serve]'``),
imported only when the app is built, so ``cnnlab --help`` works without them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "small_model"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from cnnlab.serve import app

        return getattr(app, name)
    raise AttributeError(f"module 'cnnlab.serve' has no attribute {name!r}")

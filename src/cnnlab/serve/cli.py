"""The ``cnnlab serve`` subcommand: run the browser demo on a local web server.

Usage::

    cnnlab serve [MODEL] [--host 127.0.0.1] [--port 8000]

``MODEL`` is a ``.safetensors`` model file saved by cnnlab (any image model:
grayscale or RGB, any input size, with its class names); without it the
shipped trained MNIST model is used. At start it prints the model's input
shape, how pictures are prepared, and its class names (shortened). Open
``http://HOST:PORT/`` in a browser; the JSON API is described at
``/openapi.json``.

As with every ``cnnlab`` command, a user's mistake (a missing or corrupt model
file, a bad argument, a port that cannot be used, the ``serve`` extra not
installed) prints one line, ``cnnlab: error: ...``, and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``serve`` subcommand to ``subparsers`` (from ``add_subparsers()``)."""
    parser = subparsers.add_parser(
        "serve",
        help="run the browser demo: give a picture (or draw a digit), see the prediction "
             "and the feature maps",
        description=(
            "Serve the browser demo: a page where you drop or choose an image file (or, for a "
            "digit model, draw a digit) and see the model's class probabilities, with the "
            "class names, and the feature maps of its convolution and pooling layers, "
            "with a JSON API (described at /openapi.json)."
        ),
    )
    parser.add_argument(
        "model", nargs="?", default=None, metavar="MODEL",
        help="model file (.safetensors) saved by cnnlab; default: the shipped trained model",
    )
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s, this machine only)")
    parser.add_argument("--port", type=_port, default=8000,
                        help="TCP port (default: %(default)s)")
    parser.set_defaults(func=run)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be in 0..65535, got {port}")
    return port


def _error(message: str) -> int:
    """Report a user's mistake as :func:`cnnlab.cli.main` does: one line; status 2."""
    print(f"cnnlab: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    """Load the model and serve the demo until interrupted; the exit status."""
    from cnnlab.errors import CnnlabError
    from cnnlab.pretrained import pretrained_path
    from cnnlab.saving import load_model

    try:
        import uvicorn

        from cnnlab.serve.app import create_app, describe_model
    except ImportError as e:
        return _error(f"{e.name or e}: the demo needs FastAPI and uvicorn; "
                      "install them with: pip install 'cnnlab[serve]'")
    hint = "" if args.model is not None else " (give a MODEL file)"
    try:
        path = args.model if args.model is not None else pretrained_path()
        model = load_model(path, compile=False)
        app = create_app(model, source=str(path))
    except CnnlabError as e:
        return _error(f"{e}{hint}")
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        return _error(f"{e.filename or ''}: {e.strerror}{hint}")
    host = "localhost" if args.host in ("127.0.0.1", "::1", "0.0.0.0", "::") else args.host
    print(f"cnnlab serve: {path}\n  {describe_model(model)}\n"
          f"  on http://{host}:{args.port}/ (Ctrl-C to stop)", flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    except SystemExit as e:  # uvicorn exits when it cannot start, e.g. the port is taken
        if e.code in (0, None):
            return 0
        return _error(f"the server could not start on {args.host}:{args.port} "
                      "(is the port in use? try --port)")
    except KeyboardInterrupt:
        pass
    return 0

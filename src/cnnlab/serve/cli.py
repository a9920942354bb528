"""The ``cnnlab serve`` subcommand: run the browser demo on a local web server.

Usage::

    cnnlab serve [MODEL] [--host 127.0.0.1] [--port 8000] [--cors-origin ORIGIN ...]

``MODEL`` is a ``.safetensors`` model file saved by cnnlab (any image model:
grayscale or RGB, any input size, with its class names); without it the
shipped trained MNIST model is used. At start it prints the model's input
shape, how pictures are prepared, and its class names (shortened). Open
``http://HOST:PORT/`` in a browser; the JSON API is described at
``/openapi.json``.

Hardening (issue 18): the server listens on 127.0.0.1 unless ``--host`` says
otherwise, and warns when that address is reachable from other machines
(``0.0.0.0``, ``::`` or any non-loopback address). Bodies are limited to
``MAX_BODY_BYTES`` as they stream in and must arrive within ``BODY_TIMEOUT_S``
(:class:`cnnlab.serve.app.BodySizeLimit`); an idle keep-alive connection is closed
after :data:`KEEP_ALIVE_S` seconds; request heads are limited to
:data:`MAX_HEAD_BYTES` and must arrive within :data:`HEAD_TIMEOUT_S`; at most
:data:`MAX_CONNECTIONS` connections and requests are served at once (503 beyond).
No CORS header is sent unless ``--cors-origin`` names an origin.

As with every ``cnnlab`` command, a user's mistake (a missing or corrupt model
file, a bad argument, a port that cannot be used, the ``serve`` extra not
installed) prints one line, ``cnnlab: error: ...``, and exits with status 2.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from typing import Any

#: Seconds an idle keep-alive connection stays open (uvicorn's ``timeout_keep_alive``).
KEEP_ALIVE_S = 5
#: Largest request head (request line and headers) h11 buffers, in bytes.
MAX_HEAD_BYTES = 16 * 1024
#: Seconds a client has to send a request's head (request line and headers) once it
#: has connected, or after the previous answer on a keep-alive connection; uvicorn has
#: no such limit of its own, so a client trickling its headers ("slowloris") would
#: hold its connection for ever.
HEAD_TIMEOUT_S = 10.0
#: Connections and requests served at once (uvicorn's ``limit_concurrency``; 503 beyond).
MAX_CONNECTIONS = 256


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
    parser.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                        help="let pages from ORIGIN (e.g. https://example.org) call the API "
                             "from a browser (repeatable; default: none, no CORS headers)")
    parser.set_defaults(func=run)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be in 0..65535, got {port}")
    return port


def is_public(host: str) -> bool:
    """Whether listening on ``host`` lets other machines connect (not loopback only).

    >>> is_public("127.0.0.1"), is_public("localhost"), is_public("0.0.0.0"), is_public("::")
    (False, False, True, True)
    """
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return True


def head_timeout_protocol(timeout: float = HEAD_TIMEOUT_S) -> type:
    """uvicorn's h11 protocol, closing a connection whose request head has not fully
    arrived ``timeout`` seconds after it opened (or after its previous answer).

    uvicorn 0.54 times idle keep-alive connections only, and cancels that timer at
    the first byte received; this adds the timer uvicorn lacks.
    """
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeadTimeoutH11Protocol(H11Protocol):
        _head_timer: Any = None
        _timed_cycle: Any = None

        def _start_head_timer(self) -> None:
            self._cancel_head_timer()
            self._timed_cycle = self.cycle
            self._head_timer = self.loop.call_later(timeout, self._head_timed_out)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if self.cycle is self._timed_cycle and not self.transport.is_closing():
                self.transport.close()  # no new request head in time

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._start_head_timer()

        def handle_events(self) -> None:
            super().handle_events()
            if self._head_timer is not None and self.cycle is not self._timed_cycle:
                self._cancel_head_timer()  # a request head arrived

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._start_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

    return HeadTimeoutH11Protocol


def uvicorn_options(host: str, port: int) -> dict[str, Any]:
    """The keyword arguments ``cnnlab serve`` gives ``uvicorn.run``: the limits above."""
    return {"host": host, "port": port, "log_level": "warning", "http": head_timeout_protocol(),
            "timeout_keep_alive": KEEP_ALIVE_S, "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
            "limit_concurrency": MAX_CONNECTIONS, "server_header": False}


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
        origins = getattr(args, "cors_origin", None) or ()  # run() called without the option
        app = create_app(model, source=str(path), cors_origins=origins)
    except CnnlabError as e:
        return _error(f"{e}{hint}")
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        return _error(f"{e.filename or ''}: {e.strerror}{hint}")
    host = "localhost" if args.host in ("127.0.0.1", "::1", "0.0.0.0", "::") else args.host
    print(f"cnnlab serve: {path}\n  {describe_model(model)}\n"
          f"  on http://{host}:{args.port}/ (Ctrl-C to stop)", flush=True)
    if is_public(args.host):
        print(f"cnnlab serve: warning: listening on {args.host}: other machines can reach "
              "this server; the demo has no authentication (use the default 127.0.0.1 to "
              "keep it to this machine)", file=sys.stderr, flush=True)
    if getattr(args, "cors_origin", None):
        print(f"  CORS: pages from {', '.join(args.cors_origin)} may call the API", flush=True)
    try:
        uvicorn.run(app, **uvicorn_options(args.host, args.port))
    except SystemExit as e:  # uvicorn exits when it cannot start, e.g. the port is taken
        if e.code in (0, None):
            return 0
        return _error(f"the server could not start on {args.host}:{args.port} "
                      "(is the port in use? try --port)")
    except KeyboardInterrupt:
        pass
    return 0

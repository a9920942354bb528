"""A folder that runs a model in the browser, with no server: ``cnnlab export MODEL --web DIR``.

:func:`export_web` writes::

    DIR/index.html      the demo page (the look of ``cnnlab serve``'s page)
    DIR/app.js          drawing, input preparation, inference, bars, feature maps
    DIR/style.css       ``cnnlab serve``'s style sheet
    DIR/model.onnx      the model (:mod:`cnnlab.export.onnx`), every layer's output exposed
    DIR/model.json      name, input shape, class names, preparation, layers
    DIR/ort/            onnxruntime-web's ES module and WebAssembly (about 14 MB)

Any static file server works (``python -m http.server -d DIR``, GitHub Pages,
an S3 bucket); the page asks nothing of any other origin, so it works offline.
(Browsers do not run ES modules from ``file://`` URLs: open it through a server.)

**Input preparation in the page.** For a digit model (``preprocessing`` mode
``"digit"``, or 28x28x1) ``app.js`` repeats :func:`cnnlab.preprocess.prepare_array`
step by step on the canvas (or on a chosen picture): grayscale by luminance,
transparency composited on white and on black (the sparser ink wins), polarity
from the border's median, background and 3-sigma noise removed, peak scaled to
1, crop to the ink, fit into 20x20 with Pillow's Lanczos resampling
(re-implemented: the same kernel, support, coefficient normalisation and two
passes in float32), integer shift of the centre of mass to (14, 14) with
Python's round-half-to-even. The test checks the page's prepared input against
``prepare_array`` on the same canvas pixels. For other models a picture is
drawn onto an ``H x W`` canvas by the browser (its own smoothing, not Pillow's
bilinear resize: close, not identical) and scaled by ``1/255``.

The page exposes ``window.cnnlabDemo``: ``input`` (the prepared input,
row-major ``H x W x C``), ``probabilities``, ``prediction``, ``updates``,
``busy``, ``error``; tests read them.

**Where onnxruntime-web comes from.** Its wasm is 14 MB, too large to ship in
cnnlab's wheel, so the export takes it from the npm package
``onnxruntime-web`` at the pinned version :data:`ORT_WEB_VERSION`, in this order:

1. ``onnxruntime_web=PATH`` (``--onnxruntime-web PATH``): an npm tarball
   (``npm pack onnxruntime-web@1.30.0``) or an unpacked package folder
   (``node_modules/onnxruntime-web``). Any version whose ``dist/`` has the
   three files in :data:`ORT_FILES` works.
2. The cache, ``$CNNLAB_CACHE/onnxruntime-web/`` (else
   ``$XDG_CACHE_HOME/cnnlab/...``, else ``~/.cache/cnnlab/...``), holding the
   pinned tarball.
3. A download of the pinned tarball from ``registry.npmjs.org`` into the
   cache. The tarball's SHA-512 is checked against :data:`ORT_WEB_INTEGRITY`
   (the registry's ``dist.integrity`` for that version, pinned in this file), on
   download and on every use of the cache; offline, the error says how to give a
   local copy.

Only the three files are read from the tarball (regular files, sizes checked
before reading); nothing in it is executed.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import tarfile
from pathlib import Path
from typing import Any

from cnnlab.errors import ChecksumError, DownloadError, InvalidArgumentError, ModelFileError
from cnnlab.export.onnx import LAYER_OUTPUT_PREFIX, OPSET, build_onnx
from cnnlab.fileio import atomic_write_bytes, atomic_writer
from cnnlab.layers import AveragePooling2D, Conv2D, MaxPooling2D

#: The onnxruntime-web release the export downloads (npm).
ORT_WEB_VERSION = "1.30.0"
#: npm's ``dist.integrity`` of that release's tarball (SHA-512, base64).
ORT_WEB_INTEGRITY = ("sha512-q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+CaRJmg8pZClzcV7svNc4rKY3jL02Vb7Qm"
                     "RMDs1SigqR4CXAfKYQ==")
ORT_WEB_URL = (f"https://registry.npmjs.org/onnxruntime-web/-/"
               f"onnxruntime-web-{ORT_WEB_VERSION}.tgz")
#: The files the page needs, relative to the package folder: the wasm-only ES module,
#: its Emscripten loader and the SIMD WebAssembly binary.
ORT_FILES = ("dist/ort.wasm.min.mjs", "dist/ort-wasm-simd-threaded.mjs",
             "dist/ort-wasm-simd-threaded.wasm")
#: The largest file accepted from a tarball or folder (the wasm is about 14 MB).
MAX_ORT_FILE_BYTES = 64 << 20
#: Layer types whose outputs the page draws as feature maps (as ``cnnlab serve``).
MAP_LAYERS = (Conv2D, MaxPooling2D, AveragePooling2D)
TEMPLATE_DIR = Path(__file__).parent / "webpage"
SERVE_STYLE = Path(__file__).parent.parent / "serve" / "static" / "style.css"
_DOWNLOAD_TIMEOUT_S = 60


def cache_dir() -> Path:
    """``$CNNLAB_CACHE/onnxruntime-web``, else ``$XDG_CACHE_HOME/cnnlab/onnxruntime-web``,
    else ``~/.cache/cnnlab/onnxruntime-web``."""
    if os.environ.get("CNNLAB_CACHE"):
        return Path(os.environ["CNNLAB_CACHE"]).expanduser() / "onnxruntime-web"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "cnnlab" / "onnxruntime-web"


def _integrity_ok(path: Path, integrity: str | None = None) -> bool:
    """Whether ``path``'s digest is npm's ``integrity`` (default :data:`ORT_WEB_INTEGRITY`)."""
    algo, _, want = (integrity or ORT_WEB_INTEGRITY).partition("-")
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return base64.b64encode(h.digest()).decode() == want


def _download(path: Path) -> None:
    """The pinned tarball from the npm registry into ``path`` (atomically), checked."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(ORT_WEB_URL, timeout=_DOWNLOAD_TIMEOUT_S) as res, \
                atomic_writer(path) as out:
            h = hashlib.sha512()
            for chunk in iter(lambda: res.read(1 << 20), b""):
                h.update(chunk)
                out.write(chunk)
            got = "sha512-" + base64.b64encode(h.digest()).decode()
            if got != ORT_WEB_INTEGRITY:  # raised inside the writer: nothing is kept
                raise ChecksumError(
                    f"{ORT_WEB_URL}: the download's {got[:30]}... is not npm's "
                    f"{ORT_WEB_INTEGRITY[:30]}...; nothing was cached")
    except (urllib.error.URLError, OSError, TimeoutError) as e:  # not ChecksumError
        raise DownloadError(
            f"cannot download onnxruntime-web {ORT_WEB_VERSION} from {ORT_WEB_URL} "
            f"({getattr(e, 'reason', e)}); offline? give a local copy with "
            f"--onnxruntime-web PATH: a tarball from `npm pack onnxruntime-web@{ORT_WEB_VERSION}` "
            f"or a node_modules/onnxruntime-web folder (or put the tarball at {path})"
        ) from None


def pinned_tarball_path() -> Path:
    """Where the pinned tarball is cached (it may not be there yet)."""
    return cache_dir() / f"onnxruntime-web-{ORT_WEB_VERSION}.tgz"


def pinned_tarball() -> Path:
    """The pinned onnxruntime-web tarball in the cache, downloaded first if missing."""
    path = pinned_tarball_path()
    if path.is_file():
        if _integrity_ok(path):
            return path
        with contextlib.suppress(OSError):
            path.unlink()  # a corrupt or foreign file: fetch it again
    _download(path)
    return path


def _files_from_tarball(path: Path) -> dict[str, bytes]:
    try:
        tar = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError) as e:
        raise ModelFileError(f"{path}: not a readable npm tarball ({e})") from None
    out: dict[str, bytes] = {}
    with tar:
        members = {m.name.removeprefix("./"): m for m in tar.getmembers()}
        for rel in ORT_FILES:
            m = members.get(f"package/{rel}")
            if m is None:
                raise ModelFileError(f"{path}: has no package/{rel}: not onnxruntime-web "
                                     f"(or a version without it; {ORT_WEB_VERSION} works)")
            if not m.isfile() or m.size > MAX_ORT_FILE_BYTES:
                raise ModelFileError(f"{path}: package/{rel} is not a regular file under "
                                     f"{MAX_ORT_FILE_BYTES >> 20} MiB")
            f = tar.extractfile(m)
            assert f is not None
            out[rel] = f.read(MAX_ORT_FILE_BYTES + 1)
    return out


def _files_from_folder(folder: Path) -> dict[str, bytes]:
    root = folder if (folder / "dist").is_dir() else folder.parent  # the package, or its dist/
    out: dict[str, bytes] = {}
    for rel in ORT_FILES:
        f = root / rel
        if not f.is_file():
            raise InvalidArgumentError(
                f"{folder}: no {rel} there; expected onnxruntime-web's package folder "
                "(node_modules/onnxruntime-web), its dist/ folder, or its npm tarball")
        if f.stat().st_size > MAX_ORT_FILE_BYTES:
            raise InvalidArgumentError(f"{f}: larger than {MAX_ORT_FILE_BYTES >> 20} MiB")
        out[rel] = f.read_bytes()
    return out


def onnxruntime_web_files(source: str | Path | None = None) -> dict[str, bytes]:
    """The bytes of :data:`ORT_FILES`, from ``source`` (a tarball or a package folder) or
    from the pinned, checked tarball (cached; downloaded once). See the module docstring."""
    if source is None:
        return _files_from_tarball(pinned_tarball())
    path = Path(source).expanduser()
    if path.is_dir():
        return _files_from_folder(path)
    if not path.is_file():
        raise InvalidArgumentError(f"--onnxruntime-web {source}: no such file or folder")
    return _files_from_tarball(path)


def page_spec(model: Any) -> dict[str, Any]:
    """What the page reads from ``model.json``: the model's name, shapes, classes,
    preparation and layers (those drawn as feature maps marked)."""
    h, w, c = model.input_shape if len(model.input_shape) == 3 else (0, 0, 0)
    if c not in (1, 3):
        raise InvalidArgumentError(
            f"export --web: the page takes pictures, so the model's input must be (H, W, 1) "
            f"or (H, W, 3); this one takes {tuple(model.input_shape)}")
    prep = model.preprocessing or (
        {"mode": "digit"} if (h, w, c) == (28, 28, 1) else {"mode": "resize"})
    digit = prep.get("mode") == "digit" and (h, w, c) == (28, 28, 1)
    names = model.class_names or [str(k) for k in range(model.num_classes)]
    return {
        "name": str(model.name),
        "input_shape": [h, w, c],
        "num_classes": int(model.num_classes),
        "class_names": [str(n) for n in names],
        "params": int(model.count_params()),
        "preprocessing": {"mode": "digit" if digit else "resize", "size": [h, w],
                          "color": "rgb" if c == 3 else "grayscale"},
        "drawing": digit,
        "opset": OPSET,
        "onnxruntime_web": ORT_WEB_VERSION,
        "layers": [
            {"name": str(la.name), "type": la.kind, "output_shape": list(la.output_shape),
             "params": int(la.count_params()),
             "feature_maps": isinstance(la, MAP_LAYERS),
             "output": f"{LAYER_OUTPUT_PREFIX}{la.name}"}
            for la in model.layers
        ],
    }


def export_web(model: Any, folder: str | Path, *,
               onnxruntime_web: str | Path | None = None) -> Path:
    """Write the static demo of ``model`` into ``folder`` (created if needed); returns it.

    ``onnxruntime_web``: a tarball or package folder of onnxruntime-web (else
    the pinned release, cached, downloaded once; see the module docstring).
    Each file is written atomically; files of other names in ``folder`` are
    left alone.

    Raises:
        InvalidArgumentError: the model does not take pictures, or a layer cannot
            be exported (named); ``onnxruntime_web`` is not onnxruntime-web.
        DownloadError, ChecksumError: the pinned tarball cannot be fetched or
            does not match its pinned SHA-512.

    >>> export_web(load_pretrained(), "demo")   # doctest: +SKIP
    PosixPath('demo')
    """
    spec = page_spec(model)
    proto = build_onnx(model, layer_outputs=True)
    ort_files = onnxruntime_web_files(onnxruntime_web)
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise InvalidArgumentError(f"--web {folder}: exists and is not a folder")
    style = SERVE_STYLE.read_bytes() + (TEMPLATE_DIR / "extra.css").read_bytes()
    atomic_write_bytes(out / "model.onnx", proto.SerializeToString())
    atomic_write_bytes(out / "model.json", json.dumps(spec, indent=1).encode())
    atomic_write_bytes(out / "style.css", style)
    for name in ("index.html", "app.js"):
        atomic_write_bytes(out / name, (TEMPLATE_DIR / name).read_bytes())
    for rel, data in ort_files.items():
        atomic_write_bytes(out / "ort" / Path(rel).name, data)
    atomic_write_bytes(out / "ort" / "NOTICE.txt", (
        f"onnxruntime-web (npm), copied from its dist/ folder: {', '.join(ORT_FILES)}.\n"
        "Copyright (c) Microsoft Corporation. MIT License: "
        "https://github.com/microsoft/onnxruntime/blob/main/LICENSE\n").encode())
    return out


__all__ = ["ORT_FILES", "ORT_WEB_INTEGRITY", "ORT_WEB_VERSION", "cache_dir", "export_web",
           "onnxruntime_web_files", "page_spec", "pinned_tarball", "pinned_tarball_path"]

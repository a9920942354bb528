"""Plumbing shared by the atheris harnesses in this folder.

Every harness feeds bytes from libFuzzer to one parser of untrusted input and
accepts only the errors that parser documents: :class:`cnnlab.errors.CnnlabError`
and its subclasses. Anything else (a ``ValueError``, ``IndexError``,
``RecursionError``, ``MemoryError``, an assertion of the harness) is a finding.

Two ways to run:

- **Test mode** (default): a finding is re-raised, atheris prints the traceback,
  writes the input as ``crash-<sha1>`` and exits non-zero. ``tests/test_fuzz.py``
  runs each harness this way for a few seconds.
- **Campaign mode** (``CNNLAB_FUZZ_FINDINGS=<folder>``): a finding is written to
  ``<folder>/<signature>.txt`` (the traceback) and ``.bin`` (the input), once per
  signature (exception type + the innermost cnnlab frame), and fuzzing goes on, so
  one finding does not end a 30-minute run. ``scripts/fuzz_campaign.py`` uses it.

Instrumentation: each harness imports what it fuzzes inside
``atheris.instrument_imports(...)`` *before* importing this module's helpers that
touch cnnlab, so the library's bytecode carries coverage counters.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

import atheris

# cnnlab's compiled kernels off (cnnlab.ops.jit): atheris rewrites the bytecode of
# every cnnlab function it instruments, kernels included, and Numba cannot compile
# the rewritten code. The fuzzed parsers are Python; the NumPy paths compute the same.
os.environ["CNNLAB_JIT"] = "0"

FINDINGS = os.environ.get("CNNLAB_FUZZ_FINDINGS")


def scratch_dir(tag: str) -> Path:
    """A private temporary folder for files a harness writes (on /dev/shm when there is one)."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    folder = Path(tempfile.mkdtemp(prefix=f"cnnlab-fuzz-{tag}-", dir=base))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _signature(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "cnnlab" in f.filename] or frames
    where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else "?"
    return f"{type(exc).__name__}@{where}"


def _record(data: bytes, exc: BaseException) -> None:
    sig = _signature(exc)
    stem = hashlib.sha1(sig.encode()).hexdigest()[:12]
    folder = Path(FINDINGS)  # type: ignore[arg-type]
    folder.mkdir(parents=True, exist_ok=True)
    txt = folder / f"{stem}.txt"
    if txt.exists():
        with open(folder / f"{stem}.count", "a") as f:
            f.write("1")
        return
    (folder / f"{stem}.bin").write_bytes(data)
    txt.write_text(f"{sig}\n\n" + "".join(traceback.format_exception(exc)))
    print(f"FINDING {sig} -> {txt}", file=sys.stderr, flush=True)


def guarded(check: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """``check`` with CnnlabError accepted and every other exception a finding."""
    from cnnlab.errors import CnnlabError

    def test_one_input(data: bytes) -> None:
        try:
            check(data)
        except CnnlabError:
            return
        except Exception as exc:  # noqa: BLE001 - every other type is a finding
            if FINDINGS is None:
                raise
            _record(data, exc)

    return test_one_input


def main(check: Callable[[bytes], None]) -> None:
    """Run libFuzzer on ``check`` with ``sys.argv``'s options (e.g. ``-runs=2000 corpus/``)."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    atheris.Setup(sys.argv, guarded(check))
    atheris.Fuzz()

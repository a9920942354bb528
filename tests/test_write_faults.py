"""Faults while writing (issue 18): a full disk, SIGKILL mid-checkpoint, unusable
output folders.

- **Disk full, injected** (any machine): ``ENOSPC`` raised inside
  :func:`cnnlab.fileio.atomic_writer` -- in ``write`` (after part of the bytes went
  out), in ``fsync``, in the rename -- while writing a model, a checkpoint or the
  history. The previous file stays intact, no temporary file is left, the error
  names the target, and training resumes from the last good checkpoint to the
  uninterrupted run's weights, bit for bit.
- **Disk full, real** (root only: a ``tmpfs`` of a few pages): the same, with the
  kernel saying no. A checkpoint written atomically needs room for the old and the
  new file at once, so a file system that holds one checkpoint but not two fails
  at the second.
- **SIGKILL** at many points of checkpoint writes -- mid-``write``, before ``fsync``,
  between the write and the rename, just after the rename, and at random times --
  one leg after another in subprocesses, each resuming the last; the checkpoint on
  disk is loadable after every kill and the final weights equal the uninterrupted
  run's bit for bit. ``CNNLAB_KILLS`` sets the number of kills (default 12).
- **Output folders**: ``cnnlab train --out`` on a file, under a file, on a read-only
  file system (or folder): one line ``cnnlab: error: ...``, exit status 2, before
  any data is loaded. A missing parent folder is created.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cnnlab
from cnnlab import cli, fileio
from cnnlab.saving import load_model
from cnnlab.training.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint

KILLS = int(os.environ.get("CNNLAB_KILLS", "12"))


def small_model(seed: int = 0) -> cnnlab.Sequential:
    model = cnnlab.Sequential(
        [cnnlab.Conv2D(4, 3, activation="relu"), cnnlab.MaxPooling2D(2), cnnlab.Flatten(),
         cnnlab.Dense(10), cnnlab.Activation("softmax")],
        input_shape=(8, 8, 1), seed=seed)
    model.compile("adam")
    return model


def small_data(n: int = 128) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.random((n, 8, 8, 1), dtype=np.float32), rng.integers(0, 10, n)


FIT = {"epochs": 3, "batch_size": 16, "verbose": 0}


@pytest.fixture(scope="module")
def reference() -> list[np.ndarray]:
    """The uninterrupted run's final weights."""
    model = small_model()
    model.fit(*small_data(), **FIT)
    return model.get_weights()


def same_weights(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# ------------------------------------------------------------------ injected ENOSPC


def enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


class _FullFile:
    """A file that takes ``budget`` bytes, writes part of the next call, then ENOSPC."""

    def __init__(self, f: Any, budget: int) -> None:
        self.f, self.budget = f, budget

    def write(self, data: bytes) -> int:
        room = max(self.budget, 0)
        self.budget -= len(data)
        if self.budget < 0:
            self.f.write(bytes(data)[:room])
            self.f.flush()
            raise enospc()
        return self.f.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.f, name)

    def __enter__(self) -> _FullFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.f.close()


class FaultyOs:
    """``os`` as :mod:`cnnlab.fileio` sees it, failing the ``nth`` file write at ``where``."""

    def __init__(self, where: str, nth: int = 1) -> None:
        self.where, self.nth, self.files = where, nth, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def _now(self) -> bool:
        return self.files == self.nth

    def fdopen(self, fd: int, mode: str) -> Any:
        self.files += 1
        f = os.fdopen(fd, mode)
        return _FullFile(f, 16) if self.where == "write" and self._now() else f

    def fsync(self, fd: int) -> None:
        if self.where == "fsync" and self._now():
            raise enospc()
        os.fsync(fd)

    def replace(self, src: Any, dst: Any) -> None:
        if self.where == "rename" and self._now():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), src, None, dst)
        os.replace(src, dst)


@contextlib.contextmanager
def disk_full(monkeypatch: pytest.MonkeyPatch, where: str, nth: int = 1) -> Iterator[FaultyOs]:
    faulty = FaultyOs(where, nth)
    monkeypatch.setattr(fileio, "os", faulty)
    try:
        yield faulty
    finally:
        monkeypatch.setattr(fileio, "os", os)


def _write_model(model: cnnlab.Sequential, folder: Path) -> Path:
    return model.save(folder / "model.safetensors")


def _write_checkpoint(model: cnnlab.Sequential, folder: Path) -> Path:
    from cnnlab.training.state import TrainState

    return save_checkpoint(model, folder, TrainState())


def _write_history(model: cnnlab.Sequential, folder: Path) -> Path:
    loss = float(model.get_weights()[0].sum())
    cli.write_history(folder, {"loss": [loss], "accuracy": [0.5]})
    return folder / "history.json"


WRITERS = {"model": _write_model, "checkpoint": _write_checkpoint, "history": _write_history}


@pytest.mark.parametrize("where", ["write", "fsync", "rename"])
@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_disk_full_keeps_the_previous_file_and_names_the_path(tmp_path, monkeypatch, kind,
                                                              where):
    write = WRITERS[kind]
    old = small_model(seed=1)
    path = write(old, tmp_path)
    before = path.read_bytes()
    with disk_full(monkeypatch, where), pytest.raises(OSError) as info:
        write(small_model(seed=2), tmp_path)
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(path)
    assert str(path) in str(info.value) and "No space left on device" in str(info.value)
    assert path.read_bytes() == before  # the previous file, intact
    assert temporaries(tmp_path) == []
    if kind == "model":
        assert same_weights(load_model(path).get_weights(), old.get_weights())


@pytest.mark.parametrize("where", ["write", "fsync", "rename"])
def test_disk_full_during_training_then_resume_is_bit_identical(tmp_path, monkeypatch,
                                                                reference, where):
    x, y = small_data()
    first = small_model()
    with disk_full(monkeypatch, where, nth=6), pytest.raises(OSError) as info:
        first.fit(x, y, checkpoint_dir=tmp_path, checkpoint_every=1, **FIT)
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(tmp_path / CHECKPOINT_NAME)
    state = load_checkpoint(small_model(seed=9), tmp_path)  # the 5th checkpoint, intact
    assert (state.epoch, state.step) == (0, 5)
    assert temporaries(tmp_path) == []
    resumed = small_model(seed=123)  # another init: all must come from the checkpoint
    resumed.fit(x, y, checkpoint_dir=tmp_path, resume=True, **FIT)
    assert same_weights(resumed.get_weights(), reference)


def test_the_cli_reports_a_full_disk_in_one_line(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    with disk_full(monkeypatch, "fsync", nth=1):
        status = cli.main(["train", "--out", str(out), "--epochs", "1", "--train-limit", "64",
                           "--test-limit", "32", "--batch-size", "32", "--no-figures",
                           "--quiet", "--no-validation"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.strip().splitlines() == [
        f"cnnlab: error: {out / 'training_config.json'}: No space left on device"]


# ------------------------------------------------------------------ a real full disk


@contextlib.contextmanager
def tmpfs(folder: Path, size: int) -> Iterator[Path]:
    """A tmpfs of ``size`` bytes on ``folder`` (root only; skips otherwise)."""
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _remount(folder: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True,
                   capture_output=True)


def test_real_disk_full_at_the_second_checkpoint_then_resume(tmp_path, reference):
    x, y = small_data()
    probe = tmp_path / "probe"
    small_model().fit(x[:16], y[:16], epochs=1, batch_size=16, verbose=0,
                      checkpoint_dir=probe, checkpoint_every=1)
    pages = ((probe / CHECKPOINT_NAME).stat().st_size + 4095) // 4096
    with tmpfs(tmp_path / "small", (2 * pages - 1) * 4096) as run:
        with pytest.raises(OSError) as info:  # room for one checkpoint, not for two
            small_model().fit(x, y, checkpoint_dir=run, checkpoint_every=1, **FIT)
        assert info.value.errno == errno.ENOSPC
        assert info.value.filename == str(run / CHECKPOINT_NAME)
        assert temporaries(run) == []
        state = load_checkpoint(small_model(seed=9), run)
        assert (state.epoch, state.step) == (0, 1)
        _remount(run, "size=4m")  # space freed: the run goes on
        resumed = small_model(seed=123)
        resumed.fit(x, y, checkpoint_dir=run, resume=True, **FIT)
        assert same_weights(resumed.get_weights(), reference)


def test_real_read_only_file_system(tmp_path, capsys):
    with tmpfs(tmp_path / "ro", 64 * 1024) as ro:
        _remount(ro, "ro")
        with pytest.raises(OSError) as info:
            small_model().save(ro / "m.safetensors")
        assert info.value.errno == errno.EROFS and info.value.filename == str(ro / "m.safetensors")
        status = cli.main(["train", "--out", str(ro / "run"), "--quiet"])
        err = capsys.readouterr().err.strip().splitlines()
        assert status == 2
        assert err == [f"cnnlab: error: --out {ro / 'run'}: {ro} is on a read-only file system"]


# ------------------------------------------------------------------ output folders


def _train_cli(capsys: pytest.CaptureFixture, out: Path) -> tuple[int, list[str]]:
    status = cli.main(["train", "--out", str(out), "--quiet", "--no-figures"])
    return status, capsys.readouterr().err.strip().splitlines()


def test_out_is_a_file(tmp_path, capsys):
    out = tmp_path / "run"
    out.write_text("not a folder")
    assert _train_cli(capsys, out) == (2, [f"cnnlab: error: --out {out}: is a file, not a "
                                           "folder"])


def test_out_under_a_file(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "sub" / "run"
    assert _train_cli(capsys, out) == (2, [f"cnnlab: error: --out {out}: {blocker} is a file, "
                                           f"not a folder, so {out} cannot be created"])


def test_out_in_a_read_only_folder(tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root writes through folder permissions (the tmpfs test covers root)")
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    try:
        out = ro / "run"
        assert _train_cli(capsys, out) == (2, [f"cnnlab: error: --out {out}: cannot write in "
                                               f"{ro} (permission denied)"])
    finally:
        ro.chmod(0o755)


def test_missing_parent_folders_are_created(tmp_path):
    out = tmp_path / "a" / "b" / "run"
    assert fileio.check_output_dir(out) == out
    fileio.atomic_write_text(out / "history.json", json.dumps({"loss": [1.0]}))
    assert json.loads((out / "history.json").read_text()) == {"loss": [1.0]}


# ------------------------------------------------------------------ SIGKILL, many times


CHILD = r"""
import os, signal, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import test_write_faults as t
from cnnlab import fileio
from cnnlab.training.checkpoint import last_checkpoint

out, where, nth = sys.argv[2], sys.argv[3], int(sys.argv[4])
real = fileio.os


def die():
    os.kill(os.getpid(), signal.SIGKILL)


class KillingOs(t.FaultyOs):
    def fdopen(self, fd, mode):
        self.files += 1
        f = real.fdopen(fd, mode)
        if self.where == "write" and self._now():
            class Half:
                def __init__(s, f): s.f = f
                def write(s, data):
                    s.f.write(bytes(data)[: len(data) // 2]); s.f.flush(); die()
                def __getattr__(s, n): return getattr(s.f, n)
                def __enter__(s): return s
                def __exit__(s, *a): s.f.close()
            return Half(f)
        return f

    def fsync(self, fd):
        if self.where == "fsync" and self._now():
            die()
        real.fsync(fd)

    def replace(self, src, dst):
        if self.where == "rename" and self._now():
            die()  # written and synced, not yet renamed
        real.replace(src, dst)
        if self.where == "renamed" and self._now():
            die()  # renamed, the folder not yet synced


if where != "time":
    fileio.os = KillingOs(where, nth)
x, y = t.small_data()
model = t.small_model()
model.fit(x, y, checkpoint_dir=out, checkpoint_every=1,
          resume=last_checkpoint(out) is not None, **t.FIT)
fileio.os = real
model.save(os.path.join(out, "final.safetensors"))
"""


def test_sigkill_during_checkpoint_writes_many_times_then_bit_identical(tmp_path, reference):
    """Runs are killed leg after leg until ``KILLS`` kills in all; each run (one takes
    about 28 kills before it completes) must end with the reference weights."""
    rng = random.Random(18)
    wheres = ["write", "fsync", "rename", "renamed", "time"]
    kills, legs, runs = 0, 0, 0
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    while kills < KILLS:
        runs += 1
        out = tmp_path / f"run{runs}"
        out.mkdir()
        finished, legs_here = False, 0
        while not finished:
            legs += 1
            legs_here += 1
            assert legs_here <= 60, "the run does not progress"
            where = wheres[kills % len(wheres)] if kills < KILLS else "none"
            nth = rng.randint(1, 3)
            proc = subprocess.Popen([sys.executable, "-c", CHILD, str(Path(__file__).parent),
                                     str(out), where, str(nth)], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if where == "time":  # a random moment, once checkpoints are being written
                t0 = time.monotonic()
                while not (out / CHECKPOINT_NAME).exists() and proc.poll() is None:
                    time.sleep(0.01)
                    assert time.monotonic() - t0 < 120
                time.sleep(rng.uniform(0.0, 0.3))
                proc.send_signal(signal.SIGKILL)
            _, err = proc.communicate(timeout=300)
            if proc.returncode == -signal.SIGKILL:
                kills += 1
                # After every kill: the checkpoint on disk is whole (or there is none yet).
                if (out / CHECKPOINT_NAME).exists():
                    load_checkpoint(small_model(seed=5), out)
                stray = [n for n in temporaries(out)
                         if not n.startswith(f".{CHECKPOINT_NAME}.")]
                assert stray == []
            else:
                assert proc.returncode == 0, err[-3000:]
                finished = (out / "final.safetensors").exists()
        final = load_model(out / "final.safetensors")
        assert same_weights(final.get_weights(), reference), f"run {runs} differs"
    print(f"\n{kills} SIGKILLs over {legs} legs in {runs} runs; every run's final weights "
          "identical to the uninterrupted run's")

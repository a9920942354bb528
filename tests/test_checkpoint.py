"""Resume after a crash, Ctrl-C, and the NaN guard (issue 6)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

import cnnlab
from cnnlab.errors import NonFiniteError
from cnnlab.training.checkpoint import load_checkpoint

TRAIN_ARGS = ["--epochs", "2", "--train-limit", "600", "--test-limit", "200",
              "--batch-size", "50", "--seed", "7", "--checkpoint-every", "2",
              "--no-figures", "--quiet", "--no-validation"]


def _cnnlab(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "cnnlab", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _weights(run: Path) -> dict[str, np.ndarray]:
    return load_file(str(run / "model.safetensors"))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("straight")
    proc = _cnnlab("train", "--out", str(out), *TRAIN_ARGS)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return out


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.02)


def _wait_for_rewrites(path: Path, proc: subprocess.Popen, count: int,
                       timeout: float = 120) -> None:
    """Wait until the checkpoint at ``path`` has been replaced ``count`` times since it
    first appeared (each atomic write is a new file: a new inode or modification time)."""
    _wait_for(path, proc, timeout)
    st = os.stat(path)
    seen, changes, t0 = (st.st_ino, st.st_mtime_ns), 0, time.monotonic()
    while changes < count:
        assert proc.poll() is None, f"the run ended after {changes} of {count} checkpoint writes"
        assert time.monotonic() - t0 < timeout, f"{path} was not rewritten {count} times"
        st = os.stat(path)
        if (st.st_ino, st.st_mtime_ns) != seen:
            seen, changes = (st.st_ino, st.st_mtime_ns), changes + 1
        time.sleep(0.002)


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(2))
def test_sigkill_then_resume_is_bit_identical(uninterrupted, tmp_path, trial):
    out = tmp_path / "run"
    proc = _cnnlab("train", "--out", str(out), *TRAIN_ARGS)
    # somewhere in the first half of the run (12 checkpoints in all), counted in
    # checkpoint writes rather than seconds so that a fast machine cannot finish first
    rng = random.Random(trial)
    _wait_for_rewrites(out / "checkpoint.safetensors", proc, rng.randint(1, 5))
    time.sleep(rng.uniform(0.0, 0.05))  # maybe in the middle of the next write
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "model.safetensors").exists()
    leftovers = [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    resumed = _cnnlab("train", "--resume", str(out), "--quiet", "--no-figures")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    a, b = _weights(uninterrupted), _weights(out)
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), f"{k} differs after resume"
    # a killed write leaves at most a stray temporary file, never a torn checkpoint
    assert all(name.startswith(".checkpoint.safetensors.") for name in leftovers)


@pytest.mark.slow
def test_ctrl_c_saves_and_says_how_to_resume(uninterrupted, tmp_path):
    out = tmp_path / "run"
    proc = _cnnlab("train", "--out", str(out), *TRAIN_ARGS)
    _wait_for_rewrites(out / "checkpoint.safetensors", proc, 1)  # early in the run
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert f"cnnlab train --resume {out}" in err
    assert "Traceback" not in err
    resumed = _cnnlab("train", "--resume", str(out), "--quiet", "--no-figures")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    a, b = _weights(uninterrupted), _weights(out)
    for k in a:
        assert np.array_equal(a[k], b[k]), f"{k} differs after Ctrl-C and resume"


def _small_model(seed: int = 0, schedule: bool = False) -> cnnlab.Sequential:
    model = cnnlab.Sequential(
        [cnnlab.Conv2D(4, 3, activation="relu"), cnnlab.MaxPooling2D(2), cnnlab.Flatten(),
         cnnlab.Dense(10), cnnlab.Activation("softmax")],
        input_shape=(8, 8, 1), seed=seed)
    model.compile(cnnlab.Adam(cnnlab.OneCycle(1e-2, total_steps=12)) if schedule else "adam")
    return model


def _small_data(n: int = 64):
    rng = np.random.default_rng(1)
    return rng.random((n, 8, 8, 1), dtype=np.float32), rng.integers(0, 10, n)


@pytest.mark.parametrize("schedule", [False, True])
def test_fit_resume_in_process_matches(tmp_path, schedule):
    x, y = _small_data()
    ref = _small_model(schedule=schedule)
    ref.fit(x, y, epochs=3, batch_size=16, verbose=0)

    class Crash(Exception):
        pass

    class CrashAt(cnnlab.Callback):
        def on_batch_end(self, batch, logs=None):
            if self.model.optimizer.iterations == 7:  # in the middle of the second epoch
                raise Crash

    first = _small_model(schedule=schedule)
    with pytest.raises(Crash):
        first.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[CrashAt()],
                  checkpoint_dir=tmp_path, checkpoint_every=1)
    # different init: everything must come from the checkpoint (with a schedule,
    # the rate too: it follows the restored step count)
    second = _small_model(seed=123, schedule=schedule)
    second.fit(x, y, epochs=3, batch_size=16, verbose=0, checkpoint_dir=tmp_path, resume=True)
    for a, b in zip(ref.get_weights(), second.get_weights(), strict=True):
        assert np.array_equal(a, b)


def test_nan_gradient_stops_training_naming_step_and_layer(tmp_path):
    x, y = _small_data()
    model = _small_model()
    dense = model.get_layer("dense")
    real_backward = dense.backward
    calls = {"n": 0}

    def poisoned(grad):
        out = real_backward(grad)
        calls["n"] += 1
        if calls["n"] == 6:  # global step 5
            dense.grads[0] = dense.grads[0] * np.float32("nan")
        return out

    dense.backward = poisoned
    with pytest.raises(NonFiniteError, match=r"step 5: a non-finite gradient in layer 'dense'"):
        model.fit(x, y, epochs=3, batch_size=16, verbose=0, checkpoint_dir=tmp_path,
                  checkpoint_every=1)
    # the last good checkpoint is kept, finite, and from the step before
    fresh = _small_model()
    state = load_checkpoint(fresh, tmp_path)
    assert (state.epoch, state.step) == (1, 1)  # 4 steps per epoch: step 5 is epoch 1, step 1
    assert all(np.isfinite(w).all() for w in fresh.get_weights())


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_loss_names_the_first_bad_layer():
    x, y = _small_data()
    model = _small_model()
    kernel = model.get_layer("conv2d").weights[0]
    kernel[0, 0, 0, 0] = np.inf
    expected = r"step 0: .*layer 'conv2d' \(Conv2D\) has a non-finite kernel"
    with pytest.raises(NonFiniteError, match=expected):
        model.fit(x, y, epochs=1, batch_size=16, verbose=0)

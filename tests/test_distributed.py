"""Data-parallel training on MPI ranks (mpiexec from the mpich wheel, mpi4py).

The oracle is one process: N ranks with global batch B must train the model
one process trains with batch B (1e-10 in float64, 1e-5 in float32), dropout
included. Each test starts ``mpiexec`` in its own session with a timeout and
kills the whole group on the way out, so no rank outlives a failing test.

This file is also the ranks' program: ``python tests/test_distributed.py
worker OUT.npz [options]`` trains a tiny model (under mpiexec, as one rank).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
PYTHON = sys.executable
MPIEXEC = str(Path(sys.executable).parent / "mpiexec")
if not os.access(MPIEXEC, os.X_OK):
    MPIEXEC = shutil.which("mpiexec") or ""

pytestmark = [
    pytest.mark.mpi,
    pytest.mark.skipif(not MPIEXEC, reason="no mpiexec (pip install 'cnnlab[mpi]')"),
]


# ------------------------------------------------------------------ the ranks' program
def make_model(dtype: str, dropout: float, seed: int = 0, bn: bool = False):
    from cnnlab import (
        Activation,
        BatchNormalization,
        Conv2D,
        Dense,
        Dropout,
        Flatten,
        MaxPooling2D,
        Sequential,
    )

    layers = [Conv2D(4, 3, activation="relu", dtype=dtype)]
    if bn:
        layers.append(BatchNormalization(dtype=dtype))
    layers += [MaxPooling2D(2, dtype=dtype), Flatten(dtype=dtype),
               Dense(16, activation="relu", dtype=dtype)]
    if dropout:
        layers.append(Dropout(dropout, dtype=dtype))
    layers += [Dense(3, dtype=dtype), Activation("softmax", dtype=dtype)]
    return Sequential(layers, input_shape=(8, 8, 1), seed=seed)


def make_data(n: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(123)
    x = rng.normal(size=(n, 8, 8, 1)).astype(dtype)
    y = (x[:, :4].sum(axis=(1, 2, 3)) > 0).astype(np.int64) + (x[:, 4:, :4].mean(
        axis=(1, 2, 3)) > 0.2)
    return x, y


def train(opts: argparse.Namespace, group) -> tuple[dict[str, np.ndarray], dict]:
    model = make_model(opts.dtype, opts.dropout, bn=getattr(opts, "bn", False))
    model.compile(optimizer={"name": "adam", "learning_rate": 0.01},
                  loss="categorical_crossentropy")
    x, y = make_data(opts.n, opts.dtype)
    kwargs = {} if group is None else {"reduce_gradients": group}
    history = model.fit(x, y, epochs=opts.epochs, batch_size=opts.batch, verbose=0,
                        validation_data=(x[:13], y[:13]), checkpoint_dir=opts.ckpt,
                        checkpoint_every=1 if opts.ckpt else None,
                        resume=opts.resume, callbacks=_slow(opts.sleep) + _perturb(
                            group, getattr(opts, "perturb_rank", None)), **kwargs)
    weights = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    return weights, history.history


def _slow(seconds: float) -> list:
    """A callback sleeping after every step (so a test can kill a rank mid-epoch)."""
    from cnnlab import Callback

    class Sleep(Callback):
        def on_batch_end(self, batch, logs=None):
            time.sleep(seconds)

    return [Sleep()] if seconds else []


def _perturb(group, rank: int | None) -> list:
    """On rank ``rank``, nudge one weight after the first step (a planted divergence)."""
    from cnnlab import Callback

    class Nudge(Callback):
        def on_batch_end(self, batch, logs=None):
            if batch == 0:
                self.model.layers[0].weights[0][0, 0, 0, 0] += 1e-3

    return [Nudge()] if group is not None and group.rank == rank else []


def worker_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--dtype", default="float64")
    p.add_argument("--n", type=int, default=37)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--deterministic", action="store_true")
    p.add_argument("--ckpt", default=None)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--sleep", type=float, default=0.0)
    p.add_argument("--fail-rank", type=int, default=None)
    p.add_argument("--pid-dir", default=None)
    p.add_argument("--bn", action="store_true", help="BatchNormalization after the conv")
    p.add_argument("--perturb-rank", type=int, default=None)
    p.add_argument("--local", action="store_true", help="one process, no MPI (the oracle)")
    opts = p.parse_args(argv)
    if opts.local:
        weights, history = train(opts, None)
        np.savez(opts.out, size=1, **weights)
        return 0
    from cnnlab.distributed import world

    group = world(deterministic=opts.deterministic)
    assert group is not None, "run me under mpiexec with at least 2 ranks"
    if opts.pid_dir:
        (Path(opts.pid_dir) / f"rank{group.rank}.pid").write_text(str(os.getpid()))
        (Path(opts.pid_dir) / f"rank{group.rank}.netns").write_text(
            os.readlink("/proc/self/ns/net"))
    with group.abort_on_error():
        if opts.fail_rank == group.rank:
            from cnnlab.errors import InvalidArgumentError

            raise InvalidArgumentError("a planted failure")
        weights, history = train(opts, group)
        if group.rank == 0:
            np.savez(opts.out, size=group.size, **weights,
                     **{f"h_{k}": np.array(v) for k, v in history.items()})
    return 0


# ------------------------------------------------------------------ helpers
def mpi_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"))
    env.update(extra or {})
    return env


def run(cmd: list[str], timeout: float, env: dict[str, str] | None = None,
        kill_rank_after: float | None = None) -> subprocess.CompletedProcess:
    """Run ``cmd`` in its own session; on timeout (or any error) kill the whole session."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env or mpi_env(), start_new_session=True, cwd=ROOT)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{cmd[:6]}... still running after {timeout} s\n{out}\n{err}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        _kill_leftovers(proc.pid)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _kill_leftovers(session: int) -> None:
    """SIGKILL any process still in the session ``session`` (a rank the launcher left)."""
    try:
        os.killpg(session, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def worker(n_ranks: int, out: Path, *args: str) -> list[str]:
    return [MPIEXEC, "-n", str(n_ranks), PYTHON, str(HERE), "worker", str(out), *args]


def local(**overrides: object) -> tuple[dict[str, np.ndarray], dict]:
    """The oracle: the same training in this process, no MPI (``overrides``: worker options)."""
    opts = argparse.Namespace(dtype="float64", n=37, batch=8, epochs=2, dropout=0.3,
                              ckpt=None, resume=False, sleep=0.0, bn=False)
    vars(opts).update(overrides)
    return train(opts, None)


def load(out: Path) -> dict[str, np.ndarray]:
    with np.load(out) as f:
        return {k: f[k] for k in f.files}


def max_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    keys = [k for k in a if k.startswith("w")]
    assert keys and all(a[k].shape == b[k].shape for k in keys)
    return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k]))) for k in keys)


# ------------------------------------------------------------------ tests
def test_import_does_not_start_mpi() -> None:
    code = ("import sys, cnnlab, cnnlab.distributed as d; "
            "assert d.world() is None; assert 'mpi4py' not in sys.modules; print('ok')")
    env = {k: v for k, v in mpi_env().items() if k not in ("PMI_RANK", "PMI_SIZE", "PMIX_RANK")}
    r = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


@pytest.mark.parametrize(("ranks", "dtype", "tol"), [(2, "float64", 1e-10),
                                                     (3, "float64", 1e-10),
                                                     (3, "float32", 1e-5)])
def test_ranks_equal_one_process(tmp_path: Path, ranks: int, dtype: str, tol: float) -> None:
    # 37 examples, batch 8: 5 steps per epoch, the last of 5 examples (3 ranks: 2, 2, 1),
    # and batch 8 over 3 ranks is 3, 3, 2; dropout 0.3 after the hidden Dense layer.
    out = tmp_path / "w.npz"
    r = run(worker(ranks, out, "--dtype", dtype), timeout=90)
    assert r.returncode == 0, r.stderr
    got = load(out)
    assert int(got["size"]) == ranks
    ref, hist = local(dtype=dtype)
    before = {f"w{i}": w for i, w in enumerate(make_model(dtype, 0.3).get_weights())}
    assert max_diff(ref, before) > 1e-2  # training moved the weights
    assert max_diff(got, ref) < tol
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(got[f"h_{key}"], hist[key], rtol=tol * 10, atol=tol)


def test_empty_shards(tmp_path: Path) -> None:
    # batch 2 on 3 ranks: one rank has no example in every step, and 7 examples leave
    # a last batch of 1 (two empty shards)
    out = tmp_path / "w.npz"
    r = run(worker(3, out, "--n", "7", "--batch", "2"), timeout=90)
    assert r.returncode == 0, r.stderr
    ref, _ = local(n=7, batch=2)
    assert max_diff(load(out), ref) < 1e-10


def test_batch_normalization_keeps_ranks_identical(tmp_path: Path) -> None:
    """BN normalises each shard with its own statistics (documented), and its moving
    statistics are averaged over the ranks, so the ranks stay identical (the epoch-end
    checksum would stop the run otherwise) and the moving mean stays the global one."""
    out = tmp_path / "w.npz"
    r = run(worker(3, out, "--bn", "--epochs", "1"), timeout=90)
    assert r.returncode == 0, r.stderr
    got = load(out)
    ref, _ = local(bn=True, epochs=1)
    assert max_diff(got, ref) > 1e-8  # per-shard batch statistics: not one process's model
    # w4: the moving mean (after the kernel, bias, gamma and beta); the size-weighted mean
    # of the shards' means is the batch's mean, so it follows one process's closely
    np.testing.assert_allclose(got["w4"], ref["w4"], rtol=0.02)


def test_divergence_is_an_error_naming_the_rank(tmp_path: Path) -> None:
    r = run(worker(3, tmp_path / "w.npz", "--perturb-rank", "2", "--epochs", "1"), timeout=90)
    assert r.returncode != 0
    assert "weights of rank(s) [2] differ from rank 0's" in r.stderr, r.stderr


def test_deterministic_is_bit_for_bit(tmp_path: Path) -> None:
    outs = [tmp_path / f"w{i}.npz" for i in range(2)]
    for out in outs:
        r = run(worker(3, out, "--dtype", "float32", "--deterministic"), timeout=90)
        assert r.returncode == 0, r.stderr
    a, b = load(outs[0]), load(outs[1])
    for k in a:
        if k != "h_time":  # seconds
            assert np.array_equal(a[k], b[k]), k


def test_two_ranks_against_one_process_of_two_threads(tmp_path: Path) -> None:
    """Are 2 ranks x 1 thread bit for bit one process x 2 threads? No, and this shows it.

    Both cut a batch of 32 into the same two halves (the thread split in
    cnnlab.ops.parallel sums the halves' convolution gradients in a fixed order,
    as --deterministic sums the ranks'), but one process scales the loss's
    gradient by 1/32 where a rank scales by 1/16 and then 16/32, and computes a
    Dense layer's weight gradient as one product over all 32 examples where the
    ranks add two products of 16. So they agree to rounding (1e-10 in float64),
    not bit for bit.
    """
    mpi, one = tmp_path / "mpi.npz", tmp_path / "one.npz"
    args = ("--n", "64", "--batch", "32", "--epochs", "1")
    r = run(worker(2, mpi, *args, "--deterministic"), timeout=90)
    assert r.returncode == 0, r.stderr
    env = mpi_env({"CNNLAB_WORKERS": "2", "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"})
    r = run([PYTHON, str(HERE), "worker", str(one), *args, "--local"], timeout=90, env=env)
    assert r.returncode == 0, r.stderr
    a, b = load(mpi), load(one)
    assert max_diff(a, b) < 1e-10
    assert not all(np.array_equal(a[k], b[k]) for k in a if k.startswith("w"))


def test_exception_on_one_rank_stops_all(tmp_path: Path) -> None:
    t0 = time.monotonic()
    r = run(worker(3, tmp_path / "w.npz", "--fail-rank", "1", "--sleep", "0.2"), timeout=60)
    assert r.returncode != 0
    assert "rank 1 of 3: a planted failure" in r.stderr
    assert time.monotonic() - t0 < 60


def _wait_for(path: Path, timeout: float) -> None:
    t0 = time.monotonic()
    while not path.is_file():
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"{path} never appeared")
        time.sleep(0.01)


def test_kill_one_rank_then_resume_on_other_count(tmp_path: Path) -> None:
    """SIGKILL a rank mid-epoch: the job ends in < 30 s with an error; the checkpoint
    (written every step by rank 0) resumes on 3 ranks and ends where one process ends."""
    ckpt = tmp_path / "ckpt"
    out = tmp_path / "w.npz"
    cmd = worker(2, out, "--ckpt", str(ckpt), "--sleep", "0.3", "--pid-dir", str(tmp_path))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=mpi_env(), start_new_session=True, cwd=ROOT)
    try:
        _wait_for(ckpt / "checkpoint.safetensors", 60)
        time.sleep(0.5)
        victim = int((tmp_path / "rank1.pid").read_text())
        os.kill(victim, signal.SIGKILL)
        t0 = time.monotonic()
        stdout, err = proc.communicate(timeout=30)
        assert time.monotonic() - t0 < 30
        assert proc.returncode != 0
        assert not out.exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        _kill_leftovers(proc.pid)
    assert f"PID {victim} RUNNING AT" in stdout, (stdout, err)  # hydra names the process
    r = run(worker(3, out, "--ckpt", str(ckpt), "--resume"), timeout=90)
    assert r.returncode == 0, r.stderr
    ref, _ = local()
    assert max_diff(load(out), ref) < 1e-10


def test_hung_rank_ends_the_job_after_the_timeout(tmp_path: Path) -> None:
    """A rank that stops answering (SIGSTOP) without dying: with CNNLAB_MPI_TIMEOUT=3 the
    rank waiting for it gives up after 3 s, naming itself and the collective, and the
    launcher ends the job (without a timeout MPI would wait forever)."""
    ckpt = tmp_path / "ckpt"
    cmd = worker(2, tmp_path / "w.npz", "--ckpt", str(ckpt), "--sleep", "0.1", "--pid-dir",
                 str(tmp_path), "--epochs", "20")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=mpi_env({"CNNLAB_MPI_TIMEOUT": "3"}), start_new_session=True,
                            cwd=ROOT)
    try:
        _wait_for(ckpt / "checkpoint.safetensors", 60)
        os.kill(int((tmp_path / "rank1.pid").read_text()), signal.SIGSTOP)
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=30)
        assert time.monotonic() - t0 < 30
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        _kill_leftovers(proc.pid)
    assert proc.returncode != 0
    assert "rank 0 of 2: no answer from the other ranks for 3 s in" in err, err


def test_cli_workers_end_to_end(tmp_path: Path) -> None:
    """`cnnlab train --workers 2`; a rank killed mid-epoch is named and the job ends in
    < 30 s; `--resume --workers 3` finishes the run; rank 0 alone prints and writes."""
    out = tmp_path / "run"
    pids = tmp_path / "pids"
    pids.mkdir()
    cmd = [PYTHON, "-m", "cnnlab", "train", "--workers", "2", "--train-limit", "320",
           "--test-limit", "100", "--epochs", "1", "--batch-size", "16", "--model",
           "lenet5", "--out", str(out), "--no-figures", "--seed", "1", "--checkpoint-every",
           "1", "--quiet"]
    env = mpi_env({"CNNLAB_MPI_PID_DIR": str(pids)})
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True, cwd=ROOT)
    try:
        _wait_for(out / "checkpoint.safetensors", 60)
        victim = next(int(f.stem) for f in pids.glob("*.rank") if f.read_text() == "1")
        os.kill(victim, signal.SIGSTOP)  # from here the run cannot finish: rank 0 waits
        assert not (out / "model.safetensors").exists()
        time.sleep(0.2)
        os.kill(victim, signal.SIGKILL)
        t0 = time.monotonic()
        stdout, err = proc.communicate(timeout=30)
        assert time.monotonic() - t0 < 30
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        _kill_leftovers(proc.pid)
    assert proc.returncode != 0
    assert f"rank 1 of 2 (pid {victim}" in err, (stdout, err)
    assert not (out / "model.safetensors").exists()
    r = run([PYTHON, "-m", "cnnlab", "train", "--workers", "3", "--resume", str(out),
             "--no-figures"], timeout=120)
    assert r.returncode == 0, r.stderr
    assert (out / "model.safetensors").is_file()
    assert r.stdout.count("Test accuracy:") == 1  # rank 0 alone reports
    assert "Data-parallel on 3 MPI ranks" in r.stdout
    with open(out / "history.json") as f:
        assert len(json.load(f)["loss"]) == 1


# ------------------------------------------------------------------ two "hosts"
LAUNCHER = """#!/bin/sh
# hydra's rsh launcher runs: <this script> <host> <command...>; a host is a namespace
case "$1" in
  {ip_a}) ns={ns_a} ;;
  {ip_b}) ns={ns_b} ;;
  *) echo "no namespace for host $1" >&2; exit 1 ;;
esac
shift
exec ip netns exec "$ns" sh -c "$*"
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _veth_bytes(ns: str) -> int:
    r = subprocess.run(["ip", "netns", "exec", ns, "cat", "/sys/class/net/cnl0/statistics/"
                        "tx_bytes"], capture_output=True, text=True, check=True, timeout=30)
    return int(r.stdout)


@pytest.fixture
def two_hosts(tmp_path: Path):
    """Two network namespaces joined by a veth pair (``cnl0`` in each, 10.214.x.1 and .2),
    with nothing else in them (no route out); removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("creating network namespaces needs root")
    if shutil.which("ip") is None:
        pytest.skip("no `ip` command (Debian: apt-get install iproute2)")
    tag = f"{os.getpid() % 100000}"
    ns_a, ns_b = f"cnlA{tag}", f"cnlB{tag}"
    net = f"10.214.{os.getpid() % 250}"
    try:
        _ip("netns", "add", ns_a)
    except subprocess.CalledProcessError as e:
        pytest.skip(f"cannot create a network namespace here: {e.stderr.decode().strip()}")
    try:
        _ip("netns", "add", ns_b)
        _ip("link", "add", f"cnx{tag}", "type", "veth", "peer", "name", f"cny{tag}")
        _ip("link", "set", f"cnx{tag}", "netns", ns_a)
        _ip("link", "set", f"cny{tag}", "netns", ns_b)
        _ip("-n", ns_a, "link", "set", f"cnx{tag}", "name", "cnl0")
        _ip("-n", ns_b, "link", "set", f"cny{tag}", "name", "cnl0")
        for ns, host in ((ns_a, 1), (ns_b, 2)):
            _ip("-n", ns, "addr", "add", f"{net}.{host}/24", "dev", "cnl0")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "link", "set", "cnl0", "up")
        launcher = tmp_path / "netns_launcher.sh"
        launcher.write_text(LAUNCHER.format(ip_a=f"{net}.1", ip_b=f"{net}.2", ns_a=ns_a,
                                            ns_b=ns_b))
        launcher.chmod(0o755)
        yield {"ns": (ns_a, ns_b), "hosts": (f"{net}.1", f"{net}.2"), "launcher": launcher}
    finally:
        for ns in (ns_a, ns_b):  # deleting a namespace deletes its end of the veth pair
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def test_two_hosts_over_tcp(tmp_path: Path, two_hosts: dict) -> None:
    """One rank in each namespace, MPICH over TCP (libfabric's tcp provider on cnl0):
    the same model as one process, and the gradients crossed the veth pair."""
    ns_a, ns_b = two_hosts["ns"]
    out = tmp_path / "w.npz"
    env = mpi_env({"FI_PROVIDER": "tcp", "FI_TCP_IFACE": "cnl0", "MPIR_CVAR_CH4_NETMOD": "ofi",
                   "MPIR_CVAR_NOLOCAL": "1"})
    before = _veth_bytes(ns_b)
    cmd = ["ip", "netns", "exec", ns_a, MPIEXEC, "-launcher", "rsh", "-launcher-exec",
           str(two_hosts["launcher"]), "-hosts", ",".join(two_hosts["hosts"]), "-iface", "cnl0",
           "-n", "2", "-ppn", "1", PYTHON, str(HERE), "worker", str(out), "--pid-dir",
           str(tmp_path)]
    r = run(cmd, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    ref, _ = local()
    assert max_diff(load(out), ref) < 1e-10
    sent = _veth_bytes(ns_b) - before
    n_params = sum(w.size for w in ref.values())
    assert sent > 10 * n_params * 8  # 10 steps of float64 gradients went through the veth
    spaces = {(tmp_path / f"rank{r}.netns").read_text() for r in range(2)}
    assert len(spaces) == 2 and os.readlink("/proc/self/ns/net") not in spaces


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        sys.exit(worker_main(sys.argv[2:]))
    sys.exit(pytest.main([__file__, "-q"]))

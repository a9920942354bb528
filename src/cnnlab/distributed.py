"""Data-parallel training on MPI (mpi4py): Horovod's design, in NumPy.

Every process (an MPI *rank*) holds the whole model and runs the same
:func:`cnnlab.training.fit` over the same global batches:

1. at the start, rank 0's weights, optimizer state, random generator and
   position (read from the checkpoint when resuming) are broadcast, so every
   rank starts identical;
2. each global batch of ``B`` examples is cut into ``N`` contiguous shards
   (sizes differ by at most one; a shard may be empty when ``B < N``); rank
   ``r`` computes the mean-loss gradient ``g_r`` of its ``n_r`` examples;
3. one fused buffer per step, ``[(n_r / B) g_r for every tensor, (n_r / B)
   BN moving statistics, (n_r / B) loss, correct, stop]``, is all-reduced
   (summed), so every rank gets ``sum_r (n_r / B) g_r``: the mean-loss
   gradient of the global batch, as one process computes it;
4. every rank applies the same optimizer update.

So ``--batch-size`` is the *global* batch, and ``N`` ranks train the model one
process would train with the same batch, within rounding (1e-10 in float64).
Dropout is included: during a step, each Dropout layer draws its mask for the
whole global batch from the (identical) model generator, as one process does,
and keeps its shard's rows; the shuffled order and augmentation are drawn the
same way, because every rank reads the global batch and slices it.

BatchNormalization normalises each shard with that shard's own statistics
(as Horovod without SyncBatchNorm); its moving mean and variance are averaged
over the ranks (weighted by shard size) in the same fused buffer, so the ranks
stay identical, but a BN model on N ranks is *not* the model one process
trains (the batch statistics differ).

``deterministic=True`` gathers every rank's buffer and sums them in rank
order, so a run is bit for bit the same every time (an ``MPI_Allreduce`` may
add in any order). Rank 0 alone shows progress and writes checkpoints; every
rank waits at a barrier after each one. The weights' checksums are compared at
every epoch end (:class:`RankDivergenceError` names the ranks that differ).

Nothing here runs unless the process was started by an MPI launcher:
:func:`launched_by_mpi` reads the launcher's environment variables, and
``mpi4py`` (which initialises MPI when imported) is imported only by
:func:`world`.

>>> launched_by_mpi({})
False
>>> launched_by_mpi({"PMI_RANK": "0", "PMI_SIZE": "2"})
True
>>> shard_bounds(10, 3, 0), shard_bounds(10, 3, 1), shard_bounds(10, 3, 2)
((0, 4), (4, 7), (7, 10))
>>> shard_bounds(2, 3, 2)
(2, 2)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import traceback
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.errors import CnnlabError, InvalidArgumentError
from cnnlab.layers import Dropout
from cnnlab.ops import parallel
from cnnlab.training.loop import (
    DataParallel,
    TrainingInterrupted,
    apply_gradients,
    compute_gradients,
)
from cnnlab.training.state import TrainState

#: Environment variables an MPI launcher sets in the processes it starts
#: (MPICH's hydra: PMI_*; Open MPI: OMPI_COMM_WORLD_*; PMIx launchers, srun: PMIX_RANK).
LAUNCHER_VARIABLES = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_RANK",
                      "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_RANK")
#: The variables among them that give the number of processes.
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


#: Seconds a rank may wait in one collective before it gives up (:class:`MPIGroup`).
TIMEOUT_VARIABLE = "CNNLAB_MPI_TIMEOUT"
#: Set by :func:`launch`: a folder where each rank writes ``<pid>.rank`` (its rank).
PID_DIR_VARIABLE = "CNNLAB_MPI_PID_DIR"


class RankDivergenceError(CnnlabError, RuntimeError):
    """The ranks' weights differ: a reduction went wrong (or a machine is faulty)."""


def launched_by_mpi(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process was started by an MPI launcher (``mpiexec``, ``srun``)."""
    env = os.environ if environ is None else environ
    return any(name in env for name in LAUNCHER_VARIABLES)


def launcher_size(environ: Mapping[str, str] | None = None) -> int | None:
    """The number of processes the launcher started, from its variables, or None."""
    env = os.environ if environ is None else environ
    for name in SIZE_VARIABLES:
        value = env.get(name, "")
        if value.isdigit():
            return int(value)
    return None


def shard_bounds(n: int, size: int, rank: int) -> tuple[int, int]:
    """``(lo, hi)``: rank ``rank``'s contiguous share of ``n`` examples over ``size`` ranks.

    The first ``n % size`` ranks get ``n // size + 1`` examples, the others
    ``n // size`` (possibly none).
    """
    base, extra = divmod(n, size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def _comm_world() -> Any:
    """``MPI.COMM_WORLD``; importing mpi4py initialises MPI (main thread calls only)."""
    try:
        import mpi4py
    except ImportError:
        raise InvalidArgumentError(
            "this process was started by an MPI launcher but mpi4py is not installed: "
            "pip install 'cnnlab[mpi]'"
        ) from None
    if "mpi4py.MPI" not in sys.modules:
        mpi4py.rc.thread_level = "funneled"  # only the main thread calls MPI
    from mpi4py import MPI

    return MPI.COMM_WORLD


def world(deterministic: bool = False, timeout: float | None = None) -> MPIGroup | None:
    """The MPI group of this process, or None when there is nothing to distribute.

    None when the process was not started by an MPI launcher (mpi4py is then
    never imported) or was started as the only process. ``timeout`` (default:
    the ``CNNLAB_MPI_TIMEOUT`` environment variable, else none): see
    :class:`MPIGroup`.
    """
    if not launched_by_mpi() or launcher_size() == 1:
        return None
    if timeout is None and os.environ.get(TIMEOUT_VARIABLE):
        try:
            timeout = float(os.environ[TIMEOUT_VARIABLE])
        except ValueError:
            raise InvalidArgumentError(
                f"{TIMEOUT_VARIABLE} must be a number of seconds, got "
                f"{os.environ[TIMEOUT_VARIABLE]!r}") from None
    comm = _comm_world()
    if comm.Get_size() == 1:
        return None
    return MPIGroup(comm, deterministic=deterministic, timeout=timeout)


class _ShardedGenerator:
    """The model's generator as a Dropout layer sees it during a sharded step.

    ``random(shape)`` draws for the whole global batch, ``(n, *shape[1:])``, as
    one process would, and returns this rank's rows ``lo:hi``; every rank
    therefore consumes the generator identically.
    """

    def __init__(self, rng: np.random.Generator, n: int, lo: int, hi: int) -> None:
        self.rng, self.n, self.lo, self.hi = rng, n, lo, hi

    def random(self, size: Sequence[int], dtype: Any = np.float64) -> np.ndarray:
        return self.rng.random((self.n, *tuple(size)[1:]), dtype=dtype)[self.lo : self.hi]

    def __getattr__(self, name: str) -> Any:
        raise InvalidArgumentError(
            f"a layer drew from the generator with {name}() during a data-parallel step; "
            "only random() (Dropout's draw) is sharded so that ranks match one process"
        )


class MPIGroup(DataParallel):
    """The ranks of an MPI communicator training one model (see the module docstring).

    Pass it to ``fit`` as ``reduce_gradients`` (:func:`world` makes one):

    ``model.fit(x, y, batch_size=B, reduce_gradients=cnnlab.distributed.world())``

    Called as a plain :data:`~cnnlab.training.GradientReducer` (``group(grads)``)
    it averages the ranks' gradients.

    Attributes: ``comm`` (the mpi4py communicator), ``rank``, ``size``,
    ``deterministic``; ``reduce_seconds`` and ``reductions`` count the time in
    and the number of gradient reductions (for benchmarks).

    ``timeout`` (seconds): a rank that waits longer than this in one collective
    (the others hung, or the network failed; a rank that *dies* is already
    caught by the launcher) prints an error naming itself and the collective
    and exits, and the launcher then ends the others. It must exceed the
    longest a rank can wait for the others: data loading, a checkpoint, an
    evaluation. None (the default) waits forever, as MPI does.
    """

    def __init__(self, comm: Any, deterministic: bool = False,
                 timeout: float | None = None) -> None:
        self.comm = comm
        self.rank = int(comm.Get_rank())
        self.size = int(comm.Get_size())
        self.deterministic = bool(deterministic)
        self.reduce_seconds = 0.0
        self.reductions = 0
        self.timeout = timeout
        self._waiting: tuple[str, float] | None = None  # (collective, since), for the watchdog
        if timeout is not None:
            if not timeout > 0:
                raise InvalidArgumentError(f"the MPI timeout must be > 0 seconds, got {timeout}")
            import threading

            threading.Thread(target=self._watchdog, name="cnnlab-mpi-watchdog",
                             daemon=True).start()
        pid_dir = os.environ.get(PID_DIR_VARIABLE)
        if pid_dir:  # cnnlab train --workers: the launcher names a killed rank by its pid
            with contextlib.suppress(OSError):
                (Path(pid_dir) / f"{os.getpid()}.rank").write_text(str(self.rank))

    # ------------------------------------------------------------ collectives
    @contextlib.contextmanager
    def _collective(self, name: str) -> Iterator[None]:
        """Mark this rank as waiting in collective ``name`` (for the watchdog)."""
        self._waiting = (name, time.monotonic())
        try:
            yield
        finally:
            self._waiting = None

    def _watchdog(self) -> None:
        """Exit this rank when a collective outlasts ``timeout`` (the launcher ends the rest).

        Runs in its own thread and makes no MPI call (the main thread may be inside one).
        """
        assert self.timeout is not None
        while True:
            time.sleep(min(1.0, self.timeout / 4))
            waiting = self._waiting
            if waiting is not None and time.monotonic() - waiting[1] > self.timeout:
                print(f"cnnlab: error: rank {self.rank} of {self.size}: no answer from the "
                      f"other ranks for {self.timeout:g} s in {waiting[0]} (a rank hung or "
                      "the network failed); stopping", file=sys.stderr, flush=True)
                os._exit(3)

    def allreduce_sum(self, buf: np.ndarray) -> np.ndarray:
        """``sum over ranks`` of the 1-D ``buf``, in place; in rank order if deterministic."""
        from mpi4py import MPI

        t0 = time.perf_counter()
        if self.deterministic:
            gathered = np.empty((self.size, buf.size), dtype=buf.dtype)
            with self._collective("an all-gather (gradients or metrics)"):
                self.comm.Allgather(buf, gathered)
            buf[...] = gathered[0]
            for r in range(1, self.size):  # rank order: the same sum on every run
                buf += gathered[r]
        else:
            with self._collective("an all-reduce (gradients or metrics)"):
                self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        self.reduce_seconds += time.perf_counter() - t0
        self.reductions += 1
        return buf

    def barrier(self) -> None:
        with self._collective("a barrier"):
            self.comm.Barrier()

    def __call__(self, grads: list[Any]) -> None:
        """Average ``grads`` over the ranks, in place (one fused buffer)."""
        buf = np.concatenate([np.ravel(g) for g in grads]) if grads else np.zeros(0)
        self.allreduce_sum(buf)
        buf /= self.size
        _unpack(buf, grads)

    # ------------------------------------------------------------ training
    def shard(self, n: int) -> tuple[int, int]:
        """This rank's ``(lo, hi)`` of ``n`` examples (:func:`shard_bounds`)."""
        return shard_bounds(n, self.size, self.rank)

    def start(self, model: Any, state: TrainState) -> TrainState:
        payload = None
        if self.rank == 0:
            payload = {"config": model.get_config(), "weights": model.get_weights(),
                       "optimizer": model.optimizer.get_state(),
                       "rng": model.rng.bit_generator.state, "state": state}
        with self._collective("the broadcast of rank 0's state"):
            payload = self.comm.bcast(payload, root=0)
        if self.rank == 0:
            return state
        if payload["config"] != model.get_config():
            raise InvalidArgumentError(
                f"rank {self.rank} built a different model from rank 0's: every rank must "
                "run the same command on the same data"
            )
        model.set_weights(payload["weights"])
        opt = payload["optimizer"]
        params = [w for layer in model.layers for w in layer.trainable_weights]
        if len(opt) > 1:  # slots exist (a resumed run)
            model.optimizer.set_state(opt, params)
        else:
            model.optimizer.iterations = int(opt["iterations"])
            model.optimizer.slots = {}
        model.rng.bit_generator.state = payload["rng"]
        return payload["state"]

    def train_step(self, model: Any, x: Any, y: Any, step: int, stop: bool
                   ) -> tuple[float, int, bool]:
        n = len(x)
        lo, hi = self.shard(n)
        layers = model.layers[:-1] if model.loss_head.from_logits else model.layers
        dropouts = [layer for layer in layers if isinstance(layer, Dropout) and layer.rate > 0]
        saved = [layer.rng for layer in dropouts]
        sharded = _ShardedGenerator(model.rng, n, lo, hi)
        for layer in dropouts:
            layer.rng = sharded
        try:
            if hi > lo:
                with parallel.batch_scope(hi - lo):
                    loss, correct = compute_gradients(model, x[lo:hi], y[lo:hi], step)
            else:  # an empty shard: no gradient, but the generator moves as on the others
                for layer in dropouts:
                    layer.forward(np.zeros((0, *layer.input_shape), dtype=layer.dtype), True)
                for layer in model.layers:
                    for g in layer.grads:
                        g[...] = 0
                loss, correct = 0.0, 0
        finally:
            for layer, rng in zip(dropouts, saved, strict=True):
                layer.rng = rng
        loss, correct, stop_any = self._reduce_step(model, (hi - lo) / n, loss, correct, stop)
        apply_gradients(model, step)
        return loss, correct, stop_any

    def _reduce_step(self, model: Any, weight: float, loss: float, correct: int, stop: bool
                     ) -> tuple[float, int, bool]:
        """All-reduce the weighted gradients, BN statistics and metrics in one buffer."""
        grads = [g for layer in model.layers for g in layer.grads]
        stats = _moving_statistics(model)
        dtype = np.result_type(*grads, *stats) if grads or stats else np.float64
        tail = np.array([loss * weight, correct, 1.0 if stop else 0.0], dtype=dtype)
        parts = [np.ravel(a) for a in (*grads, *stats)]
        buf = np.concatenate([*parts, tail]).astype(dtype, copy=False)
        body = buf[: buf.size - 3]
        body *= dtype.type(weight)
        self.allreduce_sum(buf)
        _unpack(buf, [*grads, *stats])
        return float(buf[-3]), int(round(float(buf[-2]))), bool(buf[-1] > 0)

    def evaluate(self, model: Any, x: Any, y: Any) -> tuple[float, float]:
        n = len(x)
        lo, hi = self.shard(n)
        sums = np.zeros(2)
        if hi > lo:
            loss, acc = model.evaluate(x[lo:hi], y[lo:hi])
            sums[:] = loss * (hi - lo), acc * (hi - lo)
        self.allreduce_sum(sums)
        return float(sums[0] / n), float(sums[1] / n)

    def check_consistent(self, model: Any, epoch: int) -> None:
        with self._collective("the weights' checksum"):
            sums = self.comm.allgather(weights_checksum(model))
        differ = [r for r, c in enumerate(sums) if c != sums[0]]
        if differ:
            raise RankDivergenceError(
                f"after epoch {epoch + 1} the weights of rank(s) {differ} differ from rank 0's "
                f"(CRC-32 {[f'{c:08x}' for c in sums]}): training stopped"
            )

    # ------------------------------------------------------------ failures
    def abort(self, message: str, code: int = 1) -> None:
        """Print ``message`` naming this rank and end every rank of the job (MPI_Abort)."""
        print(f"cnnlab: error: rank {self.rank} of {self.size}: {message}", file=sys.stderr,
              flush=True)
        sys.stdout.flush()
        self.comm.Abort(code)

    @contextlib.contextmanager
    def abort_on_error(self) -> Iterator[None]:
        """An exception on this rank ends the whole job (the others would wait for it in
        the next collective forever); a Ctrl-C every rank agreed on ends normally."""
        try:
            yield
        except TrainingInterrupted:
            raise
        except CnnlabError as e:
            self.abort(str(e), 2)
        except KeyboardInterrupt:
            self.abort("interrupted", 130)
        except BaseException as e:  # a bug: the traceback, then the job ends
            traceback.print_exc()
            self.abort(f"{type(e).__name__}: {e}", 1)


def _moving_statistics(model: Any) -> list[np.ndarray]:
    """The weights layers update themselves (BatchNormalization's moving mean, variance)."""
    return [w for layer in model.layers
            for name, w in zip(layer.weight_names, layer.weights, strict=True)
            if name in layer.non_trainable_names]


def _unpack(buf: np.ndarray, arrays: Sequence[np.ndarray]) -> None:
    """Copy consecutive pieces of ``buf`` back into ``arrays`` (in place)."""
    offset = 0
    for a in arrays:
        a[...] = buf[offset : offset + a.size].reshape(a.shape)
        offset += a.size


def weights_checksum(model: Any) -> int:
    """CRC-32 of every weight's bytes and the optimizer's state (cheap: ~GB/s)."""
    crc = 0
    arrays = [w for layer in model.layers for w in layer.weights]
    if model.optimizer is not None:
        arrays += [np.asarray(v) for _, v in sorted(model.optimizer.get_state().items())]
    for a in arrays:
        crc = zlib.crc32(np.ascontiguousarray(a).view(np.uint8).reshape(-1), crc)
    return crc


# ---------------------------------------------------------------- launching
def find_mpiexec() -> str:
    """``mpiexec`` beside this Python (the ``mpich`` wheel's), or the first on PATH."""
    here = Path(sys.executable).parent / "mpiexec"
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    found = shutil.which("mpiexec")
    if found is None:
        raise InvalidArgumentError(
            "--workers needs mpiexec: pip install 'cnnlab[mpi]' (mpi4py and MPICH), or a "
            "system MPI (Debian: apt install openmpi-bin, then mpi4py built against it)"
        )
    return found


def mpiexec_command(workers: int, args: Sequence[str], mpiexec: str | None = None
                    ) -> list[str]:
    """The command that runs ``python -m cnnlab *args`` on ``workers`` local ranks."""
    exe = mpiexec or find_mpiexec()
    extra: list[str] = []
    try:
        version = subprocess.run([exe, "--version"], capture_output=True, text=True,
                                 timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        version = ""
    if "Open MPI" in version or "OpenRTE" in version:
        extra.append("--oversubscribe")  # more ranks than cores is allowed (and slow)
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            extra.append("--allow-run-as-root")
    return [exe, *extra, "-n", str(workers), sys.executable, "-m", "cnnlab", *args]


def rank_environment(workers: int, environ: Mapping[str, str] | None = None
                     ) -> dict[str, str]:
    """The environment for ``workers`` ranks on this machine: the cores shared out
    (``OMP_NUM_THREADS`` and ``OPENBLAS_NUM_THREADS``, unless already set)."""
    env = dict(os.environ if environ is None else environ)
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.setdefault(name, threads)
    return env


def launch(workers: int, args: Sequence[str]) -> int:
    """Run ``cnnlab *args`` on ``workers`` ranks of this machine; the launcher's status.

    The launcher's output passes through as it comes. When a rank dies (killed,
    or crashed without a word), MPICH's launcher ends the others and names the
    dead process's pid; this function then names its rank too.
    """
    import re
    import tempfile

    cmd = mpiexec_command(workers, args)
    with tempfile.TemporaryDirectory(prefix="cnnlab-mpi-") as tmp:
        env = rank_environment(workers)
        pid_dir = env.setdefault(PID_DIR_VARIABLE, tmp)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE)
        assert proc.stdout is not None
        seen = b""
        try:
            while chunk := os.read(proc.stdout.fileno(), 1 << 16):
                sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
                seen = (seen + chunk)[-4096:]
            code = proc.wait()
        except KeyboardInterrupt:  # mpiexec got the Ctrl-C too and passes it on
            code = proc.wait()
        if code != 0:
            found = re.search(rb"PID (\d+) RUNNING AT (\S+)\s+=\s+EXIT CODE: (\d+)", seen)
            if found:
                rank_file = Path(pid_dir) / f"{found.group(1).decode()}.rank"
                rank = rank_file.read_text() if rank_file.is_file() else "?"
                print(f"cnnlab: error: rank {rank} of {workers} (pid {found.group(1).decode()} "
                      f"on {found.group(2).decode()}) ended with exit code "
                      f"{found.group(3).decode()}; every rank was stopped", file=sys.stderr)
    return code

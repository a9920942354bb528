"""Data-parallel training on MPI: measured here, and modelled beyond this machine.

Usage::

    python benchmarks/bench_mpi.py [--steps 6] [--rounds 3] [--repeats 30] [--no-netns]
                                   [--step-ms MS] [--json results.json]

(a) On this machine (interleaved rounds, medians):

* training throughput of the slides' model (``cnnlab.seed_model()``, Adam,
  global batch 128) as 1 process x 2 threads against 2 MPI ranks x 1 thread
  (``mpiexec -n 2``, each rank half of every batch);
* the time of one all-reduce of the seed model's gradients (one fused float32
  buffer, 1,134,426 values = 4.54 MB), between 2 ranks over shared memory, and
  of the rank-ordered sum ``--deterministic`` uses (an all-gather).

(b) Between two "hosts" (root only; skipped otherwise): two network
namespaces joined by a veth pair, one rank in each, MPICH over TCP
(libfabric's tcp provider), the link shaped with ``tc netem`` (1 Gb/s and
10 Gb/s; 0.1 ms and 1 ms one-way delay). All-reduce times for message sizes
from 4 KB to 4.5 MB are fitted to ``T(m) = a + b m``; for 2 ranks the ring
all-reduce model ``T_N(m) = 2 (N - 1) / N x m / bandwidth + 2 (N - 1) x
latency`` reads ``a = 2 latency``, ``b = 1 / bandwidth``. With the measured
compute time of a step (batch 128 per worker, 1 process x 2 threads), the
predicted scaling efficiency ``t_step / (t_step + T_N)`` (no overlap) is
printed for 2 to 256 workers, beside what fp16 gradients, overlapping the
reduction with the backward pass, or a larger per-worker batch would give.

The machine is shared: every number is taken under whatever load there is
(the load average is printed with the results).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parents[1]
PYTHON = sys.executable
MPIEXEC = str(Path(sys.executable).parent / "mpiexec")
if not os.access(MPIEXEC, os.X_OK):
    MPIEXEC = shutil.which("mpiexec") or "mpiexec"
SEED_PARAMS = 1_134_426  # cnnlab.seed_model().count_params(), checked in _throughput
SIZES = (4096, 65536, 524288, 2097152, 4 * SEED_PARAMS)  # bytes
LINKS = (("1 Gb/s, 0.1 ms", "1gbit", "0.1ms", 1e9, 1e-4),
         ("1 Gb/s, 1 ms", "1gbit", "1ms", 1e9, 1e-3),
         ("10 Gb/s, 0.1 ms", "10gbit", "0.1ms", 1e10, 1e-4),
         ("10 Gb/s, 1 ms", "10gbit", "1ms", 1e10, 1e-3))
WORKERS = (2, 4, 8, 16, 32, 64, 128, 256)


def env_with_threads(threads: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    env["PYTHONPATH"] = str(ROOT / "src")
    env.update(extra or {})
    return env


def run_json(cmd: list[str], env: dict[str, str], timeout: float = 600) -> dict:
    """Run ``cmd``; its last stdout line is a JSON object."""
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:8])}... failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- inside the ranks
def rank_throughput(steps: int, batch: int) -> None:
    """Time ``steps`` training steps of the seed model (after one warm-up step)."""
    import numpy as np

    import cnnlab
    from cnnlab.distributed import world
    from cnnlab.ops import parallel
    from cnnlab.training import Callback

    group = world()
    reduce_times: list[float] = []
    if group is not None:  # time every all-reduce call (waiting for the other rank included)
        inner = group.allreduce_sum

        def timed(buf: np.ndarray) -> np.ndarray:
            t0 = time.perf_counter()
            out = inner(buf)
            reduce_times.append(time.perf_counter() - t0)
            return out

        group.allreduce_sum = timed  # type: ignore[method-assign]
    model = cnnlab.seed_model(seed=0)
    assert model.count_params() == SEED_PARAMS, model.count_params()
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=((steps + 1) * batch, 28, 28, 1), dtype=np.uint8)
    y = rng.integers(0, 10, size=len(x))
    stamps: list[float] = []

    class Stamp(Callback):
        def on_batch_end(self, step: int, logs: dict | None = None) -> None:
            stamps.append(time.perf_counter())

    kwargs = {} if group is None else {"reduce_gradients": group}
    model.fit(x, y, epochs=1, batch_size=batch, verbose=0, callbacks=[Stamp()], **kwargs)
    step_times = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]  # warm-up dropped
    if group is None or group.rank == 0:
        out = {"step_s": statistics.median(step_times), "min_step_s": min(step_times),
               "steps": len(step_times), "ranks": 1 if group is None else group.size,
               "threads": parallel.WORKERS,
               # the first reduction also waits for the slower rank's start-up: dropped
               "reduce_s": statistics.median(reduce_times[1:]) if group else 0.0}
        print(json.dumps(out), flush=True)


def rank_allreduce(repeats: int, sizes: list[int]) -> None:
    """Median and min seconds of an all-reduce (and of the ordered all-gather sum) per size."""
    import numpy as np
    from mpi4py import MPI

    from cnnlab.distributed import world

    group = world()
    assert group is not None, "run under mpiexec -n 2 or more"
    out: dict[str, dict[str, float]] = {}
    for nbytes in sizes:
        buf = np.ones(nbytes // 4, dtype=np.float32)
        for mode in ("allreduce", "ordered"):
            group.deterministic = mode == "ordered"
            times = []
            for i in range(repeats + 3):
                group.barrier()
                t0 = time.perf_counter()
                group.allreduce_sum(buf)
                dt = time.perf_counter() - t0
                buf[...] = 1.0
                if i >= 3:  # warm-up: connections, TCP slow start
                    times.append(dt)
            # every rank's view; the slowest rank's time is the collective's
            times = np.array(times)
            group.comm.Allreduce(MPI.IN_PLACE, times, op=MPI.MAX)
            out[f"{mode}/{nbytes}"] = {"median": float(np.median(times)),
                                       "min": float(np.min(times))}
    if group.rank == 0:
        print(json.dumps(out), flush=True)


# ---------------------------------------------------------------- network namespaces
class TwoHosts:
    """Two network namespaces joined by a veth pair ``cnl0`` (10.215.0.1 and .2)."""

    launcher_text = """#!/bin/sh
case "$1" in
  10.215.0.1) ns={a} ;;
  10.215.0.2) ns={b} ;;
  *) echo "no namespace for host $1" >&2; exit 1 ;;
esac
shift
exec ip netns exec "$ns" sh -c "$*"
"""

    def __init__(self) -> None:
        tag = str(os.getpid() % 100000)
        self.a, self.b = f"cnlbA{tag}", f"cnlbB{tag}"
        self.tmp = tempfile.TemporaryDirectory(prefix="bench-mpi-")
        self.launcher = Path(self.tmp.name) / "launcher.sh"

    def ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)

    def __enter__(self) -> TwoHosts:
        self.ip("netns", "add", self.a)
        self.ip("netns", "add", self.b)
        tag = self.a[4:]
        self.ip("link", "add", f"cbx{tag}", "type", "veth", "peer", "name", f"cby{tag}")
        for ns, end, host in ((self.a, f"cbx{tag}", 1), (self.b, f"cby{tag}", 2)):
            self.ip("link", "set", end, "netns", ns)
            self.ip("-n", ns, "link", "set", end, "name", "cnl0")
            self.ip("-n", ns, "addr", "add", f"10.215.0.{host}/24", "dev", "cnl0")
            self.ip("-n", ns, "link", "set", "lo", "up")
            self.ip("-n", ns, "link", "set", "cnl0", "up")
        self.launcher.write_text(self.launcher_text.format(a=self.a, b=self.b))
        self.launcher.chmod(0o755)
        return self

    def shape(self, rate: str, delay: str, rate_bps: float) -> bool:
        """Limit each direction to ``rate`` and delay it by ``delay`` with ``tc netem``;
        without netem in the kernel, only the rate, with ``tbf``. Returns whether the
        delay is emulated (else the cost model adds it)."""
        for ns in (self.a, self.b):
            subprocess.run(["tc", "-n", ns, "qdisc", "del", "dev", "cnl0", "root"],
                           capture_output=True, timeout=30)
        netem = all(subprocess.run(
            ["tc", "-n", ns, "qdisc", "add", "dev", "cnl0", "root", "netem", "rate", rate,
             "delay", delay, "limit", "100000"], capture_output=True, timeout=30).returncode == 0
            for ns in (self.a, self.b))
        if netem:
            return True
        # a 0.5 ms bucket (at least two 64 KB segments): far below the 4.5 MB message
        burst = str(max(131072, int(rate_bps / 8 / 2000)))
        for ns in (self.a, self.b):
            subprocess.run(["tc", "-n", ns, "qdisc", "del", "dev", "cnl0", "root"],
                           capture_output=True, timeout=30)
            subprocess.run(["tc", "-n", ns, "qdisc", "add", "dev", "cnl0", "root", "tbf",
                            "rate", rate, "burst", burst, "latency", "100ms"], check=True,
                           capture_output=True, timeout=30)
        return False

    def mpiexec(self, n: int = 2) -> list[str]:
        return ["ip", "netns", "exec", self.a, MPIEXEC, "-launcher", "rsh", "-launcher-exec",
                str(self.launcher), "-hosts", "10.215.0.1,10.215.0.2", "-iface", "cnl0",
                "-n", str(n), "-ppn", "1"]

    def __exit__(self, *exc: object) -> None:
        for ns in (self.a, self.b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        self.tmp.cleanup()


TCP_ENV = {"FI_PROVIDER": "tcp", "FI_TCP_IFACE": "cnl0", "MPIR_CVAR_CH4_NETMOD": "ofi",
           "MPIR_CVAR_NOLOCAL": "1"}


# ---------------------------------------------------------------- the model
def fit_line(points: list[tuple[float, float]]) -> tuple[float, float]:
    """``T = a + b m`` through ``(m, T)`` points sorted by ``m``: ``a`` the shorter time of
    the two smallest messages (latency-bound), ``b`` the slope between the two largest
    (bandwidth-bound). Robust to the noise of a loaded machine, unlike least squares
    (whose small-message errors swing the slope)."""
    points = sorted(points)
    a = min(points[0][1], points[1][1])
    (m1, t1), (m2, t2) = points[-2], points[-1]
    b = max((t2 - t1) / (m2 - m1), 1e-15)
    return a, b


def ring_seconds(n: int, nbytes: float, bandwidth: float, latency: float) -> float:
    """Ring all-reduce: ``2 (N - 1) / N x bytes / bandwidth + 2 (N - 1) x latency``
    (bandwidth in bytes per second)."""
    return 2 * (n - 1) / n * nbytes / bandwidth + 2 * (n - 1) * latency


def efficiency(step: float, comm: float, hidden: float = 0.0) -> float:
    """``step / (step + comm not hidden)``: the share of a step spent computing."""
    return step / (step + max(0.0, comm - hidden))


def predict(step: float, links: dict, batch: int) -> dict:
    """Print (and return) the predicted efficiencies for a compute time ``step`` per step."""
    out: dict = {"step_s": step, "fitted": {}, "nominal": {}, "at16": {}}
    print(f"\nPredicted scaling efficiency, weak scaling: batch {batch} per worker, "
          f"{step * 1e3:.1f} ms computing per step, 4.54 MB of gradients, no overlap")
    print("    workers         " + "".join(f"{w:>7}" for w in WORKERS))
    print("    fitted links:")
    for label, fit in links.items():
        effs = [efficiency(step, ring_seconds(n, 4 * SEED_PARAMS, fit["bandwidth_Bps"],
                                              fit["latency_s"])) for n in WORKERS]
        out["fitted"][label] = effs
        print(f"    {label:16}" + "".join(f"{e:7.1%}" for e in effs))
    print("    nominal links (the set rate and delay):")
    for label, _, _, bw_set, lat_set in LINKS:
        effs = [efficiency(step, ring_seconds(n, 4 * SEED_PARAMS, bw_set / 8, lat_set))
                for n in WORKERS]
        out["nominal"][label] = effs
        print(f"    {label:16}" + "".join(f"{e:7.1%}" for e in effs))
    print("  At 16 workers, one change at a time (fitted links; overlap: the reduction hidden "
          "behind a backward pass of 2/3 of the step, an upper bound):")
    print(f"    {'link':16}{'as is':>9}{'fp16':>9}{'overlap':>9}{'batch x2':>10}"
          f"{'batch x4':>10}{'fp16+overlap':>14}")
    backward = 2 / 3 * step
    for label, fit in links.items():
        bw, lat = fit["bandwidth_Bps"], fit["latency_s"]
        full = ring_seconds(16, 4 * SEED_PARAMS, bw, lat)
        half = ring_seconds(16, 2 * SEED_PARAMS, bw, lat)
        row = [efficiency(step, full), efficiency(step, half), efficiency(step, full, backward),
               efficiency(2 * step, full), efficiency(4 * step, full),
               efficiency(step, half, backward)]
        out["at16"][label] = row
        print(f"    {label:16}" + "".join(f"{e:9.1%}" for e in row[:3])
              + f"{row[3]:10.1%}{row[4]:10.1%}{row[5]:14.1%}")
    return out


# ---------------------------------------------------------------- the driver
def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=6, help="timed training steps per run")
    p.add_argument("--rounds", type=int, default=3, help="interleaved throughput rounds")
    p.add_argument("--repeats", type=int, default=30, help="all-reduces per size")
    p.add_argument("--batch", type=int, default=128, help="global batch")
    p.add_argument("--no-netns", action="store_true", help="skip the namespaced hosts")
    p.add_argument("--step-ms", type=float, default=None,
                   help="also predict with this compute time per step (e.g. the unloaded "
                   "train step of benchmarks/bench_speed.py: 128 / images_per_s)")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args()
    results: dict = {"load_before": os.getloadavg()}
    me = [PYTHON, str(HERE)]

    # (a) throughput, interleaved
    one, two = [], []
    for _ in range(args.rounds):
        one.append(run_json([*me, "_throughput", str(args.steps), str(args.batch)],
                            env_with_threads(2)))
        two.append(run_json([MPIEXEC, "-n", "2", *me, "_throughput", str(args.steps),
                             str(args.batch)], env_with_threads(1)))
    step1 = statistics.median(r["step_s"] for r in one)
    step2 = statistics.median(r["step_s"] for r in two)
    red2 = statistics.median(r["reduce_s"] for r in two)
    results["throughput"] = {"one_process_two_threads": {"step_s": step1,
                                                         "images_per_s": args.batch / step1,
                                                         "threads": one[0]["threads"]},
                             "two_ranks_one_thread": {"step_s": step2,
                                                      "images_per_s": args.batch / step2,
                                                      "reduce_s": red2}}
    print(f"(a) seed model, global batch {args.batch}, Adam; medians of {args.rounds} "
          f"interleaved rounds x {args.steps} steps")
    print(f"    1 process x 2 threads : {step1 * 1e3:7.1f} ms/step  "
          f"{args.batch / step1:7.1f} images/s")
    print(f"    2 ranks x 1 thread    : {step2 * 1e3:7.1f} ms/step  "
          f"{args.batch / step2:7.1f} images/s  (in the all-reduce call, waiting for the other "
          f"rank included: {red2 * 1e3:.2f} ms; "
          f"ratio {step1 / step2:.2f}x)")

    local = run_json([MPIEXEC, "-n", "2", *me, "_allreduce", str(args.repeats),
                      str(4 * SEED_PARAMS)], env_with_threads(1))
    results["allreduce_local"] = local
    ar = local[f"allreduce/{4 * SEED_PARAMS}"]
    od = local[f"ordered/{4 * SEED_PARAMS}"]
    print(f"    all-reduce of the gradients (4.54 MB float32, 2 ranks, shared memory): "
          f"median {ar['median'] * 1e3:.2f} ms (min {ar['min'] * 1e3:.2f}); "
          f"--deterministic (all-gather, ordered sum): median {od['median'] * 1e3:.2f} ms")

    # (b) namespaced hosts
    if args.no_netns or os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("tc"):
        print("(b) skipped: needs root, ip and tc (Debian: iproute2)" if not args.no_netns
              else "(b) skipped (--no-netns)")
    else:
        results["links"] = {}
        with TwoHosts() as hosts:
            for label, rate, delay, bw_set, lat_set in LINKS:
                emulated = hosts.shape(rate, delay, bw_set)
                got = run_json([*hosts.mpiexec(), *me, "_allreduce", str(args.repeats),
                                *map(str, SIZES)], env_with_threads(1, TCP_ENV))
                # the fastest of the repeats: the link's capacity, least disturbed by load
                points = [(s, got[f"allreduce/{s}"]["min"]) for s in SIZES]
                a, b = fit_line(points)
                lat_fit, bw_fit = a / 2, 1 / b if b > 0 else float("inf")
                # without netem the link's own latency is measured and the delay added
                lat_model = lat_fit if emulated else lat_fit + lat_set
                results["links"][label] = {"points": points, "latency_fit_s": lat_fit,
                                           "latency_s": lat_model, "bandwidth_Bps": bw_fit,
                                           "delay_emulated": emulated}
                how = "tc netem" if emulated else "tc tbf (no netem in this kernel)"
                print(f"(b) {label} [{how}]: all-reduce, 2 hosts over TCP (min of "
                      f"{args.repeats}): " + ", ".join(
                    f"{s / 1e6:.3g} MB {t * 1e3:.2f} ms" for s, t in points))
                print(f"    fitted: latency {lat_fit * 1e3:.3f} ms"
                      + ("" if emulated else f" (+ {lat_set * 1e3:g} ms added in the model)")
                      + f", bandwidth {bw_fit * 8 / 1e9:.2f} Gb/s (set {bw_set / 1e9:g})")
        steps = {"measured here, under load": step1}
        if args.step_ms:
            steps["given by --step-ms"] = args.step_ms / 1e3
        results["predictions"] = {name: predict(step, results["links"], args.batch)
                                  for name, step in steps.items()}
    results["load_after"] = os.getloadavg()
    print(f"\nload average before {results['load_before'][0]:.1f}, after "
          f"{results['load_after'][0]:.1f} (2 cores, shared with other work)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_throughput":
        rank_throughput(int(sys.argv[2]), int(sys.argv[3]))
    elif len(sys.argv) > 1 and sys.argv[1] == "_allreduce":
        rank_allreduce(int(sys.argv[2]), [int(s) for s in sys.argv[3:]])
    else:
        sys.exit(main())

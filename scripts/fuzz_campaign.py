"""Run every atheris harness in ``fuzz/`` for a given time and report what they found.

Usage (from the repository root)::

    nice -n 19 .venv/bin/python scripts/fuzz_campaign.py --minutes 30 [--out runs/fuzz-campaign]
        [--harness fuzz_idx --harness fuzz_npz ...]

The harnesses run **concurrently**, each under ``nice -n 19`` (on a shared
machine the wall time is what is scarce; say so when you report executions).
Each works on its own corpus, ``OUT/corpus/<harness>`` (seeded from
``fuzz/corpus/<harness>``, which is not modified), in campaign mode
(``CNNLAB_FUZZ_FINDINGS``): a finding is saved once per signature in
``OUT/findings/<harness>/`` and fuzzing goes on. A harness that dies anyway (a
libFuzzer timeout of one input, the RSS limit, a crash in C code) leaves its input
in ``OUT/artifacts/<harness>/`` and is restarted for the time that is left.

At the end it writes ``OUT/summary.json`` and prints a Markdown table: per harness
the executions, libFuzzer's final ``cov`` (edges) and ``ft`` (features), the
corpus size, the restarts and the findings' signatures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"
HARNESSES = sorted(p.stem for p in FUZZ.glob("fuzz_*.py"))
MAX_LEN = {"fuzz_image": 16384, "fuzz_npz": 16384, "fuzz_model_file": 8192}
_STAT = re.compile(r"#(\d+)\s+(?:NEW|REDUCE|pulse|DONE|INITED)\s+cov: (\d+) ft: (\d+)"
                   r"(?: corp: (\d+)/)?")
_RUNS = re.compile(r"stat::number_of_executed_units: (\d+)")


def _session(harness: str, out: Path, seconds: int, nice: int) -> tuple[int, str]:
    """One libFuzzer session of ``harness``; its exit status and its log text."""
    corpus = out / "corpus" / harness
    artifacts = out / "artifacts" / harness
    artifacts.mkdir(parents=True, exist_ok=True)
    cmd = ["nice", "-n", str(nice), sys.executable, str(FUZZ / f"{harness}.py"),
           f"-max_total_time={seconds}", "-timeout=30", "-rss_limit_mb=1536",
           f"-max_len={MAX_LEN.get(harness, 4096)}", "-print_final_stats=1",
           f"-artifact_prefix={artifacts}/", str(corpus), str(FUZZ / "corpus" / harness)]
    env = {**os.environ, "CNNLAB_FUZZ_FINDINGS": str(out / "findings" / harness),
           "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True,
                          errors="replace")
    return proc.returncode, proc.stdout + proc.stderr


def run_harness(harness: str, out: Path, minutes: float, nice: int) -> dict[str, object]:
    """Fuzz ``harness`` until ``minutes`` have passed (restarting after a death)."""
    (out / "corpus" / harness).mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + minutes * 60
    stats: dict[str, object] = {"harness": harness, "executions": 0, "cov": 0, "ft": 0,
                                "corpus": 0, "sessions": 0, "deaths": []}
    log = out / "logs" / f"{harness}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    while (left := int(deadline - time.monotonic())) > 5:
        rc, text = _session(harness, out, left, nice)
        with open(log, "a") as f:
            f.write(f"\n===== session {stats['sessions']} rc={rc}\n{text}")
        stats["sessions"] = int(stats["sessions"]) + 1
        runs = _RUNS.findall(text)
        if runs:
            stats["executions"] = int(stats["executions"]) + int(runs[-1])
        else:  # died before the final stats: the last status line's count
            counts = _STAT.findall(text)
            stats["executions"] = int(stats["executions"]) + (int(counts[-1][0]) if counts else 0)
        for _count, cov, ft, corp in _STAT.findall(text):
            stats["cov"] = max(int(stats["cov"]), int(cov))
            stats["ft"] = max(int(stats["ft"]), int(ft))
            if corp:
                stats["corpus"] = int(corp)
        if rc != 0:
            kind = re.findall(r"ERROR: libFuzzer: ([^\n]+)", text) or [f"exit {rc}"]
            stats["deaths"].append(kind[-1])  # type: ignore[union-attr]
    findings = sorted((out / "findings" / harness).glob("*.txt"))
    stats["findings"] = [f.read_text().splitlines()[0] for f in findings]
    stats["artifacts"] = sorted(p.name for p in (out / "artifacts" / harness).iterdir())
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="per harness (default 30)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "fuzz-campaign")
    parser.add_argument("--harness", action="append", choices=HARNESSES,
                        help="run only these (repeatable); default: all")
    parser.add_argument("--nice", type=int, default=19)
    args = parser.parse_args(argv)
    harnesses = args.harness or HARNESSES
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    # One thread per harness; the work is in the child processes.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(harnesses)) as pool:
        results = list(pool.map(lambda h: run_harness(h, out, args.minutes, args.nice),
                                harnesses))
    summary = {"started": started, "minutes_per_harness": args.minutes,
               "concurrent": len(harnesses), "cpus": os.cpu_count(), "harnesses": results}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print("| harness | minutes | executions | cov | ft | corpus | sessions | findings |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['harness']} | {args.minutes:g} | {r['executions']:,} | {r['cov']} | "
              f"{r['ft']} | {r['corpus']} | {r['sessions']} | "
              f"{'; '.join(r['findings']) or 'none'} |")
    shutil.rmtree(out / "tmp", ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

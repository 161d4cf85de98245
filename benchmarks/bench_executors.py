"""Wall time of the digits study in-process and on Ray with 2 local workers, and their ratio.

Runs the same `keras-mixkd study` command twice, each in its own process and
a fresh runs folder: once with the default in-process executor, once with
`--executor ray --workers 2` (Ray started on this machine). The wall time of
each is that of the whole command — Ray's start-up and its workers' imports
included — and the ratio in-process ÷ Ray is printed with the machine's core
count and load beside it: with 2 workers it can approach 2 only where 2
cores are free for them; the point of the executor is a cluster. Both runs
use `--threads` math threads per cell (default 1, what a Ray cell of one CPU
uses): on a CPU the thread count changes the round-off, which training
amplifies, so only then are the two results.csv comparable; they are then
identical (the largest metric difference printed is 0).

Usage:

    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/bench_executors.py            # the default study
    KERAS_BACKEND=jax .venv/bin/python benchmarks/bench_executors.py --smoke           # seconds-scale check
    .venv/bin/python benchmarks/bench_executors.py --workers 4 --study-args "--seeds 0"
"""

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

# The smoke scale: two teachers, one recipe, tiny data, so both workers have work at once.
SMOKE_ARGS = ("--smoke --teacher-epochs 2 --student-epochs 2 --set 'teacher.augmentations=[\"none\",\"mixup\"]' "
              "--only recipe=kd --set data.train_examples=64 --set data.test_examples=32")


def run_study(study_args, runs_dir, name, extra=(), env_vars=None):
    """Seconds of one `keras-mixkd study` command, and its results.csv rows.

    `env_vars`: extra environment variables of the study's process.
    """
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    command = [sys.executable, "-m", "keras_mixkd.cli", "study", *shlex.split(study_args), "--no-report",
               "--verbose", "0", "--runs-dir", runs_dir, "--name", name, *extra]
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join([common.REPO_DIR, os.environ.get("PYTHONPATH", "")]),
               **(env_vars or {}))
    common.log("$ " + " ".join(shlex.quote(part) for part in command[1:]))
    start = time.perf_counter()
    completed = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - start
    if completed.returncode != 0:
        raise SystemExit(f"{name} failed (exit {completed.returncode}):\n{completed.stdout[-4000:]}")
    return seconds, read_results(runs_dir, name)


def read_results(runs_dir, name):
    """The rows of a run's results.csv, by cell key."""
    with open(os.path.join(runs_dir, name, "results.csv"), newline="") as f:
        return {row["key"]: row for row in csv.DictReader(f)}


def largest_difference(first, second):
    """Largest absolute difference of the numeric columns (seconds aside); None if the cells differ."""
    if sorted(first) != sorted(second):
        return None
    worst = 0.0
    for key, row in first.items():
        for column, value in row.items():
            if column == "seconds":
                continue
            try:
                worst = max(worst, abs(float(value) - float(second[key][column])))
            except ValueError:
                if value != second[key][column]:
                    return None
    return worst


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a 4-cell study at smoke scale (the suite's check)")
    parser.add_argument("--study-args", default="", help="flags of `keras-mixkd study` (default: the digits study)")
    parser.add_argument("--workers", type=int, default=2, help="Ray workers (default: 2)")
    parser.add_argument("--threads", type=int, default=1,
                        help="math threads of each cell in both runs (default: 1, a Ray cell's with 1 CPU)")
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    study_args = SMOKE_ARGS if args.smoke and not args.study_args else args.study_args
    with tempfile.TemporaryDirectory(prefix="bench-executors-") as runs:
        threads = ("--threads", str(args.threads))
        in_process, reference = run_study(study_args, runs, "in_process", threads)
        on_ray, ours = run_study(study_args, runs, "ray",
                                 ("--executor", "ray", "--workers", str(args.workers), *threads))
    result = {
        "benchmark": "executors",
        "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
        "study_args": study_args,
        "cells": len(reference),
        "workers": args.workers,
        "threads": args.threads,
        "in_process_seconds": round(in_process, 1),
        "ray_seconds": round(on_ray, 1),
        "ratio_in_process_over_ray": round(in_process / on_ray, 3),
        "largest_metric_difference": largest_difference(reference, ours),
        "machine": common.machine_info(),
    }
    print(f"{result['cells']} cells, backend {result['backend']}, {os.cpu_count()} cores "
          f"(load {result['machine']['load_average']}): in-process {in_process:.1f} s, "
          f"ray with {args.workers} workers {on_ray:.1f} s, ratio in-process / ray "
          f"{result['ratio_in_process_over_ray']:.2f}; largest metric difference "
          f"{result['largest_metric_difference']}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()

"""Wall time of a study's student cells grouped (one teacher pass per batch) and alone, and their ratio.

Trains the study's teachers once (`--only kind=teacher`), then, in rounds,
copies that runs folder and runs the rest of the same `keras-mixkd study`
command in a fresh process twice: with the default grouping and with
`--no-group`, in alternating order. The wall time of each is that of the
whole command (start-up, the student-alone baselines, every student cell);
the median of each and the median of the per-round ratios (alone ÷ grouped)
are printed with the largest metric difference between the two results.csv
(round-off only: JAX and PyTorch give identical numbers, TensorFlow differs
in the last float digits). The gain grows with the teacher's share of a
step: small on the digits nets, larger for a ResNet-110 teacher and a
ResNet-20 student.

Usage:

    KERAS_BACKEND=jax .venv/bin/python benchmarks/bench_groups.py --smoke
    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/bench_groups.py --rounds 3 \\
        --study-args "--seeds 0 --set 'teacher.augmentations=[\\"mixup\\"]'"
"""

import argparse
import json
import os
import shlex
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402
from bench_executors import largest_difference  # noqa: E402
from bench_executors import run_study  # noqa: E402

# One teacher, three recipes of one input stream (kd, kd_T1, standardized: a group) and partial mixup.
SMOKE_ARGS = ("--smoke --seeds 0 --teacher-epochs 1 --student-epochs 3 "
              "--set 'teacher.augmentations=[\"mixup\"]' --set data.train_examples=512 --set data.test_examples=128")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a small digits study (seconds per run)")
    parser.add_argument("--study-args", default="", help="flags of `keras-mixkd study` (default: the digits study)")
    parser.add_argument("--rounds", type=int, default=2, help="grouped and alone runs each (default: 2)")
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    study_args = SMOKE_ARGS if args.smoke and not args.study_args else args.study_args
    grouped, alone, ratios, worst = [], [], [], 0.0
    with tempfile.TemporaryDirectory(prefix="bench-groups-") as runs:
        run_study(study_args + " --only kind=teacher", runs, "teachers")
        for round_ in range(args.rounds):
            times = {}
            for mode in (("grouped", "alone") if round_ % 2 == 0 else ("alone", "grouped")):
                name = f"{mode}-{round_}"
                shutil.copytree(os.path.join(runs, "teachers"), os.path.join(runs, name))
                extra = ("--no-group",) if mode == "alone" else ()
                times[mode], rows = run_study(study_args, runs, name, extra)
                times[mode + "_rows"] = rows
            grouped.append(times["grouped"])
            alone.append(times["alone"])
            ratios.append(times["alone"] / times["grouped"])
            difference = largest_difference(times["alone_rows"], times["grouped_rows"])
            worst = None if difference is None or worst is None else max(worst, difference)
            common.log(f"round {round_ + 1}: grouped {times['grouped']:.1f} s, alone {times['alone']:.1f} s")
    result = {
        "benchmark": "groups",
        "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
        "study_args": study_args,
        "rounds": args.rounds,
        "grouped_seconds": [round(t, 1) for t in grouped],
        "alone_seconds": [round(t, 1) for t in alone],
        "median_ratio_alone_over_grouped": round(statistics.median(ratios), 3),
        "largest_metric_difference": worst,
        "machine": common.machine_info(),
    }
    print(f"backend {result['backend']}, {os.cpu_count()} cores (load {result['machine']['load_average']}): "
          f"grouped {statistics.median(grouped):.1f} s, alone {statistics.median(alone):.1f} s (medians of "
          f"{args.rounds}), median ratio alone / grouped {result['median_ratio_alone_over_grouped']:.2f}; "
          f"largest metric difference {worst}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()

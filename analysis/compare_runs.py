"""Compare two runs folders of the same study: are the teachers identical, how far apart are the students?

What a refactoring must keep (docs/ARCHITECTURE.md): the default study gives bit-identical teachers
and students within float round-off. Run the study before and after the change, then:

    python analysis/compare_runs.py runs_before/digits runs_after/digits [--images 3]

A teacher counts as identical when its last and best test accuracies, last validation accuracy,
class-discrimination, ECE and per-epoch training losses are all equal. For every other cell (the
students and the baselines) it prints the largest difference of the last-epoch test accuracy, in
points and in test images; it exits 1 when a teacher differs or a student moved by more than
`--images` test images (default 3).
"""

import argparse
import sys

from _common import load_results

TEACHER_FIELDS = ("test_accuracy_last", "test_accuracy_best", "val_accuracy_last", "class_discrimination_last",
                  "ece_last")


def compare(before, after, test_examples):
    """`(lines, teachers_differ, worst_images)` of two lists of cell records keyed by `key`."""
    a, b = ({r["key"]: r for r in records} for records in (before, after))
    if set(a) != set(b):
        raise SystemExit(f"The folders hold different cells: only before {sorted(set(a) - set(b))}, "
                         f"only after {sorted(set(b) - set(a))}.")
    lines, differ, same, worst = [], 0, 0, 0.0
    for key in sorted(a):
        ra, rb = a[key], b[key]
        if ra["role"] == "teacher":
            losses = [[row.get("loss") for row in r["history"]] for r in (ra, rb)]
            changed = [f for f in TEACHER_FIELDS if ra.get(f) != rb.get(f)] + (["loss"] if losses[0] != losses[1] else [])
            if changed:
                differ += 1
                lines.append(f"teacher {key} differs in {', '.join(changed)}")
            else:
                same += 1
        else:
            worst = max(worst, abs(ra["test_accuracy_last"] - rb["test_accuracy_last"]))
    lines.append(f"teachers identical: {same}/{same + differ}")
    images = worst * test_examples
    lines.append(f"students and baselines: largest last-epoch test-accuracy difference {100 * worst:.3f} points "
                 f"({images:.1f} of {test_examples} test images)")
    return lines, differ, images


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", help="runs folder of the study before the change")
    parser.add_argument("after", help="runs folder of the same study after it")
    parser.add_argument("--images", type=float, default=3.0, help="largest student difference allowed, in images")
    args = parser.parse_args(argv)
    (config, before, _), (_, after, _) = load_results(args.before), load_results(args.after)
    # Keras and TensorFlow: after the arguments are read, TensorFlow's start-up chatter filtered as the
    # command line filters it (every backend's data pipeline imports TensorFlow).
    from keras_mixkd.startup import import_tensorflow_quietly

    import_tensorflow_quietly()
    from keras_mixkd.study import prepare_data

    # Every cell is measured on the same test split: its size turns points into images.
    test_examples = len(prepare_data(config["data"]).y_test)
    lines, differ, images = compare(before, after, test_examples)
    print("\n".join(lines))
    return 1 if differ or images > args.images else 0


if __name__ == "__main__":
    sys.exit(main())

"""The finding: KD gain over the student alone per teacher augmentation and recipe (distilled − alone, by seed).

    python analysis/kd_gain.py runs/<name>   # the KD-gain tables on stdout, kd_gain*.png in runs/<name>/analysis/

The same figure opens the report (`plots/kd_gain.png`); `kd_gain_best.png` is
the same at the best-validation epoch (when the study had a validation split).
"""

import os
import sys

from _common import read_run

from keras_mixkd.analysis import gain_table
from keras_mixkd.analysis import plot_kd_gain
from keras_mixkd.analysis import text_table

METRICS = {"test_accuracy_last": ("last epoch", "kd_gain.png"),
           "test_accuracy_best": ("best-validation epoch", "kd_gain_best.png")}

if __name__ == "__main__":
    _, config, records, out_dir = read_run(__doc__.splitlines()[0])
    pairs = {(r["teacher_model"], r["student_model"]) for r in records if r["role"] == "student"}
    written = []
    for metric, (epoch, name) in METRICS.items():
        for teacher_model, student_model in sorted(pairs):
            header, rows = gain_table(records, teacher_model, student_model, metric, config)
            if header is not None and rows:
                print(f"KD gain over the student alone (percentage points), {epoch} · "
                      f"{teacher_model} → {student_model}")
                print(text_table(header, rows) + "\n")
        path = plot_kd_gain(records, os.path.join(out_dir, name), config, metric=metric)
        if path:
            written.append(path)
            print(path)
    if not written:
        sys.exit("No KD gain to draw: this run has no student-alone baseline (student.baseline = false) "
                 "or no distilled student of the same seed yet.")

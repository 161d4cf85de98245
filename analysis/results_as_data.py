"""A runs folder as pandas DataFrames: your own question of a study, here the KD gain with and without flagged cells.

    python analysis/results_as_data.py runs/<name> [--csv DIR]

`keras_mixkd.analysis.results_frame` gives one row per cell (every number of its
record, its `flags`, `flagged`), `history_frame` one row per cell and epoch. This
script prints the test accuracy per role, recipe and teacher augmentation (mean, std,
count over seeds) over every cell and over the unflagged ones only, the flagged
cells, and the last epoch's loss beside the first; `--csv DIR` writes both frames
as CSV. Needs pandas (pip install pandas).
"""

import argparse
import os

from keras_mixkd.analysis import history_frame
from keras_mixkd.analysis import results_frame

GROUP = ["role", "teacher_augmentation", "recipe"]


def summary(cells):
    """Test accuracy (%) at the last epoch per group: mean, std and count over seeds."""
    cells = cells.assign(test_accuracy=cells.test_accuracy_last * 100, recipe=cells.recipe.fillna("–"))
    return cells.groupby(GROUP, dropna=False).test_accuracy.agg(["mean", "std", "count"]).round(2)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a runs folder written by `keras-mixkd study` (runs/<name>)")
    parser.add_argument("--csv", default=None, help="write cells.csv and epochs.csv into this folder")
    args = parser.parse_args(argv)
    cells, epochs = results_frame(args.run_dir), history_frame(args.run_dir)
    print(f"{len(cells)} cells, {len(epochs)} epochs; {int(cells.flagged.sum())} cells flagged\n")
    print("Test accuracy (%), last epoch, every cell:")
    print(summary(cells).to_string(), "\n")
    clean = cells[~cells.flagged]
    print("Test accuracy (%), last epoch, unflagged cells only:")
    print(summary(clean).to_string() if len(clean) else "(no unflagged cell)", "\n")
    if cells.flagged.any():
        first = epochs.groupby("key").loss.first().rename("loss_first") if "loss" in epochs else None
        last = epochs.groupby("key").loss.last().rename("loss_last") if "loss" in epochs else None
        flagged = cells[cells.flagged].set_index("key")[["role", "flags", "test_accuracy_last"]]
        if first is not None:
            flagged = flagged.join(first).join(last)
        print("Flagged cells:")
        print(flagged.to_string())
    if args.csv:
        os.makedirs(args.csv, exist_ok=True)
        cells.to_csv(os.path.join(args.csv, "cells.csv"), index=False)
        epochs.to_csv(os.path.join(args.csv, "epochs.csv"), index=False)
        print(f"\nwrote {os.path.join(args.csv, 'cells.csv')} and {os.path.join(args.csv, 'epochs.csv')}")


if __name__ == "__main__":
    main()

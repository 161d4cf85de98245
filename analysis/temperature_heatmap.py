"""Study B's figure: student accuracy by teacher augmentation x distillation temperature.

    python analysis/temperature_heatmap.py runs/<name>   # needs recipes at two temperatures or more
"""

import os
import sys

from _common import read_run

from keras_mixkd.analysis import plot_temperature_heatmap
from keras_mixkd.analysis import temperature_grid

if __name__ == "__main__":
    _, config, records, out_dir = read_run(__doc__.splitlines()[0])
    augmentations, temperatures, means = temperature_grid(records, config)
    print("teacher augmentation  " + "  ".join(f"T={t:g}" for t in temperatures))
    for augmentation, row in zip(augmentations, means):
        print(f"{augmentation:<20}  " + "  ".join(f"{100 * v:5.1f}" for v in row))
    path = plot_temperature_heatmap(records, os.path.join(out_dir, "temperature_heatmap.png"), config)
    if path is None:
        sys.exit("This study distils at fewer than two temperatures: no heatmap.")
    print(path)

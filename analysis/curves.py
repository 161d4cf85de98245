"""Per-epoch training loss, validation and test accuracy of teachers and students (mean ± std over seeds).

    python analysis/curves.py runs/<name>
"""

import os

from _common import read_run

from keras_mixkd.analysis import plot_cd_over_epochs
from keras_mixkd.analysis import plot_curves

if __name__ == "__main__":
    _, config, records, out_dir = read_run(__doc__.splitlines()[0])
    print(plot_curves(records, os.path.join(out_dir, "curves.png"), config))
    print(plot_cd_over_epochs(records, os.path.join(out_dir, "class_discrimination_over_epochs.png"), config))

"""Study A's link: student accuracy against its teacher's class-discrimination, Pearson and Spearman over cells.

    python analysis/cd_vs_accuracy.py runs/<name>     # table on stdout, figure in runs/<name>/analysis/
"""

import os

from _common import read_run

from keras_mixkd.analysis import link_table
from keras_mixkd.analysis import plot_links
from keras_mixkd.analysis import text_table

MEASURES = ["class_discrimination_last"]

if __name__ == "__main__":
    _, config, records, out_dir = read_run(__doc__.splitlines()[0])
    print(text_table(*link_table(records, config, measures=MEASURES)))
    print(plot_links(records, os.path.join(out_dir, "cd_vs_accuracy.png"), config, measures=MEASURES))

"""Study B's link: student accuracy against its teacher's smoothness (mean output entropy, logit std).

    python analysis/smoothness_vs_accuracy.py runs/<name>
"""

import os

from _common import read_run

from keras_mixkd.analysis import link_table
from keras_mixkd.analysis import plot_links
from keras_mixkd.analysis import text_table

MEASURES = ["mean_entropy_last", "logit_std_last"]

if __name__ == "__main__":
    _, config, records, out_dir = read_run(__doc__.splitlines()[0])
    print(text_table(*link_table(records, config, measures=MEASURES)))
    print(plot_links(records, os.path.join(out_dir, "smoothness_vs_accuracy.png"), config, measures=MEASURES))

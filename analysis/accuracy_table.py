"""Study A's table: teacher and student test accuracy (%) per teacher augmentation, mean ± std over seeds.

    python analysis/accuracy_table.py runs/<name>
"""

from _common import read_run

from keras_mixkd.analysis import main_table

if __name__ == "__main__":
    _, config, records, _ = read_run(__doc__.splitlines()[0])
    print(main_table(records, config, metric="test_accuracy_last"))
    print()
    print(main_table(records, config, metric="test_accuracy_best"))

"""Tables and plots of a study, for any runs folder (needs no Keras).

Example:

>>> from keras_mixkd.analysis import write_report
>>> write_report("runs/digits")   # report.md, plots/*.png, prints the main table
>>> from keras_mixkd.analysis import results_frame, history_frame   # pandas DataFrames (pip install pandas)
>>> results_frame("runs/digits").groupby(["role", "recipe"]).test_accuracy_last.mean()
"""

from keras_mixkd.analysis.correlations import link_table
from keras_mixkd.analysis.correlations import pearson
from keras_mixkd.analysis.correlations import spearman
from keras_mixkd.analysis.correlations import temperature_grid
from keras_mixkd.analysis.frames import history_frame
from keras_mixkd.analysis.frames import results_frame
from keras_mixkd.analysis.gain_plots import kd_gain_figure
from keras_mixkd.analysis.gain_plots import plot_kd_gain
from keras_mixkd.analysis.plots import plot_accuracy
from keras_mixkd.analysis.plots import plot_cd_over_epochs
from keras_mixkd.analysis.plots import plot_class_discrimination
from keras_mixkd.analysis.plots import plot_curves
from keras_mixkd.analysis.plots import plot_links
from keras_mixkd.analysis.plots import plot_projection
from keras_mixkd.analysis.plots import plot_temperature_heatmap
from keras_mixkd.analysis.plots import project_2d
from keras_mixkd.analysis.report import flag_note
from keras_mixkd.analysis.report import load_results
from keras_mixkd.analysis.report import main_table
from keras_mixkd.analysis.report import write_report
from keras_mixkd.analysis.tables import format_gain
from keras_mixkd.analysis.tables import format_mean_std
from keras_mixkd.analysis.tables import gain_grid
from keras_mixkd.analysis.tables import gain_table
from keras_mixkd.analysis.tables import kd_gains
from keras_mixkd.analysis.tables import long_table
from keras_mixkd.analysis.tables import markdown_table
from keras_mixkd.analysis.tables import flagged
from keras_mixkd.analysis.tables import mean_std
from keras_mixkd.analysis.tables import pair_table
from keras_mixkd.analysis.tables import text_table
from keras_mixkd.analysis.tables import without_flagged

__all__ = [
    "flag_note", "flagged", "format_gain", "format_mean_std", "gain_grid", "gain_table", "history_frame",
    "kd_gain_figure", "kd_gains", "link_table", "load_results", "long_table", "main_table", "markdown_table",
    "mean_std", "pair_table", "pearson",
    "plot_accuracy", "plot_cd_over_epochs", "plot_class_discrimination", "plot_curves", "plot_kd_gain",
    "plot_links", "plot_projection", "plot_temperature_heatmap", "project_2d", "results_frame", "spearman",
    "temperature_grid", "text_table", "without_flagged", "write_report",
]

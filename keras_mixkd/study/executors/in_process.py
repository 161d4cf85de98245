"""`InProcessExecutor`: one cell after the other, in this process (the default)."""

import os
import shutil

from keras_mixkd.study import fixed_cost
from keras_mixkd.study.executors.executor import Executor


class InProcessExecutor(Executor):
    """Run the cells in grid order in this process: what `keras-mixkd study` does by default.

    Each cell trains in the run folder's `work/<key>/` (its backup and
    history), reads its teacher from `models/`, and its result is written
    before the next cell starts. With `group_students` (`run_study`'s
    default), student cells sharing a teacher and an input stream train as
    one group (`keras_mixkd.study.groups`), backed up in `work/group__<hash>/`.

    Arguments:
        threads: math threads of this process for every cell (None: the
            backend's default, every core). On a CPU the thread count changes
            the round-off, and so the numbers: `threads=1` gives what the Ray
            executor's one-CPU cells give (see `executors.threads`).
        options: the Ray executor's options are accepted and must be left
            at their defaults (a clear error names one that is set).

    Example:

    >>> run_study(config, executor="in_process")
    """

    name = "in_process"

    def __init__(self, address=None, workers=None, cpus_per_cell=1.0, gpus_per_cell=None, max_retries=3,
                 threads=None):
        import keras

        from keras_mixkd.study.executors.threads import thread_environment

        thread_environment(threads, keras.backend.backend())  # checks threads now, before any cell
        self.threads = threads
        given = {"address": address, "workers": workers}
        for key, value in given.items():
            if value is not None:
                raise ValueError(
                    f"{key}={value!r} is an option of the ray executor; the in_process executor runs "
                    "one cell after the other here. Use executor='ray' (--executor ray) with it."
                )

    def describe(self):
        return "in-process"

    def run(self, pending, *, config, splits, folder, on_done, options):
        """Run `pending` in grid order; with `options.group_students`, each group of
        `keras_mixkd.study.groups.plan_groups` as one fit, its cells written
        one after the other once it is trained."""
        import keras

        from keras_mixkd.study import groups
        from keras_mixkd.study.cell_execution import execute_cells
        from keras_mixkd.study.cell_folders import CellFolders
        from keras_mixkd.study.executors.threads import set_math_threads

        set_math_threads(self.threads, keras.backend.backend())
        groups.remove_stale_group_dirs(folder)
        items = (groups.plan_groups(pending, config, folder=folder) if options.group_students
                 else [[p] for p in pending])
        # What lives now (modules, data) lives all study: each cell's clear_session then
        # collects only the cells' own garbage.
        with fixed_cost.cuts(options.fixed_cost_cuts), fixed_cost.frozen_gc():
            for item in items:
                cells = [cell for _, cell in item]
                work_dirs = [folder.work_dir(cell.key) for cell in cells]
                # A group backs up in work/group__<hash>/, a cell alone in its own work/<key>/.
                backup_dir = groups.group_work_dir(folder, cells) if len(cells) > 1 else work_dirs[0]
                folders = CellFolders(backup_dir, work_dirs,
                                      [os.path.join(folder.path, "logs", cell.key) for cell in cells])
                results = execute_cells(cells, config, splits, teacher_path=folder.model_path, folders=folders,
                                        options=options)
                for (index, cell), result in zip(item, results):
                    on_done(index, cell, result)
                if len(cells) > 1:
                    shutil.rmtree(backup_dir, ignore_errors=True)
                del results  # not frozen by a later freeze, and not kept while the next cell trains

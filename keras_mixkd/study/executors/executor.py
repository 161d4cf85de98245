"""`Executor`: the base of the ways a study's cells can be run."""


class Executor:
    """Runs a study's pending cells and hands each result to the study's writer.

    Subclasses implement `run`. They never write the run folder's results
    themselves: `on_done(index, cell, result)` does (the driver is the only
    writer), once per cell, in the order the cells finish.

    Example:

    >>> class Serial(Executor):
    ...     name = "serial"
    ...     def run(self, pending, *, config, splits, folder, on_done, options):
    ...         for index, cell in pending:
    ...             on_done(index, cell, execute_cell(cell, config, splits, ..., options=options))
    """

    name = ""

    def describe(self):
        """A few words for the study's first line, e.g. "ray (local, 2 workers)"."""
        return self.name

    def run(self, pending, *, config, splits, folder, on_done, options):
        """Run `pending` (`[(index, cell)]`, teachers before their students).

        Arguments:
            pending: the unfinished cells with their 1-based place in the grid.
            config: the study config.
            splits: the study's `DatasetSplits`.
            folder: the `RunFolder` (read here: finished teachers, work dirs).
            on_done: called as `on_done(index, cell, CellResult)` per finished cell.
            options: the study's `RunOptions`; with `group_students`, train
                the students that share a teacher and an input stream together
                (`keras_mixkd.study.groups`) where the executor can; one that
                cannot runs every cell alone.
        """
        raise NotImplementedError


def teacher_dependency(cell):
    """Key of the teacher cell `cell` needs finished first, or None.

    Students (`kind == "student"`) are distilled from their teacher; every
    other kind (teachers, a student trained alone) needs no other cell.
    """
    return cell.teacher_key if cell.kind == "student" else None

"""`StudyProgress`: one line per finished cell and an overall count, elapsed time and ETA."""

import sys
import time


class StudyProgress:
    """What a study prints while it runs, whichever executor runs its cells.

    Each finished cell gets one line: its place in the grid, what it is, its
    result (test accuracy at the last and at the best-validation epoch, CD)
    and its time. After it comes the overall progress: cells finished out
    of the grid's total, the time elapsed in this run and an estimate of the
    time left (the mean time per cell finished in this run, times the cells
    left; with several workers this is the throughput, not one cell's time).

    On a terminal the overall progress is a `tqdm` bar kept below the cell
    lines. Anywhere else (a file, a pipe, a log of a batch job) it is a plain
    line after each cell line: no ANSI escapes, no carriage returns, so a
    60-cell study writes 120 short lines.

    Arguments:
        total: cells of the (selected) grid.
        done: cells of it finished by earlier runs (counted, not timed).
        print_fn: where plain lines go (default `print`); a function other
            than `print` always gets plain lines.
        stream: the stream `print` writes to (default `sys.stdout`); its
            `isatty()` decides between the bar and plain lines.

    Example:

    >>> progress = StudyProgress(total=90, done=3)
    >>> progress.cell_done(4, cell, record)   # after each finished cell
    >>> progress.close()
    """

    def __init__(self, total, *, done=0, print_fn=None, stream=None):
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise ValueError(f"`total` must be an int >= 0 (cells in the grid); got {total!r}.")
        if isinstance(done, bool) or not isinstance(done, int) or not 0 <= done <= total:
            raise ValueError(f"`done` must be an int between 0 and total={total}; got {done!r}.")
        self.total = total
        self.done = done
        self.finished_here = 0
        self.start = time.monotonic()
        self.print_fn = print if print_fn is None else print_fn
        self.stream = sys.stdout if stream is None else stream
        self._bar = None
        if self.print_fn is print and _is_terminal(self.stream) and total > done:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=done, unit="cell", file=self.stream, dynamic_ncols=True,
                             bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} cells [{elapsed}<{remaining}]")

    @property
    def uses_bar(self):
        """True when the overall progress is a live bar (a terminal), False for plain lines."""
        return self._bar is not None

    def eta(self):
        """Seconds left by the mean time per cell of this run (None before the first cell)."""
        if not self.finished_here:
            return None
        return (time.monotonic() - self.start) / self.finished_here * (self.total - self.done)

    def progress_line(self):
        """E.g. "progress 3/90 cells · elapsed 00:37 · ETA 17:40"."""
        from tqdm import tqdm

        eta = self.eta()
        eta_text = "?" if eta is None else tqdm.format_interval(eta)
        return (f"progress {self.done}/{self.total} cells · elapsed "
                f"{tqdm.format_interval(time.monotonic() - self.start)} · ETA {eta_text}")

    def cell_done(self, index, cell, record):
        """Report a finished cell (`index`: its 1-based place in the grid)."""
        self.done += 1
        self.finished_here += 1
        line = cell_line(index, self.total, cell, record)
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
            self._bar.update(1)
            return
        self.print_fn(line)
        self.print_fn(self.progress_line())

    def close(self):
        """End the bar (nothing to do for plain lines)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def cell_line(index, total, cell, record):
    """The line of one finished cell: where it is, what it is, its result and time."""
    # No validation split (data.validation_fraction = 0): no epoch was selected.
    best = ("no epoch selected (no validation split)" if record.get("test_accuracy_best") is None
            else f"{100 * record['test_accuracy_best']:.2f} % (best-val epoch {record['best_epoch']})")
    return (
        f"cell {index}/{total} · {cell.describe()} · test accuracy "
        f"{100 * record['test_accuracy_last']:.2f} % (last epoch {record['last_epoch']}), "
        f"{best} · CD {record['class_discrimination_last']:.4f} · {record['seconds']:.1f} s"
    )


def _is_terminal(stream):
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False

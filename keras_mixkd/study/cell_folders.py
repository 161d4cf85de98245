"""`CellFolders`: where a cell's training writes its backup, histories and logs."""

import dataclasses


@dataclasses.dataclass(frozen=True)


class CellFolders:
    """Where the training of one cell, or of a group of student cells, writes.

    Arguments:
        backup_dir: folder of the run's backup (rerunning continues from it).
        work_dirs: one folder per trained model for its `history.json`.
        log_dirs: one folder per trained model for its `history.csv`, or None.

    Example:

    >>> CellFolders.of_one("work/kd")   # one model: backup and history in one folder
    >>> CellFolders("work/group__1f2e", ["work/kd", "work/kd_T1"], ["logs/kd", "logs/kd_T1"])
    """

    backup_dir: str
    work_dirs: tuple
    log_dirs: tuple = None

    def __post_init__(self):
        object.__setattr__(self, "work_dirs", tuple(self.work_dirs))
        logs = self.log_dirs if self.log_dirs is not None else [None] * len(self.work_dirs)
        object.__setattr__(self, "log_dirs", tuple(logs))
        if len(self.log_dirs) != len(self.work_dirs):
            raise ValueError(f"CellFolders needs one log dir per work dir: {len(self.work_dirs)} work dirs, "
                             f"{len(self.log_dirs)} log dirs.")

    @classmethod
    def of_one(cls, work_dir, log_dir=None):
        """The folders of one model: its backup and history in `work_dir`."""
        return cls(work_dir, (work_dir,), (log_dir,))

"""`CellResult`: what running one cell hands back to the study's one writer."""

import dataclasses

import numpy as np


@dataclasses.dataclass
class CellResult:
    """The outcome of one cell, as an executor returns it to the driver.

    The driver (`keras_mixkd.study.run_study`) is the only writer of the run
    folder: it saves the model, the features, the log and the record from
    this. A cell run in this process hands over the model itself; a cell run
    by a Ray worker hands over the bytes of its `.keras` file (so no shared
    file system is needed).

    Arguments:
        record: the cell's record (`train_teacher` / `distill_student`).
        features: its penultimate test features (NumPy, `(N, D)`).
        model: the trained `keras.Model` (in-process), or None.
        model_bytes: the content of its `.keras` file (Ray), or None.
        log: the worker's output while it ran the cell (Ray), or None.
        log_files: the files of its `CSVLogger` / TensorBoard folder (Ray),
            `{path relative to logs/<key>/: bytes}`, or None (in-process, the
            cell writes them in the run folder itself).

    Example:

    >>> result = CellResult(record=record, features=features, model=model)
    """

    record: dict
    features: np.ndarray
    model: object = None
    model_bytes: bytes = None
    log: str = None
    log_files: dict = None

    def __post_init__(self):
        if (self.model is None) == (self.model_bytes is None):
            raise ValueError("A CellResult holds either the model or its .keras bytes, exactly one of them; "
                             f"got model={type(self.model).__name__}, model_bytes="
                             f"{type(self.model_bytes).__name__}.")

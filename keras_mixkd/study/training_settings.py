"""`TrainingSettings`: what one model of a study cell trains with (from the study spec)."""

import dataclasses

from keras_mixkd.study.config import default_measure
from keras_mixkd.study.config import study_data_format


@dataclasses.dataclass(frozen=True)


class TrainingSettings:
    """How one teacher or student trains: epochs, optimizer, batches, augmentation, measures.

    Built from a study spec by `TrainingSettings.from_config(config, role)`,
    or by hand for a single training.

    Arguments:
        epochs: number of epochs (a whole number >= 1).
        optimizer: an optimizer table of a study config (`name`,
            `learning_rate`, `milestones`, ...; see `keras_mixkd.study.config`).
        batch_size: examples per step.
        augmentation: the student's augmentation recipe names, applied before
            a distillation recipe's own (a teacher's augmentation is its cell's).
        augmentation_options: `{name: {option: value}}`.
        measure: the `measure` table of a study config (None: the defaults).
        data_format: layout inside the built models (`keras_mixkd.models.
            get_model`): None, "channels_last", "channels_first" or "auto".
        backup_interval: least seconds between two backups (see `ResumableBackup`).

    Example:

    >>> settings = TrainingSettings.from_config(load_recipe("digits"), "student")
    >>> settings.epochs, settings.batch_size
    (15, 64)
    """

    epochs: int
    optimizer: dict
    batch_size: int = 64
    augmentation: tuple = ("none",)
    augmentation_options: dict = dataclasses.field(default_factory=dict)
    measure: dict = None
    data_format: str = None
    backup_interval: float = 0.0

    def __post_init__(self):
        if self.measure is None:
            object.__setattr__(self, "measure", default_measure())
        object.__setattr__(self, "augmentation", tuple(self.augmentation))

    @classmethod
    def from_config(cls, config, role):
        """The settings of the `"teacher"` or `"student"` table of a study config."""
        if role not in ("teacher", "student"):
            raise ValueError(f"role must be 'teacher' or 'student'; got {role!r}.")
        table = config[role]
        return cls(
            epochs=table["epochs"], optimizer=table["optimizer"], batch_size=config["data"]["batch_size"],
            augmentation=tuple(table.get("augmentation", ("none",))) if role == "student" else ("none",),
            augmentation_options=table["augmentation_options"], measure=config["measure"],
            data_format=study_data_format(config), backup_interval=config["backup_interval_seconds"])

    @classmethod
    def from_keywords(cls, settings, keywords, owner):
        """`settings`, or settings built from the deprecated keyword arguments of `owner`.

        The keywords naming a field are taken out of `keywords`; giving both
        `settings` and such keywords is refused.
        """
        import warnings

        fields = {field.name for field in dataclasses.fields(cls)}
        given = {key: keywords.pop(key) for key in list(keywords) if key in fields}
        if "student_augmentation" in keywords:
            given["augmentation"] = keywords.pop("student_augmentation")
        if not given:
            if settings is None:
                raise TypeError(f"{owner}() needs settings=TrainingSettings(...).")
            return settings
        if settings is not None:
            raise TypeError(f"{owner}(): give settings=TrainingSettings(...) or its fields "
                            f"({', '.join(sorted(given))}) as keywords, not both.")
        warnings.warn(
            f"{owner}({', '.join(f'{k}=' for k in given)}...): pass settings=TrainingSettings(...) "
            "instead; these keywords are deprecated.", DeprecationWarning, stacklevel=3)
        missing = [key for key in ("epochs", "optimizer") if key not in given]
        if missing:
            raise TypeError(f"{owner}() missing required keyword argument(s): {', '.join(missing)}.")
        given = {key: value for key, value in given.items() if value is not None or key in ("data_format",)}
        return cls(**given)

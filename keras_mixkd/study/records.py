"""The record of a trained teacher, baseline or distilled student: what a study keeps of a cell."""

import dataclasses

from keras_mixkd.models import model_data_format
from keras_mixkd.models.model_card import model_card
from keras_mixkd.study.measuring import last_epoch_measures
from keras_mixkd.study.measuring import model_inputs
from keras_mixkd.study.measuring import summarize_history
from keras_mixkd.study.training_flags import training_flags

# The keys of a [[distillation]] recipe a distilled student's record repeats when the recipe has them.
RECIPE_RECORD_KEYS = ("distillation_loss_weight", "std_ddof", "alpha", "beta", "warmup_epochs", "standardize",
                      "feature_loss_weight")


@dataclasses.dataclass(frozen=True)


class TrainingOutcome:
    """What one trained model leaves: its per-epoch history, its final measures, its time.

    Arguments:
        history: the per-epoch history (`EpochRecorder.history`).
        measures: `measure_model`'s results on the test split.
        seconds: the model's wall time (its share of a group's).
        seed: the seed of its weights and batches.
        epochs: the epochs it was trained for.
    """

    history: list
    measures: dict
    seconds: float
    seed: int
    epochs: int

    def fields(self, model, measured=None, num_classes=None):
        """The record fields every cell has: numbers of the last and best epochs, flags, size, layout, time.

        `measured`: more measures of the last epoch, placed after the others.
        `num_classes`: the data's class count, for the `near_chance` flag.
        `"flags"`: the signs that training went wrong (`training_flags`), [] when none.
        """
        summary = summarize_history(self.history)
        return {
            "seed": self.seed,
            "epochs": self.epochs,
            **summary,
            "flags": training_flags(self.history, num_classes, summary["test_accuracy_last"]),
            **last_epoch_measures(self.measures),
            **(measured or {}),
            "parameters": int(model.count_params()),
            "data_format": model_data_format(model),
            "seconds": self.seconds,
            "history": self.history,
        }


def teacher_record(model, model_name, augmentation, outcome, splits, mixing_implementation=None):
    """The record of a model trained on labels alone (a teacher; a baseline takes it and renames its role).

    `mixing_implementation`: what mixed its batches (`keras_mixkd.augment.mixing_implementation`).
    """
    return {
        "role": "teacher",
        "teacher_model": model_name,
        "teacher_augmentation": augmentation,
        "mixing_implementation": mixing_implementation,
        **outcome.fields(model, num_classes=splits.num_classes),
        "model_card": model_card(model, splits=splits, role="teacher", trained={
            "augmentation": augmentation, "epochs": outcome.epochs, "seed": outcome.seed}),
    }


def distilled_record(student, teacher, student_model_name, recipe, names, outcome, splits, teacher_cache=False):
    """The record of a distilled student.

    Arguments:
        student, teacher: the trained student and its teacher.
        student_model_name: the student's zoo name.
        recipe: its `[[distillation]]` recipe.
        names: the augmentation recipe names it was distilled with.
        outcome: its `TrainingOutcome`.
        splits: the `DatasetSplits` (for the model card).
        teacher_cache: whether the teacher's logits came from the cache.
    """
    augmentation = "+".join(names) or "none"
    return {
        "role": "student",
        "student_model": student_model_name,
        "recipe": recipe.get("name", ""),
        "loss": recipe["loss"],
        "temperature": recipe["temperature"],
        "student_loss_weight": recipe["student_loss_weight"],
        **{key: recipe[key] for key in RECIPE_RECORD_KEYS if key in recipe},
        "distillation_augmentation": augmentation,
        "teacher_cache": bool(teacher_cache),
        **outcome.fields(student, {"teacher_agreement_last": outcome.measures["teacher_agreement"]},
                         num_classes=splits.num_classes),
        "model_card": model_card(student, splits=splits, role="student", trained={
            "epochs": outcome.epochs, "seed": outcome.seed, "distillation_augmentation": augmentation},
            distilled_from={"teacher": teacher.name, "recipe": recipe.get("name", ""), "loss": recipe["loss"],
                            "temperature": recipe["temperature"],
                            "student_loss_weight": recipe["student_loss_weight"],
                            "teacher_sees": recipe["teacher_sees"]}),
    }


def calibrated_record(model, record, splits, ece_bins=15):
    """A student calibrated by temperature scaling on the validation split, and its record with the numbers.

    What a study does to every student cell (distilled or alone) when its
    recipe says `[student] calibrate = true`
    (`keras_mixkd.calibration.calibrate_model`).

    Arguments:
        model: the trained student.
        record: its record (`distilled_record`, or a baseline's).
        splits: the `DatasetSplits`.
        ece_bins: the study's `measure.ece_bins`.

    Returns:
        `(calibrated_model, record)`: the record gains `"calibration"`
        (temperature; ECE and NLL before and after on the validation and test
        splits), the flat `calibration_temperature` and `ece_calibrated_last`
        (test split, after), and its model card the calibration.
    """
    from keras_mixkd.calibration import calibrate_model

    x_val, y_val = model_inputs(model, splits, "val")
    x_test, y_test = model_inputs(model, splits, "test")
    calibrated, info = calibrate_model(model, x_val, y_val, x_test=x_test, y_test=y_test, num_bins=ece_bins)
    card = record.get("model_card") or {}
    card = model_card(calibrated, splits=splits, role=card.get("role"), trained=card.get("trained"),
                      distilled_from=card.get("distilled_from"), calibration=info)
    record = {**record, "calibration": info, "calibration_temperature": info["temperature"],
              "ece_calibrated_last": info["test"]["ece_after"], "model_card": card}
    return calibrated, record

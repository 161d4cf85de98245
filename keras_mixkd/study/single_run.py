"""One model at a time: train a teacher, distil a student, evaluate or measure a `.keras` file.

What `keras-mixkd train-teacher`, `distill`, `evaluate`, `measure` and `calibrate` run,
callable from Python. Settings come from a recipe (or a runs folder) as in a
study, then arguments override them:

>>> from keras_mixkd.study.single_run import (RunSettings, distill_file, distillation_recipe,
...                                           evaluate_file, train_teacher_file)
>>> settings = RunSettings.from_recipe("teacher", "digits", epochs=4)
>>> print(*settings.notes, sep="\\n")              # e.g. how the milestones were scaled
>>> record = train_teacher_file("teacher.keras", "digits_cnn", settings, augmentation="mixup")
>>> student_settings = RunSettings.from_recipe("student", "digits", augmentations=["partial_mixup"])
>>> recipe = distillation_recipe(temperature=1.0, augmentation="partial_mixup", fraction=0.1,
...                              augmentation_options=student_settings.augmentation_options)
>>> record = distill_file("student.keras", "teacher.keras", "digits_cnn_small", student_settings, recipe)
>>> results = evaluate_file("student.keras", student_settings)

Each run trains in `<output>.work` (rerunning with the same output continues
an interrupted run), then writes `<output>` and its record `<output>.json`
atomically.
"""

import dataclasses
import difflib
import os
import shutil

from keras_mixkd.data import check_data_source
from keras_mixkd.data import known_image_size
from keras_mixkd.study import atomic
from keras_mixkd.study.config import apply_overrides
from keras_mixkd.study.config import load_recipe
from keras_mixkd.study.config import parse_override
from keras_mixkd.study.config import split_augmentation
from keras_mixkd.study.milestones import as_overrides
from keras_mixkd.study.milestones import fit_milestones
from keras_mixkd.study.run_options import RunOptions
from keras_mixkd.study.training_settings import TrainingSettings

MIXING = ("mixup", "cutmix", "partial_mixup", "mixup_cutmix")
DEFAULT_MEASURES = ("class_discrimination", "gdv", "class_separation", "nc1", "accuracy",
                    "expected_calibration_error", "negative_log_likelihood", "mean_entropy", "logit_std")


@dataclasses.dataclass
class RunSettings:
    """The settings of one run: data, epochs, optimizer, augmentation options.

    Build it with `RunSettings.from_recipe`; `notes` holds what the caller
    should tell the user (milestones scaled or kept).

    Attributes:
        role: "teacher" or "student": the recipe table the settings come from.
        config: the whole recipe (or runs folder) config they come from.
        data: the [data] table, with the data set and path overrides.
        epochs: epochs to train.
        optimizer: the optimizer table, milestones fitted to `epochs`.
        augmentation_options: `{augmentation: {option: value}}` of the
            augmentations the run uses.
        notes: sentences for the user ("note: ...", "warning: ...").

    Example:

    >>> settings = RunSettings.from_recipe("teacher", "digits", epochs=6, options=["mixup.alpha=0.2"],
    ...                                    augmentations=["mixup"])
    >>> settings.augmentation_options
    {'mixup': {'alpha': 0.2}}
    """

    role: str
    config: dict
    data: dict
    epochs: int
    optimizer: dict
    augmentation_options: dict
    notes: list = dataclasses.field(default_factory=list)

    @classmethod
    def from_recipe(cls, role, recipe="digits", *, run_dir=None, dataset=None, data_path=None, epochs=None,
                    keep_milestones=False, options=(), augmentations=("none",), overrides=None):
        """Settings of a `role` run from a recipe (or a runs folder's config), then overrides.

        Arguments:
            role: "teacher" or "student".
            recipe: a packaged recipe name or a TOML file.
            run_dir: take the config of this runs folder instead of `recipe`.
            dataset, data_path: override data.dataset and data.path.
            epochs: override the recipe's epochs (>= 1); its milestones are
                scaled to them unless `keep_milestones`.
            options: "AUGMENTATION.KEY=VALUE" strings (values in TOML syntax)
                overriding the recipe's augmentation options.
            augmentations: the augmentations the run uses (e.g.
                ["standard+mixup"]): options of others are refused.
            overrides: any recipe setting, `{"dotted.key": value}` or
                "KEY=VALUE" strings (values in TOML syntax), as `--set` and
                the command line's `--batch-size` (`data.batch_size`),
                `--learning-rate` (`<role>.optimizer.learning_rate`) and
                `--image-size` (`data.image_size`) give them; checked as a
                recipe is. `<role>.epochs` counts as `epochs`.

        Example:

        >>> settings = RunSettings.from_recipe("student", "digits", overrides={
        ...     "data.batch_size": 32, "student.optimizer.learning_rate": 0.01})
        >>> settings.data["batch_size"], settings.optimizer["learning_rate"]
        (32, 0.01)
        """
        if role not in ("teacher", "student"):
            raise ValueError(f"role must be 'teacher' or 'student', got {role!r}.")
        if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
            raise ValueError(f"--epochs must be a whole number >= 1, got {epochs} (epochs= in Python).")
        if run_dir:
            from keras_mixkd.study.run_folder import RunFolder

            config = RunFolder(run_dir).read_manifest()["config"]
        else:
            config = load_recipe(recipe)
        recipe_data = dict(config["data"])
        overrides = as_overrides(overrides)
        if f"{role}.epochs" in overrides:
            given = overrides.pop(f"{role}.epochs")
            if epochs is not None and given != epochs:
                raise ValueError(f"--epochs {epochs} and --set {role}.epochs={given} disagree; give one of them.")
            if isinstance(given, bool) or not isinstance(given, int) or given < 1:
                raise ValueError(f"{role}.epochs must be a whole number >= 1, got {given!r}.")
            epochs = given
        if overrides:
            config = apply_overrides(config, overrides)
        data = dict(config["data"])
        data["dataset"] = dataset or data["dataset"]
        data["path"] = data_path or data["path"]
        check_data_source(data["dataset"], data["path"])
        table, notes = config[role], []
        optimizer = dict(table["optimizer"])
        # Milestones given with --set are the run's as written, as in a study.
        if epochs is not None and epochs != table["epochs"] and f"{role}.optimizer.milestones" not in overrides:
            optimizer["milestones"], note = fit_milestones(optimizer.get("milestones"), table["epochs"], epochs,
                                                           role, keep=keep_milestones)
            notes += [note] if note else []
        options = augmentation_options(config, role, data, augmentations, options, recipe_data=recipe_data)
        check_option_sizes(options, known_image_size(data["dataset"], data["image_size"]))
        return cls(role, config, data, epochs or table["epochs"], optimizer, options, notes)


def augmentation_options(config, role, data, augmentations, options=(), *, recipe_data=None):
    """The augmentation options of a single run: the recipe's, fitted to the data, then `options`.

    The recipe's pixel sizes are its data's (1 px / 4 px on 8x8 digits): on
    other data the layers scale them with the image instead (pad-crop side /
    8, cutout side / 2: 4 px and 16 px at 32x32).

    Arguments:
        config: the recipe's config.
        role: "teacher" or "student".
        data: the run's [data] table.
        augmentations: names of the augmentations the run uses.
        options: "AUGMENTATION.KEY=VALUE" strings.
        recipe_data: the [data] table the recipe's pixel sizes were written
            for (default: `config["data"]`).

    Returns:
        `{augmentation: {option: value}}` of the augmentations used.
    """
    result = {name: dict(values) for name, values in config[role]["augmentation_options"].items()}
    recipe_data = config["data"] if recipe_data is None else recipe_data
    if (data["dataset"], data["path"], list(data["image_size"] or [])) != (
            recipe_data["dataset"], recipe_data["path"], list(recipe_data["image_size"] or [])):
        result.get("standard", {}).pop("padding", None)
        result.get("cutout", {}).pop("size", None)
    given = {}
    for text in options:
        key, value = parse_override(text)
        if "." not in key:
            raise ValueError(f"--option expects AUGMENTATION.KEY=VALUE (e.g. mixup.alpha=0.2), got {text!r}.")
        name, option = key.split(".", 1)
        result.setdefault(name, {})[option] = value
        given[key] = f"--option {text}"
    check_augmentation_names(augmentations)
    # The library's one rule: an option for an augmentation not in use is refused.
    from keras_mixkd.augment import check_options_in_use  # Keras: after the command line picks the backend

    check_options_in_use(list(given), augmentations, given_as=given)
    used = [part for name in augmentations for part in split_augmentation(name)]
    return {name: values for name, values in result.items() if name in used}


def check_option_sizes(augmentation_options, image_size):
    """Refuse augmentation options in pixels that cannot fit `image_size` (e.g. `cutout.size=100` at 8x8).

    Arguments:
        augmentation_options: `{augmentation: {option: value}}` of a run.
        image_size: `(height, width)` of its images, or None (nothing checked).

    Example:

    >>> check_option_sizes({"cutout": {"size": 100}}, (8, 8))
    Traceback (most recent call last):
    ...
    ValueError: augmentation 'cutout': size 100 does not fit 8x8 images: at most 8 px (...). Give a smaller one: --option cutout.size=N.
    """
    from keras_mixkd.augment import check_augmentation_options

    if image_size is None:
        return
    for name, options in augmentation_options.items():
        try:
            check_augmentation_options(name, options, image_size=image_size)
        except ValueError as error:
            option = getattr(error, "option", None)
            hint = f" Give a smaller one: --option {name}.{option}=N." if option else ""
            raise ValueError(f"{error}{hint}") from None


def check_augmentation_names(augmentations):
    """Refuse an unknown augmentation name in `augmentations` ("standard+mixup" strings), naming the string.

    Example:

    >>> check_augmentation_names(["mixup+flip"])
    Traceback (most recent call last):
    ...
    ValueError: --augmentation mixup+flip: unknown augmentation 'flip'. Known augmentations: ...; '+' joins several, e.g. 'standard+mixup'.
    """
    from keras_mixkd.augment import list_augmentations

    known = list_augmentations()
    for name in augmentations:
        for part in split_augmentation(name):
            if part not in known:
                close = difflib.get_close_matches(part, known, n=1)
                hint = f"Did you mean {close[0]!r}? " if close else ""
                raise ValueError(f"--augmentation {name}: unknown augmentation {part!r}. {hint}Known augmentations: "
                                 f"{', '.join(known)}; '+' joins several, e.g. 'standard+mixup'.")


def distillation_recipe(*, loss="kd", temperature=4.0, student_loss_weight=0.1, augmentation="none",
                        augmentation_options=None, fraction=None, alpha=None, teacher_sees="same",
                        teacher_outputs="logits", distillation_loss_weight=None):
    """The distillation recipe of one student (what a study's [[recipes]] entry holds).

    Arguments:
        loss: "kd", "standardized", "lskd" or "dkd".
        temperature: the softmax temperature.
        student_loss_weight: w in w * CE + (1 - w) * KD.
        augmentation: mixing at distillation time, e.g. "partial_mixup".
        augmentation_options: `{augmentation: {option: value}}`.
        fraction: the fraction partial_mixup mixes, in (0, 1].
        alpha: the Beta(alpha, alpha) concentration of every mixing
            augmentation used, > 0.
        teacher_sees: "same" (the mixed batch) or "clean".
        teacher_outputs: "logits" or "probabilities".
        distillation_loss_weight: d in w * CE + d * KD, >= 0; None: 1 - w
            (logit-standardised KD's reference: w = 0.1, d = 9).

    Example:

    >>> distillation_recipe(temperature=1.0, augmentation="partial_mixup", fraction=0.1)["augmentation_options"]
    {'partial_mixup': {'fraction': 0.1}}
    """
    if alpha is not None and not alpha > 0:
        raise ValueError(f"--alpha must be > 0 (the Beta(alpha, alpha) concentration), got {alpha:g}; to "
                         "distil without mixing, leave mixup / cutmix out of --augmentation (alpha= in Python).")
    if fraction is not None and not 0 < fraction <= 1:
        raise ValueError(f"--fraction must lie in (0, 1], got {fraction:g} (fraction= in Python).")
    flags = {key: f"--{key} {value:g} ({key}= in Python)"
             for key, value in (("fraction", fraction), ("alpha", alpha)) if value is not None}
    # Refused, not dropped, without an augmentation that takes them (augment's one rule).
    from keras_mixkd.augment import check_options_in_use  # Keras: after the command line picks the backend

    check_options_in_use(list(flags), augmentation, given_as=flags)
    if distillation_loss_weight is not None and not distillation_loss_weight >= 0:
        raise ValueError(f"--distillation-loss-weight must be >= 0, got {distillation_loss_weight:g} "
                         "(distillation_loss_weight= in Python).")
    options = {name: dict(values) for name, values in (augmentation_options or {}).items()}
    for name in (n for n in augmentation.split("+") if n in MIXING):
        if fraction is not None and name == "partial_mixup":
            options.setdefault(name, {})["fraction"] = fraction
        if alpha is not None:
            options.setdefault(name, {})["alpha"] = alpha
    recipe = {"name": "cli", "loss": loss, "temperature": temperature, "student_loss_weight": student_loss_weight,
              "augmentation": [augmentation], "augmentation_options": options, "teacher_sees": teacher_sees,
              "teacher_outputs": teacher_outputs}
    if distillation_loss_weight is not None:
        recipe["distillation_loss_weight"] = float(distillation_loss_weight)
    return recipe


def check_output(output, overwrite=False):
    """Refuse an existing `output` without `overwrite`, and one in a folder that cannot be written."""
    if os.path.isdir(output):
        raise IsADirectoryError(f"--output {output} is a folder; give the path of the .keras file to write.")
    if os.path.exists(output) and not overwrite:
        raise FileExistsError(f"--output {output} already exists; pass --overwrite (overwrite=True) to replace "
                              "it, or choose another path.")
    folder = os.path.dirname(os.path.abspath(output))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise ValueError(f"--output {output}: cannot create its folder {folder} ({error.strerror}).") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"--output {output}: its folder {folder} is not writable; write elsewhere.")


def train_teacher_file(output, model, settings, *, augmentation="none", seed=0, overwrite=False, verbose=0):
    """Train one teacher and save it to `output` (.keras) with its record `output + ".json"`.

    Arguments:
        output: the .keras file to write.
        model: a model name (`keras_mixkd.models.list_models()`).
        settings: `RunSettings.from_recipe("teacher", ...)`.
        augmentation: e.g. "mixup" or "standard+mixup".
        seed: the run's seed.
        overwrite: replace an existing `output`.
        verbose: `fit`'s verbosity.

    Returns:
        The record (also written as JSON).
    """
    from keras_mixkd.study.training import prepare_data
    from keras_mixkd.study.training import train_teacher

    check_output(output, overwrite)
    splits = prepare_data(settings.data)
    check_option_sizes(settings.augmentation_options, splits.input_shape[:2])

    training = TrainingSettings(epochs=settings.epochs, optimizer=settings.optimizer,
                                batch_size=settings.data["batch_size"],
                                augmentation_options=settings.augmentation_options,
                                measure=settings.config["measure"])

    def train(work_dir):
        return train_teacher(splits, model, augmentation, seed=seed, settings=training, work_dir=work_dir,
                             options=RunOptions(verbose=verbose))

    trained, record, _ = _run_in_work_dir(output, train)
    return _save_run(trained, record, output, data_record(splits, settings))


def distill_file(output, teacher, student, settings, recipe, *, seed=0, overwrite=False, verbose=0,
                 input_normalized="auto"):
    """Distil one student from a saved teacher and save it to `output` (.keras) with its record.

    Arguments:
        output: the student's .keras file to write.
        teacher: the teacher's .keras file (a saved Distiller: its student;
            see `keras_mixkd.saving.load_model`).
        student: a model name.
        settings: `RunSettings.from_recipe("student", ...)`.
        recipe: `distillation_recipe(...)`.
        seed, overwrite, verbose: as `train_teacher_file`.
        input_normalized: what the teacher expects when it has no
            normalisation inside: "auto" (normalised images, with a warning),
            "yes" (normalised images) or "no" (images in [0, 1]); see
            `keras_mixkd.models.resolve_input_normalization`.

    Returns:
        The record (also written as JSON); its model card names the teacher's
        file and, when it has one, the teacher's own card.
    """
    from keras_mixkd.models.model_card import read_model_card
    from keras_mixkd.models import resolve_input_normalization
    from keras_mixkd.saving import load_model
    from keras_mixkd.study.training import distill_student
    from keras_mixkd.study.training import prepare_data

    check_output(output, overwrite)
    if not os.path.isfile(teacher):
        raise FileNotFoundError(f"--teacher {teacher}: no such file (give a teacher's .keras file, e.g. one "
                                "written by train-teacher).")
    splits = prepare_data(settings.data)
    check_option_sizes({**settings.augmentation_options, **recipe["augmentation_options"]}, splits.input_shape[:2])
    model = load_model(teacher, num_classes=splits.num_classes, what="teacher", class_names=splits.class_names)
    model = resolve_input_normalization(model, input_normalized, splits.normalization)

    training = TrainingSettings(epochs=settings.epochs, optimizer=settings.optimizer,
                                batch_size=settings.data["batch_size"], measure=settings.config["measure"])

    def train(work_dir):
        return distill_student(splits, model, student, recipe, seed=seed, settings=training, work_dir=work_dir,
                               options=RunOptions(verbose=verbose))

    distiller, record, _ = _run_in_work_dir(output, train)
    teacher_file = os.path.abspath(teacher)
    card = record.get("model_card") or {}
    if card.get("distilled_from") is not None:
        card["distilled_from"]["teacher_file"] = teacher_file
        teacher_card = read_model_card(teacher)
        if teacher_card:
            card["distilled_from"].update(teacher_model=teacher_card.get("model"),
                                          teacher_trained=teacher_card.get("trained"))
    extra = data_record(splits, settings)
    extra.update(augmentation_options=recipe["augmentation_options"], teacher_file=teacher_file, teacher_outputs=recipe["teacher_outputs"],
                 teacher_sees=recipe["teacher_sees"])
    return _save_run(distiller.student, record, output, extra)


def evaluate_file(path, settings, split="both", input_normalized="auto"):
    """Accuracy and expected calibration error of a saved model on `split` ("val", "test" or "both").

    `input_normalized` says what a model without normalisation inside
    expects ("auto", "yes", "no"; see `keras_mixkd.models.resolve_input_normalization`).

    Returns:
        `{split: {"accuracy", "expected_calibration_error", "examples"}}`;
        with "both" and no validation split (`validation_fraction = 0`),
        the test split only.
    """
    from keras_mixkd.models import resolve_input_normalization
    from keras_mixkd.saving import load_model
    from keras_mixkd.study.training import measure_model
    from keras_mixkd.study.training import prepare_data

    splits = prepare_data(settings.data)
    model = load_model(path, num_classes=splits.num_classes, class_names=splits.class_names)
    model = resolve_input_normalization(model, input_normalized, splits.normalization)
    chosen = ("val", "test") if split == "both" else (split,)
    if split == "both" and len(splits.y_val) == 0:
        chosen = ("test",)
    results = {}
    for name in chosen:
        values = measure_model(model, splits, ece_bins=settings.config["measure"]["ece_bins"], split=name)
        results[name] = {"accuracy": values["accuracy"],
                         "expected_calibration_error": values["expected_calibration_error"],
                         "examples": int(len(getattr(splits, f"y_{name}")))}
    return results


def measure_file(path, settings, split="test", measures=None, layer=None, input_normalized="auto"):
    """Latent-space and output measures of a saved model's penultimate features on `split`.

    `input_normalized` says what a model without normalisation inside
    expects ("auto", "yes", "no"; see `keras_mixkd.models.resolve_input_normalization`).

    Returns:
        `({measure: value}, examples)`.
    """
    from keras_mixkd.callbacks import LatentMeasures
    from keras_mixkd.callbacks.latent_measures import FEATURE_MEASURES
    from keras_mixkd.metrics import feature_extractor
    from keras_mixkd.models import resolve_input_normalization
    from keras_mixkd.saving import load_model
    from keras_mixkd.study.training import model_inputs
    from keras_mixkd.study.training import prepare_data

    splits = prepare_data(settings.data)
    model = load_model(path, num_classes=splits.num_classes, class_names=splits.class_names)
    model = resolve_input_normalization(model, input_normalized, splits.normalization)
    if any(name in FEATURE_MEASURES for name in measures or DEFAULT_MEASURES):
        feature_extractor(model, layer, argument="--layer (layer= in Python)")  # its messages name the flag
    x, y = model_inputs(model, splits, split)  # Images in [0, 1], or normalised for an old file.
    callback = LatentMeasures(x, y, measures=list(measures or DEFAULT_MEASURES), teacher=None, layer_name=layer,
                              num_bins=settings.config["measure"]["ece_bins"])
    values = {name: float(value) for name, value in callback.compute(model).items()}
    calibration = calibration_of(path)
    if calibration is not None:  # a calibrated model: the temperature its card records
        values["temperature"] = float(calibration["temperature"])
    return values, len(y)


def calibrate_file(path, output, settings, *, overwrite=False, input_normalized="auto"):
    """Calibrate a saved model by temperature scaling and save it to `output` (.keras) with its record.

    One temperature `T` is fitted on the validation split of the data
    `settings` names (`keras_mixkd.calibration.calibrate_model`); the model
    written outputs its logits / T (a final `TemperatureScaling` layer). ECE
    and NLL before and after, on the validation and the test split, go into
    its model card (`"calibration"`) in `<output>.json`.

    Arguments:
        path: the `.keras` file (a saved distiller gives its student).
        output: the calibrated model's `.keras` file to write.
        settings: `RunSettings.from_recipe("student", ...)`: the data.
        overwrite: replace an existing `output`.
        input_normalized: what a model without normalisation inside expects
            ("auto", "yes", "no"; see `keras_mixkd.models.resolve_input_normalization`).

    Returns:
        The calibration `info` (temperature; per split ECE and NLL before and after).

    Example:

    >>> settings = RunSettings.from_recipe("student", "digits")
    >>> info = calibrate_file("student.keras", "calibrated.keras", settings)
    >>> info["temperature"], info["test"]["ece_after"]   # doctest: +SKIP
    """
    from keras_mixkd.calibration import calibrate_model
    from keras_mixkd.models.model_card import read_model_card
    from keras_mixkd.models import resolve_input_normalization
    from keras_mixkd.models.model_card import model_card
    from keras_mixkd.saving import load_model
    from keras_mixkd.study.training import model_inputs
    from keras_mixkd.study.training import prepare_data

    check_output(output, overwrite)
    splits = prepare_data(settings.data)
    if len(splits.y_val) == 0:
        raise ValueError(f"{path}: the validation split of {settings.data['dataset']} is empty (data."
                         "validation_fraction = 0): temperature scaling fits T on the validation split, never on "
                         "the test split. Give one: --set data.validation_fraction=0.1.")
    model = load_model(path, num_classes=splits.num_classes, class_names=splits.class_names)
    model = resolve_input_normalization(model, input_normalized, splits.normalization)
    x_val, y_val = model_inputs(model, splits, "val")
    x_test, y_test = model_inputs(model, splits, "test")
    calibrated, info = calibrate_model(model, x_val, y_val, x_test=x_test, y_test=y_test,
                                       num_bins=settings.config["measure"]["ece_bins"])
    old = read_model_card(path) or {}
    info["calibrated_from"] = os.path.abspath(path)
    card = model_card(calibrated, splits=splits, role=old.get("role"), trained=old.get("trained"),
                      distilled_from=old.get("distilled_from"), calibration=info)
    _save_run(calibrated, {"model_card": card}, output, {"dataset": settings.data["dataset"],
                                                          "data_path": settings.data["path"] or None})
    return info


def calibration_of(path):
    """The `"calibration"` section of the model card of a `.keras` file (temperature, ECE, NLL), or None."""
    from keras_mixkd.models.model_card import read_model_card

    return (read_model_card(path) or {}).get("calibration")


def export_normalization(path, input_normalized="auto", *, recipe=None, run_dir=None, dataset=None,
                         data_path=None, image_size=None):
    """`export_student`'s `normalization` for `keras-mixkd export --input-normalized`.

    - "auto": None (a model without normalisation inside is exported as it
      is, expecting normalised images, with a warning);
    - "no": the model takes images in [0, 1]: the identity `(0.0, 1.0)` for a
      model without normalisation inside (None for one with it);
    - "yes": the model expects images normalised with its training data's
      statistics: those of the data named by `dataset` / `data_path` (with
      `recipe`'s data settings) or `run_dir`, put inside the SavedModel.

    Arguments:
        path: the `.keras` file to export.
        input_normalized: "auto", "yes" or "no".
        recipe, run_dir, dataset, data_path, image_size: the training data,
            needed for "yes" (`dataset` or `run_dir` must be given).

    Returns:
        `(mean, std)` or None.

    Example:

    >>> export_student("own.keras", "export/own", normalization=export_normalization("own.keras", "no"))
    """
    from keras_mixkd.models import INPUT_NORMALIZED
    from keras_mixkd.models import input_normalization
    from keras_mixkd.saving import load_model

    if input_normalized not in INPUT_NORMALIZED:
        raise ValueError(f"--input-normalized must be one of {', '.join(INPUT_NORMALIZED)}; got {input_normalized!r}.")
    if input_normalized == "auto":
        return None
    stats = input_normalization(load_model(path, compile=False))
    if input_normalized == "no":
        return (0.0, 1.0) if stats is None else None
    if stats is not None:
        raise ValueError(f"--input-normalized yes: {path} already normalises its input inside (mean "
                         f"{[round(v, 4) for v in stats['mean']]}); it takes images in [0, 1]. Leave the flag out.")
    if not (dataset or run_dir):
        raise ValueError("--input-normalized yes puts the training data's normalisation inside the SavedModel: "
                         "name that data (--dataset, with --data-path for a folder or .npz, or --run).")
    overrides = {"data.image_size": list(image_size)} if image_size else None
    settings = RunSettings.from_recipe("student", recipe or "digits", run_dir=run_dir, dataset=dataset,
                                       data_path=data_path, overrides=overrides)
    from keras_mixkd.study.data_prep import prepare_data

    return prepare_data(settings.data).normalization


def export_data(path, quantize="none", *, recipe=None, run_dir=None, dataset=None, data_path=None,
                image_size=None):
    """The images `keras-mixkd export` calibrates an int8 export on and reports accuracy on, or `{}`.

    Where the data comes from, first found: the data flags (`dataset` or
    `run_dir`, with `recipe`'s data settings), the runs folder holding `path`
    (`<run>/models/<key>.keras`), the data set the model card names (with the
    `data_path` of its record). Without any, an int8 export is refused (it
    needs training images) and any other export is verified without
    accuracy.

    Arguments:
        path: the `.keras` file to export.
        quantize: the export's quantisation (`"int8"` needs the data).
        recipe, run_dir, dataset, data_path, image_size: the data flags.

    Returns:
        `{"representative_images": x_train, "test_images": x_test, "test_labels": y_test}`
        (images as loaded), or `{}` when no data is known.

    Example:

    >>> export_student("student.keras", "export/int8", format="litert", quantize="int8",
    ...                **export_data("student.keras", "int8", dataset="digits"))
    """
    import json

    from keras_mixkd.models.model_card import read_model_card
    from keras_mixkd.study.data_prep import prepare_data

    from_card = False  # the data set named by the model card, not by the user
    if not (dataset or run_dir):
        folder = os.path.dirname(os.path.abspath(os.fspath(path)))
        if os.path.basename(folder) == "models" and os.path.isfile(
                os.path.join(os.path.dirname(folder), "study.json")):
            run_dir = os.path.dirname(folder)
        else:
            card = read_model_card(path) or {}
            record_path = os.fspath(path) + ".json"
            record = {}
            if os.path.isfile(record_path):
                try:
                    with open(record_path, encoding="utf-8") as handle:
                        record = json.load(handle)
                except (OSError, ValueError):
                    record = {}
            named = card.get("dataset")
            stored_path = record.get("data_path") if isinstance(record, dict) else None
            if named and (named not in ("folder", "npz") or stored_path or data_path):
                dataset, data_path = named, data_path or stored_path
                from_card = True
                # The images at the size the model takes (a folder's default size may differ).
                shape = (card.get("input") or {}).get("shape") or []
                if image_size is None and len(shape) == 4 and all(isinstance(d, int) for d in shape[1:3]):
                    image_size = list(shape[1:3])
    if not (dataset or run_dir):
        if quantize == "int8":
            raise ValueError(f"--quantize int8 calibrates on images of the training split, and {path} has no model "
                             "card naming its data set: name the data (--dataset, with --data-path for a folder "
                             "or .npz, or --run).")
        return {}
    overrides = {"data.image_size": list(image_size)} if image_size else None
    settings = RunSettings.from_recipe("student", recipe or "digits", run_dir=run_dir, dataset=dataset,
                                       data_path=data_path, overrides=overrides)
    try:
        splits = prepare_data(settings.data)
    except OSError as error:
        if not from_card or quantize == "int8":
            raise
        # Accuracy is extra for a float export: the card's data set missing here (CIFAR offline, a
        # folder moved) must not stop an export that needs no data.
        import warnings

        warnings.warn(f"The export's test accuracy is not reported: the data set {dataset!r} its model card "
                      f"names could not be loaded ({str(error).splitlines()[0]}). Name the data with --dataset "
                      "(and --data-path) to report it.", UserWarning, stacklevel=2)
        return {}
    return {"representative_images": splits.x_train if quantize == "int8" else None,
            "test_images": splits.x_test, "test_labels": splits.y_test}


def data_record(splits, settings):
    """What a record JSON says of its data and augmentation, so the run can be read and redone."""
    import keras

    data = settings.data
    return {
        "dataset": data["dataset"], "data_path": data["path"] or None, "num_classes": int(splits.num_classes),
        "class_names": [str(name) for name in splits.class_names], "input_shape": list(splits.input_shape),
        "normalization": {"mean": list(map(float, splits.normalization[0])),
                          "std": list(map(float, splits.normalization[1]))},
        "augmentation_options": settings.augmentation_options, "backend": keras.backend.backend(),
        "batch_size": int(data["batch_size"]), "optimizer": dict(settings.optimizer),
    }


def _run_in_work_dir(output, train):
    """Run `train(work_dir)`; a failure that leaves nothing to continue from removes the work folder."""
    work_dir = output + ".work"
    try:
        os.makedirs(work_dir, exist_ok=True)
    except OSError as error:
        raise _output_error(output, f"its work folder {work_dir} (where an interrupted run continues)",
                            error) from None
    try:
        return train(work_dir)
    except BaseException:
        if not any(files for _, _, files in os.walk(work_dir)):
            shutil.rmtree(work_dir, ignore_errors=True)  # nothing to resume from
        raise


def _save_run(model, record, output, extra):
    record = {**record, **extra}
    try:
        with atomic.atomic_path(output) as tmp:
            model.save(tmp)
        atomic.write_json(output + ".json", record)
    except OSError as error:
        raise _output_error(output, "the model and its record", error) from None
    shutil.rmtree(output + ".work", ignore_errors=True)
    return record


def _output_error(output, what, error):
    """An error naming `--output` as the user gave it, and what of it could not be written."""
    reason = error.strerror or str(error)
    return type(error)(f"--output {output}: cannot write {what}: {reason}. Write elsewhere (another --output) "
                       "or free that path, then rerun.")

"""What a study cell builds before training: models, augmentations, optimizers, `Distiller` arguments."""

import keras

from keras_mixkd import losses
from keras_mixkd import optimizers
from keras_mixkd.augment import Compose
from keras_mixkd.augment import get_augmentation
from keras_mixkd.augment import recipe_options
from keras_mixkd.distill import StandardizedLogits
from keras_mixkd.models import get_model
from keras_mixkd.models import input_normalization
from keras_mixkd.models import with_preprocessing
from keras_mixkd.study.config import recipe_defaults
from keras_mixkd.study.config import split_augmentation
from keras_mixkd.study.config import weight_decay_mode
from keras_mixkd.study.measuring import warn_expects_normalized_input


def build_augmentation(names, options_by_name, num_classes):
    """The augmentation of a list of recipe names (None when there is none).

    `names` may hold combinations written "standard+mixup". Each part is built
    by `keras_mixkd.augment.get_augmentation` with its own options
    (`options_by_name[part]`, plus `num_classes` where the part takes it), and
    the parts are applied in order (`keras_mixkd.augment.Compose`).
    """
    parts = [part for name in names for part in split_augmentation(name)]
    if not parts:
        return None
    built = []
    for part in parts:
        options = dict(options_by_name.get(part, {}))
        if "num_classes" in recipe_options(part):
            options.setdefault("num_classes", num_classes)
        try:
            # An ImportError here is implementation="keras_cv" where KerasCV cannot be imported.
            built.append(get_augmentation(part, **options))
        except (TypeError, ValueError, ImportError) as error:
            raise ValueError(f"Augmentation {part!r} with options {options}: {error}") from error
    return built[0] if len(built) == 1 else Compose(built)


def build_optimizer(optimizer_config, model_name, steps_per_epoch):
    """SGD / Adam / AdamW with the step schedule and weight decay of a study config.

    The learning rate is multiplied by `decay` at each epoch of `milestones`,
    through `keras.optimizers.schedules.PiecewiseConstantDecay` (its step
    counter is part of the optimizer state, so a resumed run keeps its place
    in the schedule). Weight decay follows `weight_decay_mode` (see
    `config.weight_decay_mode`): sgd and adam are `keras_mixkd.optimizers.SGD`
    and `Adam`, which compute it as `torch.optim.SGD` / `Adam` do by default
    ("l2", added to the gradient), adamw is `keras.optimizers.AdamW`.
    """
    rate = optimizer_config["model_learning_rates"].get(model_name.lower(), optimizer_config["learning_rate"])
    milestones = optimizer_config["milestones"]
    if milestones:
        boundaries = [int(m * steps_per_epoch) for m in milestones]
        values = [rate * optimizer_config["decay"] ** i for i in range(len(milestones) + 1)]
        rate = keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)
    decay = optimizer_config["weight_decay"] or None
    mode = weight_decay_mode(optimizer_config)
    name = optimizer_config["name"]
    if name == "sgd":
        return optimizers.SGD(rate, momentum=optimizer_config["momentum"], nesterov=optimizer_config["nesterov"],
                              weight_decay=decay, weight_decay_mode=mode)
    if name == "adam":
        return optimizers.Adam(rate, weight_decay=decay, weight_decay_mode=mode)
    return keras.optimizers.AdamW(rate, weight_decay=optimizer_config["weight_decay"])


def build_model(model_name, splits, *, output_layer=None, data_format=None):
    """A zoo model that takes `splits`' images as loaded and normalises them inside.

    `get_model(model_name, ..., data_format=data_format)` behind the training
    split's normalisation (`keras_mixkd.models.with_preprocessing`),
    optionally ending in `output_layer`.
    """
    model = get_model(model_name, splits.num_classes, input_shape=splits.input_shape, data_format=data_format)
    return with_preprocessing(model, splits.normalization, output_layer=output_layer)


def distillation_teacher(teacher, splits):
    """`teacher`, given the data's normalisation inside when it has none (a teacher saved before models
    carried their normalisation), with a warning."""

    if input_normalization(teacher) is None:
        # The warning names the caller of `distill_student` (or of the group's function), as before.
        warn_expects_normalized_input(teacher, splits.normalization, stacklevel=4)
        teacher = with_preprocessing(teacher, splits.normalization)
    return teacher


def build_distilled_student(student_model_name, recipe, splits, data_format=None):
    """The student model a distillation recipe trains, built with the current random state.

    It normalises inside and, trained with the standardised loss, outputs the
    standardised logits it is trained on (measured and shipped so).
    `distill_student` calls it right after `keras.utils.set_random_seed(seed)`;
    a group of students sharing a teacher (`keras_mixkd.study.groups`) does
    the same for each of its students, so each starts from the weights it
    gets alone.
    """
    output_layer = None
    if recipe["loss"] == "standardized":
        output_layer = StandardizedLogits(ddof=recipe.get("std_ddof"))
    return build_model(student_model_name, splits, output_layer=output_layer, data_format=data_format)


def distiller_arguments(recipe):
    """Every `Distiller` keyword argument of a recipe but the teacher and the student."""
    return {"student_loss_weight": recipe["student_loss_weight"],
            "teacher_outputs": recipe.get("teacher_outputs", "logits"), **distiller_loss_arguments(recipe)}


def build_distillation_augmentation(student_augmentation, augmentation_options, recipe, num_classes):
    """`(names, augmentation)` of a distilled student: its own augmentation, then the recipe's.

    The recipe's `augmentation_options` override the student's. Built after
    the student (the augmentations that draw a seed draw it from the random
    state the student's construction left).
    """
    options = dict(augmentation_options or {})
    options.update(recipe["augmentation_options"])
    names = [n for n in list(student_augmentation) + list(recipe["augmentation"]) if split_augmentation(n)]
    if any("student_side_mixup" in split_augmentation(n) for n in names):
        # It mixes the teacher's probabilities at the recipe's temperature.
        options["student_side_mixup"] = {"temperature": recipe["temperature"],
                                         **options.get("student_side_mixup", {})}
    return names, build_augmentation(names, options, num_classes)


# The options of a named loss that the Distiller takes as its own arguments.
DISTILLER_LOSS_ARGUMENTS = {"temperature", "std_ddof"}


def distiller_loss_arguments(recipe):
    """`Distiller` keyword arguments of a `[[distillation]]` recipe's loss keys.

    `loss`, `temperature`, `std_ddof`, `distillation_loss_weight` (-1: the
    default `1 - student_loss_weight`), DKD's `alpha`, `beta`,
    `warmup_epochs`, `standardize`, and `feature_loss_weight` /
    `feature_layer` (FitNets features with a projector). Keys a recipe dict
    lacks take the recipe defaults.
    """
    defaults = recipe_defaults()

    def get(key):
        return recipe.get(key, defaults[key])

    name = recipe["loss"]
    # The loss's own options, as its registry declares them. A loss whose options are all Distiller
    # arguments goes by name (a saved Distiller then names it); any other is built by the registry.
    declared = [option.name for option in losses.loss_options(name)]
    loss = name
    if set(declared) - DISTILLER_LOSS_ARGUMENTS:
        loss = losses.get_loss(name, **{key: get(key) for key in declared})
    arguments = {"loss": loss, "temperature": get("temperature"), "std_ddof": get("std_ddof")}
    if get("distillation_loss_weight") >= 0:
        arguments["distillation_loss_weight"] = get("distillation_loss_weight")
    if get("feature_loss_weight") > 0:
        arguments["feature_loss"] = losses.FeatureDistillation(teacher_layer=get("feature_layer"))
        arguments["feature_loss_weight"] = get("feature_loss_weight")
    return arguments


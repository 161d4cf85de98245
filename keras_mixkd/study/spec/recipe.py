"""`DistillationRecipe`: one `[[distillation]]` entry of a study."""

from keras_mixkd.study.spec.table import SpecTable


class DistillationRecipe(SpecTable):
    """How a student is distilled: the loss and its options, weights, mixing.

    The keys in `FIELDS` are the recipe's own. The options of its loss
    (`temperature`, DKD's `alpha`, `beta`, `warmup_epochs`, `standardize`,
    `std_ddof`) are declared beside each loss and read from the loss
    registry (`keras_mixkd.losses.loss_options`); a recipe holds every
    built-in loss's options, at their defaults where its loss does not take
    them, so that its keys do not depend on its loss.

    Example:

    >>> recipe = load_recipe("methods_cifar100").distillation[1]
    >>> loss = recipe.build_loss()             # keras_mixkd.losses.get_loss(...)
    >>> recipe.loss_options()
    {'alpha': 1.0, 'beta': 8.0, 'temperature': 4.0, 'warmup_epochs': 20, 'standardize': False, 'std_ddof': 1}
    """

    FIELDS = {
        "name": (None, "name"),
        "loss": ("kd", "loss"),
        "student_loss_weight": (0.1, "fraction"),
        # Mixing applied at distillation time, after the student augmentation.
        "augmentation": (["none"], "names"),
        "augmentation_options": ({}, "options_by_name"),
        # What the teacher sees when the batch is mixed: "same" (study B) or "clean".
        "teacher_sees": ("same", "teacher_sees"),
        # Weight of the distillation term; -1 means 1 - student_loss_weight (the
        # default). DKD's reference: 1 with student_loss_weight = 1; LS-KD's: 9 with 0.1.
        "distillation_loss_weight": (-1.0, "weight_or_default"),
        # FitNets feature distillation on the penultimate layer (0 = off), with a
        # trainable projector from the student's width to the teacher's.
        "feature_loss_weight": (0.0, "nonnegative"),
        "feature_layer": ("features", "name"),
    }

    def __getattr__(self, name):
        # The loss options (declared by the losses, not here) read as attributes too.
        if not name.startswith("_") and name in self:
            return self[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @staticmethod
    def all_loss_options():
        """`{option name: LossOption}` over every built-in loss (the first declaration of each name)."""
        from keras_mixkd import losses

        options = {}
        for name in losses.list_losses():
            for option in losses.loss_options(name):
                options.setdefault(option.name, option)
        return options

    def loss_options(self):
        """`{option: value}` of the options this recipe's loss takes (for `get_loss`)."""
        from keras_mixkd import losses

        return {option.name: self[option.name] for option in losses.loss_options(self["loss"])}

    def build_loss(self):
        """The recipe's `DistillationLoss`: `keras_mixkd.losses.get_loss(loss, **loss_options())`."""
        from keras_mixkd import losses

        return losses.get_loss(self["loss"], **self.loss_options())

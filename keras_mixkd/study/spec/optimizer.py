"""`OptimizerSpec`: the `[teacher.optimizer]` / `[student.optimizer]` table."""

from keras_mixkd.study.spec.table import SpecTable


class OptimizerSpec(SpecTable):
    """An optimizer and its learning-rate schedule (`study.training.build_optimizer` reads it).

    Keys: `name` ("sgd", "adam", "adamw"), `learning_rate`, `momentum`,
    `nesterov`, `weight_decay`, `weight_decay_mode` ("default", "l2",
    "decoupled"), `milestones` (epochs where the rate is multiplied by
    `decay`), `decay`, `model_learning_rates` (per model name).

    Example:

    >>> spec = load_recipe("digits")
    >>> spec.teacher.optimizer.name
    'sgd'
    """

    FIELDS = {
        "name": ("sgd", "optimizer"),
        "learning_rate": (0.05, "positive"),
        "momentum": (0.9, "fraction"),
        "nesterov": (False, "bool"),
        "weight_decay": (5e-4, "nonnegative"),
        # "l2": wd * w added to the gradient before momentum (torch.optim.SGD / Adam);
        # "decoupled": w -= lr * wd * w (torch.optim.AdamW, Keras's own weight_decay).
        # "default": "l2" for sgd and adam, "decoupled" for adamw.
        "weight_decay_mode": ("default", "weight_decay_mode"),
        # Epochs at which the learning rate is multiplied by `decay`.
        "milestones": ([], "epochs_list"),
        "decay": (0.1, "positive"),
        # Per-model learning rates (e.g. 0.01 for MobileNetV2 / ShuffleNet students).
        "model_learning_rates": ({}, "rates"),
    }

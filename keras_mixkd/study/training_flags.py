"""`training_flags`: the signs, read from a cell's per-epoch history, that its training went wrong.

Pure Python (no Keras): the study computes the flags of every cell it
records, and `keras_mixkd.analysis` computes them for records of runs made
before flags existed.

| flag | raised when |
|---|---|
| `near_chance` | the last epoch's test accuracy is at most chance (1 / number of classes) + `NEAR_CHANCE_MARGIN` |
| `loss_rose` | the last epoch's training loss is above the first epoch's |
| `loss_jumped` | one epoch's training loss is more than `LOSS_JUMP_FACTOR` times the epoch's before |
| `nan_stop` | an epoch's training loss is NaN or infinite (stored as null) |

A cell whose training stops on a NaN batch (`keras_mixkd.NonFiniteLossError`)
stops the study with that error and leaves no record; `nan_stop` marks a
record whose history nonetheless holds a non-finite loss.
"""

import math

# Absolute margin above chance accuracy (a fraction: 0.05 = 5 percentage points): 10 classes are flagged
# at <= 15 %, 2 classes at <= 55 %, 100 classes at <= 6 %.
NEAR_CHANCE_MARGIN = 0.05

# An epoch's training loss more than this many times the epoch's before is a jump.
LOSS_JUMP_FACTOR = 10.0

# The flags, in the order a record lists them.
FLAG_NAMES = ("near_chance", "loss_rose", "loss_jumped", "nan_stop")

FLAG_MEANINGS = {
    "near_chance": f"test accuracy at the last epoch within {NEAR_CHANCE_MARGIN * 100:g} percentage points of "
                   "chance (1 / number of classes) or below it",
    "loss_rose": "training loss at the last epoch above the first epoch's",
    "loss_jumped": f"an epoch's training loss more than {LOSS_JUMP_FACTOR:g}x the epoch's before",
    "nan_stop": "a training loss that became NaN or infinite",
}


def _finite(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def training_flags(history, num_classes=None, test_accuracy=None):
    """The names of `FLAG_NAMES` whose sign is in a cell's history, in that order.

    Arguments:
        history: the per-epoch history (a list of dicts with "epoch",
            "loss", "test_accuracy", ...; NaN stored as None).
        num_classes: the data's class count (None: `near_chance` is not checked).
        test_accuracy: the final test accuracy (default: the last epoch's
            `test_accuracy` of `history`).

    Returns:
        A list of flag names, empty when nothing went wrong.

    Example:

    >>> training_flags([{"epoch": 1, "loss": 2.3, "test_accuracy": 0.1},
    ...                 {"epoch": 2, "loss": 40.0, "test_accuracy": 0.1}], num_classes=10)
    ['near_chance', 'loss_rose', 'loss_jumped']
    """
    history = list(history or [])
    found = set()
    if test_accuracy is None and history:
        test_accuracy = history[-1].get("test_accuracy")
    if num_classes and _finite(test_accuracy) and test_accuracy <= 1.0 / num_classes + NEAR_CHANCE_MARGIN:
        found.add("near_chance")
    losses = [row.get("loss") for row in history if "loss" in row]
    if any(not _finite(loss) for loss in losses):
        found.add("nan_stop")
    finite = [loss for loss in losses if _finite(loss)]
    if len(finite) >= 2 and _finite(losses[0]) and _finite(losses[-1]) and losses[-1] > losses[0]:
        found.add("loss_rose")
    for before, after in zip(losses, losses[1:]):
        if _finite(before) and _finite(after) and before > 0 and after > LOSS_JUMP_FACTOR * before:
            found.add("loss_jumped")
    return [name for name in FLAG_NAMES if name in found]


def record_num_classes(record, config=None):
    """A record's class count: its model card's, else that of the config's data set when it is fixed (or None)."""
    card = record.get("model_card") or {}
    if card.get("num_classes"):
        return int(card["num_classes"])
    if card.get("class_names"):
        return len(card["class_names"])
    dataset = ((config or {}).get("data") or {}).get("dataset")
    return {"digits": 10, "cifar10": 10, "cifar100": 100}.get(dataset)


def record_flags(record, config=None):
    """A record's flags: its `"flags"` when it has them, else computed from its history (older runs).

    Example:

    >>> record_flags({"history": [{"epoch": 1, "loss": 1.0, "test_accuracy": 0.9}],
    ...               "model_card": {"num_classes": 10}})
    []
    """
    if "flags" in record and record["flags"] is not None:
        return list(record["flags"])
    return training_flags(record.get("history"), record_num_classes(record, config),
                          record.get("test_accuracy_last"))

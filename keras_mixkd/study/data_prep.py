"""A study's data: loaded, cut to its smoke size, and checked big enough for the measures."""

import dataclasses

import keras
import numpy as np

from keras_mixkd.data import load_dataset


def prepare_data(data_config):
    """Load the data set a study config names, cut to its smoke size if asked.

    Arguments:
        data_config: the `data` table of a study config.

    Returns:
        A `keras_mixkd.data.DatasetSplits`.
    """
    kwargs = {"validation_fraction": data_config["validation_fraction"], "seed": data_config["split_seed"]}
    if data_config["path"]:
        kwargs["path"] = data_config["path"]
    if data_config["image_size"]:
        kwargs["image_size"] = tuple(data_config["image_size"])
    splits = load_dataset(data_config["dataset"], **kwargs)
    splits = _shrink(splits, data_config)
    check_split_sizes(splits)
    return splits


def check_split_sizes(splits):
    """Refuse splits too small for the study's measures, with their counts, before any training.

    Accuracy, calibration and class-discrimination are measured on the test
    split (and the validation split, when it is not empty) every epoch: each
    needs at least 2 examples of at least 2 classes.
    """
    counts = {split: np.bincount(np.asarray(getattr(splits, f"y_{split}"), dtype=np.int64),
                                 minlength=splits.num_classes)
              for split in ("train", "val", "test")}
    for split in ("train", "val", "test"):
        total, classes = int(counts[split].sum()), int(np.count_nonzero(counts[split]))
        if split == "val" and total == 0:
            continue
        if total < 2 or classes < 2:
            sizes = "; ".join(f"{name} {int(c.sum())} examples of {np.count_nonzero(c)} classes"
                              for name, c in counts.items())
            raise ValueError(
                f"The {split} split of {splits.name!r} is too small for the measures: it holds {total} "
                f"examples of {classes} class(es), and needs at least 2 examples of 2 classes ({sizes}). "
                "Use more data, or raise data.train_examples / data.test_examples / "
                "data.validation_fraction."
            )


def _shrink(splits, data_config):
    changes = {}
    rng = np.random.default_rng(data_config["split_seed"])
    for split, limit in (("train", data_config["train_examples"]), ("test", data_config["test_examples"])):
        x, y = getattr(splits, f"x_{split}"), getattr(splits, f"y_{split}")
        if limit and limit < len(y):
            keep = np.sort(rng.permutation(len(y))[:limit])
            changes[f"x_{split}"], changes[f"y_{split}"] = x[keep], y[keep]
    size = data_config["image_size"]
    if size and tuple(splits.input_shape[:2]) != tuple(size):
        # A source that does not resize itself (digits at CIFAR size, for smoke runs).
        for split in ("train", "val", "test"):
            x = changes.get(f"x_{split}", getattr(splits, f"x_{split}"))
            resized = keras.ops.image.resize(x, tuple(size), interpolation="bilinear") if len(x) else np.zeros((0, *size, x.shape[-1]), "float32")
            changes[f"x_{split}"] = np.clip(keras.ops.convert_to_numpy(resized), 0.0, 1.0).astype("float32")
    return dataclasses.replace(splits, **changes) if changes else splits


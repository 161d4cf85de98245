"""Whether a model's outputs look like probabilities, and the few inputs a check runs it on.

The `Distiller` trains on logits: a teacher or a student whose outputs are
rows of probabilities (a softmax in a subclassed model's `call`, a `Lambda`
of a Python `lambda`) would train without an error and give wrong numbers.
Layer inspection (`model_info.ends_in_softmax`) misses those; one inference on
a few inputs does not.
"""

import numpy as np

# Examples a check runs the model on.
PROBE_EXAMPLES = 8
# How close to 1 a row's sum must be to count as a probability row.
SUM_TOLERANCE = 1e-4


def looks_like_probabilities(outputs):
    """True when `outputs` (N, classes > 1) are non-negative rows that each sum to 1.

    Example:

    >>> looks_like_probabilities(np.array([[0.2, 0.8], [0.5, 0.5]]))
    True
    >>> looks_like_probabilities(np.array([[2.0, -1.0], [0.3, 0.7]]))
    False
    """
    outputs = np.asarray(outputs, dtype=np.float64)
    if outputs.ndim != 2 or outputs.shape[-1] < 2 or outputs.size == 0:
        return False
    return bool((outputs >= 0).all() and (np.abs(outputs.sum(axis=-1) - 1.0) < SUM_TOLERANCE).all())


def probe_images(x, images_key="images"):
    """A few input images of `x` to run a model on, without reading a dataset; or `None`.

    Arrays and tensors (or a dict of them) give their first examples. A
    `tf.data.Dataset` gives uniform draws in [0, 1) (fixed seed) of its
    images' shape and dtype, from its `element_spec` alone: pulling a batch
    would advance its shuffle, and so change a seeded run's data order. Other
    inputs (generators, `PyDataset`) give `None`.

    Arguments:
        x: what `fit` / `evaluate` received.
        images_key: the dict key of the images a model sees.
    """
    spec = getattr(x, "element_spec", None)
    if spec is not None:
        spec = spec[0] if isinstance(spec, tuple) and spec else spec
        if isinstance(spec, dict):
            spec = spec.get(images_key)
        shape = getattr(spec, "shape", None)
        if shape is None or len(shape) < 2 or any(dim is None for dim in list(shape)[1:]):
            return None
        dtype = getattr(getattr(spec, "dtype", None), "name", "float32")
        rng, size = np.random.default_rng(0), (PROBE_EXAMPLES, *list(shape)[1:])
        if dtype.startswith(("int", "uint")):
            return rng.integers(0, 256, size=size).astype(dtype)
        return rng.uniform(size=size).astype(dtype if dtype.startswith("float") else "float32")
    if isinstance(x, dict):
        x = x.get(images_key)
    if x is None or not hasattr(x, "shape") or len(x.shape) < 1:
        return None
    return x[:PROBE_EXAMPLES]

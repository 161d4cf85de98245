"""Mixed precision for teacher training and distillation.

Keras applies a global dtype policy to every layer created after it is set.
Under `mixed_float16` and `mixed_bfloat16` layers keep float32 variables and
compute in half precision; the zoo's `"logits"` layer stays float32 (see
`keras_mixkd.models`), the `Distiller` casts logits to float32 before its
losses, and `compile` wraps the optimizer in a `LossScaleOptimizer` under
`mixed_float16` (Keras does this by itself). `jit_compile=True` is passed to
`compile` as usual.

Backends on CPU (Keras 3.15; the tests run these): both policies train on
TensorFlow, JAX and PyTorch. Half precision is slower than float32 on most
CPUs: it pays off on GPUs with tensor cores (float16) and on TPUs and recent
CPUs/GPUs with bfloat16 units.
"""

import contextlib

PRECISION_POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")


def check_policy(policy):
    """`policy` if it names one of `PRECISION_POLICIES`; a clear error otherwise.

    Arguments:
        policy: `"float32"`, `"mixed_float16"` or `"mixed_bfloat16"`.

    Raises:
        TypeError: When `policy` is not a string.
        ValueError: When it names no policy of `PRECISION_POLICIES`.

    Example:

    >>> check_policy("mixed_bfloat16")
    'mixed_bfloat16'
    """
    if not isinstance(policy, str):
        raise TypeError(
            f"`policy` must be a string, one of {list(PRECISION_POLICIES)}; got "
            f"{type(policy).__name__}: {policy!r}."
        )
    if policy not in PRECISION_POLICIES:
        raise ValueError(
            f"Unknown precision policy {policy!r}; expected one of "
            f"{list(PRECISION_POLICIES)}."
        )
    return policy


def set_precision(policy):
    """Sets the global precision policy for models created afterwards.

    Models built before the call keep their policy: set it first, then build
    (or load) the teacher and the student, then create the `Distiller`.

    Arguments:
        policy: `"float32"` (Keras's default), `"mixed_float16"` or
            `"mixed_bfloat16"`.

    Returns:
        The name of the policy that was in force before the call.

    Example:

    ```python
    from keras_mixkd.precision import set_precision

    set_precision("mixed_bfloat16")
    teacher = get_model("resnet56", 100)
    student = get_model("resnet20", 100)
    distiller = Distiller(teacher, student)
    distiller.compile(optimizer="sgd", jit_compile=True)
    ```
    """
    check_policy(policy)
    import keras

    previous = keras.config.dtype_policy().name
    keras.config.set_dtype_policy(policy)
    return previous


@contextlib.contextmanager
def precision(policy):
    """Context manager: `set_precision(policy)` inside, the previous policy after.

    Arguments:
        policy: As for `set_precision`.

    Example:

    ```python
    with precision("mixed_float16"):
        student = get_model("resnet20", 100)   # float16 compute, float32 logits
    ```
    """
    previous = set_precision(policy)
    try:
        yield policy
    finally:
        import keras

        keras.config.set_dtype_policy(previous)

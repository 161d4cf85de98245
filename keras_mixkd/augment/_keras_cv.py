"""KerasCV, imported only where a recipe uses it, and whether it imports at all.

KerasCV 0.9.0 is its last release and reaches into Keras's private modules, so
a newer Keras can break `import keras_cv` (Keras 3.16's nightlies did:
`cannot import name 'convert_to_numpy' from 'keras.src.backend.tensorflow'`).
Recipes whose default is KerasCV ask `keras_cv_import_error()` and fall back to
Keras core's layers or ours; an explicit `implementation="keras_cv"` calls
`require_keras_cv`, which turns the failure into a one-line error.
"""

import warnings


def keras_cv_import_error():
    """`None` when `import keras_cv` works here, else why not, in one line.

    Not cached: Python caches a successful import itself, and a test (or a
    user) may make KerasCV unimportable after the first call.

    Example:

    >>> keras_cv_import_error() is None   # with a KerasCV that fits this Keras
    True
    """
    try:
        import keras_cv  # noqa: F401  (imported when used: it adds seconds to start-up)
    except Exception as error:  # an import can fail with any error, not only ImportError
        first_line = (str(error).strip().splitlines() or [""])[0]
        return f"{type(error).__name__}: {first_line}"
    return None


def require_keras_cv(owner, way_out):
    """The `keras_cv` module, or an ImportError in one line naming `way_out`.

    Args:
        owner: who asked, e.g. `'Mixing(implementation="keras_cv")'`.
        way_out: what to do instead, e.g. `'pass implementation=None'`.

    Example:

    >>> keras_cv = require_keras_cv('Cutout', 'use keras<3.16')
    """
    error = keras_cv_import_error()
    if error is not None:
        import keras

        raise ImportError(
            f"{owner} needs KerasCV, which cannot be imported with Keras {keras.__version__} "
            f"({error}); {way_out}."
        )
    import keras_cv

    return keras_cv


def library_implementation(implementation, owner):
    """The layers a KerasCV-or-Keras recipe uses: `implementation`, or what `None` picks here.

    `None` gives `"keras_cv"` when KerasCV imports, else `"keras"` with a
    warning (Keras core's RandAugment and AugMix draw their operations per
    batch, not per image); `"keras_cv"` without KerasCV is an ImportError.

    Example:

    >>> library_implementation(None, "RandAugment")
    'keras_cv'
    """
    if implementation == "keras":
        return "keras"
    error = keras_cv_import_error()
    if implementation is None and error is not None:
        warnings.warn(
            f"{owner}: KerasCV cannot be imported ({error}); using Keras core's layer, "
            "which draws its operations per batch. Pass implementation=\"keras\" to silence this.",
            stacklevel=3,
        )
        return "keras"
    if error is not None:
        require_keras_cv(f'{owner}(implementation="keras_cv")',
                         'pass implementation=None or "keras" (Keras core\'s layer), or install a Keras '
                         "that KerasCV supports (keras<3.16)")
    return "keras_cv"

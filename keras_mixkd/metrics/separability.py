"""How well classes separate in a latent space: CD, GDV, R², NC1.

All four take penultimate features `(N, D)` (or any other per-example
representation, softmax outputs included) and integer or one-hot labels, run
with `keras.ops` on the backend's device, and return Python floats.

Shared conventions:
- Classes are the label values that occur; a class id that never occurs does
  not count. At least two classes are needed.
- Standardisation (CD, GDV): `z = 0.5 * (F - mean) / std` per dimension, with
  the population std (ddof = 0). A dimension is constant when its std is at
  most `1e-6 * |mean|` (float32 round-off of a constant); its z is 0, which is
  what `std := 1` gives in exact arithmetic.
- A class with a single example has no within-class pair: it is left out of
  the within-class mean (it still takes part in the between-class pairs).
  When no class has two examples, a `ValueError` is raised.
- A row whose standardised (CD) or raw (R²) vector is all zeros has no
  direction; its cosine similarity with every row is taken as 0.
- Translation: features far from the origin (post-ReLU activations often
  are) are centred before any float32 sum, in two passes (`F - mean`, then
  minus the mean of that): CD, GDV and NC1, which are translation-invariant,
  give on `F + c` the value they give on `F`, to float32 round-off of the
  centred data. R² (cosine, not translation-invariant) is computed from the
  differences of unit vectors, so a value near the degenerate "every row
  points the same way" is still the float64 one.
"""

import math

import keras
import numpy as np
from keras import ops

from keras_mixkd.metrics._inputs import as_features
from keras_mixkd.metrics._inputs import check_finite_summary
from keras_mixkd.metrics._inputs import class_ids

# Target size of one block of the pairwise-distance matrix (GDV), in floats.
_BLOCK_ELEMENTS = 1 << 22


def _prepare(features, labels):
    """Features `(N, D)` on the device, their column means (checked finite), ids, counts."""
    features = as_features(features, check=False)
    mean = ops.mean(features, axis=0)
    check_finite_summary(mean, features, "features")
    ids, counts = class_ids(labels, int(features.shape[0]))
    return features, mean, ids, counts


def _centered(features, mean):
    """`F - mean(F)` accurate far from the origin: `(centered, mean)`.

    The first float32 mean of rows near `c` is off by about `eps * |c|`;
    `F - mean` is exact there (Sterbenz), and its own mean, small, corrects it.
    """
    centered = features - mean
    correction = ops.mean(centered, axis=0)
    return centered - correction, mean + correction


def _require_pairs(counts, measure):
    if not np.any(counts >= 2):
        raise ValueError(
            f"{measure} needs at least one class with two or more examples "
            f"for a within-class mean; every class here has one example "
            f"({counts.size} classes, {int(counts.sum())} examples)."
        )


def _scaled(features, mean):
    """`(F - mean) / std` per dimension; constant dimensions give 0."""
    centered, mean = _centered(features, mean)
    std = ops.sqrt(ops.mean(ops.square(centered), axis=0))
    constant = std <= 1e-6 * ops.abs(mean)
    inverse_std = ops.where(
        constant, ops.zeros_like(std), 1.0 / ops.where(constant, ops.ones_like(std), std)
    )
    return centered * inverse_std


def _standardize(features, mean):
    """The z-scores `0.5 * (F - mean) / std` of CD and GDV."""
    return 0.5 * _scaled(features, mean)


def _inverse_norms(values):
    """`(1 / ||v_i||, ||v_i / ||v_i|| ||^2)` per row; 0 and 0 for zero rows."""
    squared_norms = ops.square(ops.norm(values, axis=1))
    has_direction = squared_norms > 0
    inverse_norms = ops.where(
        has_direction,
        1.0 / ops.sqrt(ops.where(has_direction, squared_norms, ops.ones_like(squared_norms))),
        ops.zeros_like(squared_norms),
    )
    return inverse_norms, squared_norms * ops.square(inverse_norms)


class _Classes:
    """Per-class sums of rows, given the class id of every row.

    `segment_sum` on JAX and TensorFlow. Keras's torch `segment_sum`
    replicates the ids to the data's shape before a scatter; there an
    accumulating `scatter_update` (torch `index_put_`) is several times
    faster, still O(N D).
    """

    def __init__(self, ids, num_classes):
        self.ids = ops.convert_to_tensor(ids)
        self.num_classes = num_classes
        self._torch = keras.backend.backend() == "torch"
        if self._torch:
            self._indices = ops.expand_dims(self.ids, -1)

    def sums(self, values, row_weights=None):
        """`sum_{i in c} w_i * values_i` for every class c, `(L, ...)`."""
        if row_weights is not None:
            values = values * ops.reshape(row_weights, (-1,) + (1,) * (len(values.shape) - 1))
        if self._torch:
            zeros = ops.zeros((self.num_classes,) + tuple(values.shape[1:]), dtype=values.dtype)
            return ops.scatter_update(zeros, self._indices, values, reduction="add")
        return ops.segment_sum(values, self.ids, num_segments=self.num_classes)


def _class_sums(values, ids, num_classes):
    return _Classes(ids, num_classes).sums(values)


def _mean_within_and_between(pair_sums, counts, self_sums=None):
    """Means of the within-class and between-class pair statistics.

    Arguments:
        pair_sums: `(L, L)` tensor, entry `(a, b)` = sum over ordered pairs
            `i in a, j in b` of the pair statistic (self pairs included).
        counts: class sizes `n_c` (NumPy).
        self_sums: `(L,)` tensor, sum over `i in c` of the self-pair
            statistic, removed from the diagonal; None when it is 0.

    Returns:
        `(term_intra, term_inter)` scalar tensors: the mean over classes with
        `n_c >= 2` of the mean over unordered pairs `i < j`, and the mean over
        the `L(L-1)/2` class pairs of the mean over all `i in a, j in b`.
    """
    num_classes = counts.size
    n = ops.convert_to_tensor(counts.astype(np.float32))
    diagonal = ops.diagonal(pair_sums)
    if self_sums is not None:
        diagonal = diagonal - self_sums
    has_pairs = counts >= 2
    pair_counts = np.where(has_pairs, counts * (counts - 1), 1).astype(np.float32)
    intra = diagonal / ops.convert_to_tensor(pair_counts)
    intra = ops.where(ops.convert_to_tensor(has_pairs), intra, ops.zeros_like(intra))
    term_intra = ops.sum(intra) / float(has_pairs.sum())

    between = pair_sums / (n[:, None] * n[None, :])
    off_diagonal = ops.convert_to_tensor(1.0 - np.eye(num_classes, dtype=np.float32))
    # Both (a, b) and (b, a) are summed: every unordered class pair twice.
    term_inter = ops.sum(between * off_diagonal) / float(num_classes * (num_classes - 1))
    return term_intra, term_inter


def _floats(*tensors):
    return tuple(float(ops.convert_to_numpy(t)) for t in tensors)


def class_discrimination(features, labels, return_terms=False):
    """Class-Discrimination (CD) of a representation, in closed form.

    The measure of the study "An Empirical Analysis of the Impact of Data
    Augmentation on Knowledge Distillation", defined exactly (without the two
    slips of its notebook: self pairs in the within-class mean, half of the
    between-class pairs):

    1. `z = 0.5 * (F - mean) / std` per dimension (see the module docstring
       for constant dimensions);
    2. `u_i = z_i / ||z_i||`, `s(i, j) = u_i . u_j`;
    3. `intra(c)`: mean of `s(i, j)` over the unordered pairs `i < j` of
       class c; `inter(a, b)`: mean of `s(i, j)` over all `i in a, j in b`;
    4. `CD = (mean_c intra(c) - mean_{a<b} inter(a, b)) / sqrt(D)`.

    Higher means classes more separable. It is computed from the class sums
    `S_c = sum_{i in c} u_i`: `intra(c) = (||S_c||^2 - n_c) / (n_c (n_c - 1))`,
    `inter(a, b) = S_a . S_b / (n_a n_b)`, so it costs O(N D + L^2 D) and never
    builds an N x N matrix.

    The features may be penultimate activations (the paper) or softmax
    outputs (the study's code ran on those): any `(N, D)` matrix, one row per
    example, works.

    Arguments:
        features: array or backend tensor `(N, D)`; more dimensions are
            flattened per example. Must be finite.
        labels: integer class ids `(N,)` (or `(N, 1)`), or one-hot rows.
        return_terms: if True, also return the two terms.

    Returns:
        A Python float, or `(cd, term_intra, term_inter)` when `return_terms`.
        Classes of a single example are left out of `term_intra`.

    Example:

    >>> import numpy as np
    >>> from keras_mixkd.metrics import class_discrimination
    >>> rng = np.random.default_rng(0)
    >>> labels = rng.integers(0, 10, size=1000)
    >>> centers = rng.normal(size=(10, 64))
    >>> features = centers[labels] + 0.5 * rng.normal(size=(1000, 64))
    >>> cd, intra, inter = class_discrimination(features, labels, return_terms=True)
    """
    features, mean, ids, counts = _prepare(features, labels)
    _require_pairs(counts, "class_discrimination")
    num_classes = counts.size
    dimensions = int(features.shape[1])
    # The 0.5 of the z-scores does not change a direction: it is left out.
    scaled = _scaled(features, mean)
    inverse_norms, unit_norms = _inverse_norms(scaled)
    classes = _Classes(ids, num_classes)
    sums = classes.sums(scaled, row_weights=inverse_norms)  # sums of unit rows
    self_sums = classes.sums(unit_norms)
    gram = ops.matmul(sums, ops.transpose(sums))
    term_intra, term_inter = _mean_within_and_between(gram, counts, self_sums)
    cd = (term_intra - term_inter) / math.sqrt(dimensions)
    if return_terms:
        return _floats(cd, term_intra, term_inter)
    return _floats(cd)[0]


def gdv(features, labels, return_terms=False, block_size=None):
    """Generalised Discrimination Value (Schilling et al., 2021).

    Same recipe as `class_discrimination`, with Euclidean distance instead of
    cosine similarity, on the same z-scores `0.5 * (F - mean) / std` (no row
    normalisation):
    `GDV = (mean_c intra(c) - mean_{a<b} inter(a, b)) / sqrt(D)`, where
    `intra(c)` is the mean distance over pairs `i < j` of class c and
    `inter(a, b)` the mean distance over all `i in a, j in b`. Lower (more
    negative) means classes more separable; 0 for random labels.

    Pairwise distances have no closed form: they are computed in row blocks of
    `block_size` x N (never the whole N x N matrix), O(N^2 D) in all.

    Arguments:
        features: array or backend tensor `(N, D)`, finite.
        labels: integer class ids or one-hot rows.
        return_terms: if True, return `(gdv, term_intra, term_inter)`.
        block_size: rows per block; default keeps a block near 4M floats.

    Returns:
        A Python float (or a tuple of three, see `return_terms`).

    Example:

    >>> import numpy as np
    >>> from keras_mixkd.metrics import gdv
    >>> rng = np.random.default_rng(0)
    >>> labels = rng.integers(0, 3, size=300)
    >>> value = gdv(rng.normal(size=(300, 8)) + labels[:, None], labels)
    """
    features, mean, ids, counts = _prepare(features, labels)
    _require_pairs(counts, "gdv")
    num_examples, dimensions = (int(s) for s in features.shape)
    num_classes = counts.size
    if block_size is None:
        block_size = max(1, _BLOCK_ELEMENTS // num_examples)
    if not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"`block_size` must be a positive integer, got {block_size!r}.")
    z = _standardize(features, mean)
    squared_norms = ops.sum(ops.square(z), axis=1)
    column_index = ops.arange(num_examples)
    classes = _Classes(ids, num_classes)
    pair_sums = ops.zeros((num_classes, num_classes), dtype="float32")
    for start in range(0, num_examples, block_size):
        size = min(block_size, num_examples - start)
        # ops.slice takes the start as data: JAX compiles once per block shape,
        # not once per block.
        block = ops.slice(z, (start, 0), (size, dimensions))
        block_norms = ops.slice(squared_norms, (start,), (size,))
        squared = (
            block_norms[:, None]
            + squared_norms[None, :]
            - 2.0 * ops.matmul(block, ops.transpose(z))
        )
        distances = ops.sqrt(ops.maximum(squared, 0.0))
        # Self distances are 0; round-off in the Gram form would not give 0.
        is_self = (ops.arange(size) + start)[:, None] == column_index[None, :]
        distances = ops.where(is_self, ops.zeros_like(distances), distances)
        # (L, block): for each block row, the distance sums to each class.
        per_column_class = classes.sums(ops.transpose(distances))
        pair_sums = pair_sums + _class_sums(
            ops.transpose(per_column_class), ids[start : start + size], num_classes
        )
    # Symmetrise so the (a, b) and (b, a) sums agree exactly.
    pair_sums = 0.5 * (pair_sums + ops.transpose(pair_sums))
    term_intra, term_inter = _mean_within_and_between(pair_sums, counts)
    value = (term_intra - term_inter) / math.sqrt(dimensions)
    if return_terms:
        return _floats(value, term_intra, term_inter)
    return _floats(value)[0]


def class_separation(features, labels, standardize=False):
    """Class separation R² (Kornblith et al., 2021), cosine distance.

    `R² = 1 - d_within / d_total` with `d(x, y) = 1 - cos(x, y)`,
    `d_within = mean_c [sum_{i, j in c} d(i, j) / n_c^2]` and
    `d_total = mean_{a, b} [sum_{i in a, j in b} d(i, j) / (n_a n_b)]`, as in
    the paper (ordered pairs, self pairs included, every class weighted
    equally). In closed form, with `m_c` the mean unit vector of class c:
    `d_within = 1 - mean_c ||m_c||^2`, `d_total = 1 - ||mean_c m_c||^2`.
    1 means each class collapsed to one direction, 0 no class structure.
    It is evaluated as `R^2 = B / (W + B + Z)`: `W` the mean over classes of
    the mean squared distance of a class's unit vectors to their mean, `B`
    the mean squared distance of the class means to their mean, `Z` the
    class-weighted share of zero rows, all from the differences of the unit
    vectors to the mean row's direction, computed without cancellation: rows
    far from the origin (nearly parallel) give the float64 value.

    Arguments:
        features: array or backend tensor `(N, D)`, finite.
        labels: integer class ids or one-hot rows.
        standardize: if True, use the z-scores of `class_discrimination`
            instead of the raw features (the paper uses raw features).

    Returns:
        R² as a Python float in [0, 1].

    Example:

    >>> import numpy as np
    >>> from keras_mixkd.metrics import class_separation
    >>> rng = np.random.default_rng(0)
    >>> labels = rng.integers(0, 3, size=300)
    >>> r2 = class_separation(rng.normal(size=(300, 8)) + 3 * np.eye(8)[labels], labels)
    """
    features, mean, ids, counts = _prepare(features, labels)
    num_classes = counts.size
    values = _scaled(features, mean) if standardize else features
    reference = ops.mean(values, axis=0) if standardize else mean
    unit_differences, has_direction = _unit_differences(values, reference)
    classes = _Classes(ids, num_classes)
    n = ops.convert_to_tensor(counts.astype(np.float32))
    class_means = classes.sums(unit_differences) / n[:, None]
    residuals = unit_differences - ops.take(class_means, ops.convert_to_tensor(ids), axis=0)
    # W: mean over classes of the mean squared distance of a class's unit vectors to their mean.
    spread = ops.mean(classes.sums(ops.sum(ops.square(residuals), axis=1)) / n)
    # B: spread of the class means of the unit vectors around their mean.
    class_means = class_means - ops.mean(class_means, axis=0)
    between = ops.mean(ops.sum(ops.square(class_means), axis=1))
    # Z: rows without a direction (cosine 0 with every row, themselves included).
    zero_rows = 1.0 - ops.mean(classes.sums(ops.cast(has_direction, "float32")) / n)
    spread, between, zero_rows = _floats(spread, between, zero_rows)
    total = spread + between + zero_rows
    if total <= 0.0:
        raise ValueError(
            "class_separation is undefined when all feature rows point exactly "
            f"the same way (mean cosine distance between classes {total:.3g})."
        )
    return between / total


def _unit_differences(values, reference):
    """`u_i - u_ref` for `u_i = v_i / ||v_i||` (0 for zero rows), accurate when `v_i ~ reference`.

    With `v_i = a + e_i` (`a` the reference, `e_i = v_i - a` computed exactly
    near `a`), `r = ||v||`: `u_i - u_a = e_i / r_i + a (r_a - r_i) / (r_i r_a)`
    and `r_a - r_i = -(2 a.e_i + ||e_i||^2) / (r_a + r_i)`, free of the
    cancellation of subtracting two nearly equal unit vectors. Also returns
    whether each row has a direction (`||v_i|| > 0`).
    """
    differences = values - reference
    reference_norm = ops.norm(reference)
    norms = ops.norm(values, axis=1)
    has_direction = norms > 0
    safe_norms = ops.where(has_direction, norms, ops.ones_like(norms))
    reference_has_direction = reference_norm > 0
    safe_reference_norm = ops.where(reference_has_direction, reference_norm, ops.ones_like(reference_norm))
    unit_reference = reference / safe_reference_norm  # 0 when the reference is 0
    gap = -(2.0 * ops.matmul(differences, reference) + ops.sum(ops.square(differences), axis=1)) / (
        safe_reference_norm + norms
    )  # r_a - r_i
    near = differences / safe_norms[:, None] + unit_reference[None, :] * (gap / safe_norms)[:, None]
    plain = values / safe_norms[:, None] - unit_reference[None, :]  # the reference is 0: u_a = 0
    unit = ops.where(reference_has_direction, near, plain)
    # A zero row has u_i = 0: u_i - u_a = -u_a.
    unit = ops.where(has_direction[:, None], unit, -ops.broadcast_to(unit_reference[None, :], unit.shape))
    return unit, has_direction


def nc1(features, labels, rcond=None):
    """Neural-collapse NC1: `Tr(Sigma_W Sigma_B^+) / L` (Papyan et al., 2020).

    `Sigma_W = (1/N) sum_i (h_i - mu_{c_i})(h_i - mu_{c_i})^T` (within-class
    covariance), `Sigma_B = (1/L) sum_c (mu_c - mu_G)(mu_c - mu_G)^T`
    (between-class covariance of the class means around the global mean
    `mu_G` of all examples), `+` the Moore-Penrose pseudo-inverse. Computed on
    raw features without forming a D x D matrix: with `M = [mu_c - mu_G]`
    (D x L) = `U s V^T`, `NC1 = sum_k (u_k^T Sigma_W u_k) / s_k^2` over the
    directions with `s_k > rcond * max(s)`. Lower = more collapsed.

    Arguments:
        features: array or backend tensor `(N, D)`, finite.
        labels: integer class ids or one-hot rows.
        rcond: relative cut-off on the singular values of `M` (the square
            roots of those of `L * Sigma_B`); default `max(D, L) * 1.19e-7`,
            the float32 analogue of `numpy.linalg.matrix_rank`.

    Returns:
        NC1 as a non-negative Python float.

    Example:

    >>> import numpy as np
    >>> from keras_mixkd.metrics import nc1
    >>> rng = np.random.default_rng(0)
    >>> labels = np.repeat(np.arange(4), 100)
    >>> noise = rng.normal(size=(400, 16))
    >>> bool(nc1(4 * np.eye(16)[labels] + 0.1 * noise, labels) < nc1(4 * np.eye(16)[labels] + noise, labels))
    True
    """
    features, global_mean, ids, counts = _prepare(features, labels)
    num_classes = counts.size
    dimensions = int(features.shape[1])
    if rcond is None:
        rcond = max(dimensions, num_classes) * float(np.finfo(np.float32).eps)
    ids_tensor = ops.convert_to_tensor(ids)
    features, _ = _centered(features, global_mean)  # NC1 is translation-invariant
    class_means = _class_sums(features, ids, num_classes) / ops.convert_to_tensor(
        counts.astype(np.float32)
    )[:, None]
    global_mean = ops.sum(class_means * ops.convert_to_tensor(counts.astype(np.float32))[:, None], axis=0) / float(
        counts.sum()
    )
    between = ops.transpose(class_means - global_mean)  # (D, L)
    # `between @ counts = 0`: one known null direction. Working in the
    # (L-1)-dimensional complement of `counts` keeps it out of the SVD, where
    # float32 would give it a small non-zero singular value to invert.
    between = ops.matmul(between, ops.convert_to_tensor(_complement_basis(counts)))
    directions, singular_values, _ = ops.svd(between, full_matrices=False)
    keep = singular_values > rcond * ops.max(singular_values)
    residuals = features - ops.take(class_means, ids_tensor, axis=0)
    projected = ops.matmul(residuals, directions)  # (N, r)
    within_along = ops.mean(ops.square(projected), axis=0)
    safe = ops.where(keep, singular_values, ops.ones_like(singular_values))
    terms = ops.where(keep, within_along / ops.square(safe), ops.zeros_like(safe))
    return _floats(ops.sum(terms))[0]


def _complement_basis(counts):
    """Orthonormal `(L, L-1)` basis of the vectors orthogonal to `counts` (float32)."""
    counts = np.asarray(counts, np.float64)
    basis, _ = np.linalg.qr(np.column_stack([counts, np.eye(counts.size)]))
    return basis[:, 1:].astype(np.float32)

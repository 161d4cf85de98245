"""Cost of the latent-space measures, under the current Keras backend.

Compares `keras_mixkd.metrics.class_discrimination` (closed form, `keras.ops`,
float32) with a float64 brute-force NumPy implementation that computes every
pairwise cosine similarity (in row blocks of the N x N matrix), and with one
training epoch of resnet20 on the same number of 32x32x3 images. Also prints
the other measures' times and the `predict` pass the callback needs to get the
features, so the whole per-epoch cost is visible.

Usage (one backend per process):

    KERAS_BACKEND=jax .venv/bin/python benchmarks/bench_measures.py
    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/bench_measures.py --quick

Timings are medians of `--repeats` runs after one warm-up run (the brute force
runs `--brute-repeats` times, the epoch once after a warm-up fit on a few
batches that compiles the train step).
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_mixkd import metrics  # noqa: E402


def brute_force_class_discrimination(features, labels, block=1000):
    """Float64, every pair (i, j) of the N x N cosine-similarity matrix, by blocks."""
    features = features.astype(np.float64)
    std = features.std(axis=0)
    std[std == 0] = 1.0
    z = 0.5 * (features - features.mean(axis=0)) / std
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    classes, ids = np.unique(labels, return_inverse=True)
    num_classes = classes.size
    one_hot = np.eye(num_classes)[ids]
    pair_sums = np.zeros((num_classes, num_classes))
    for start in range(0, len(u), block):
        similarity = u[start : start + block] @ u.T  # (block, N) similarities
        np.fill_diagonal(similarity[:, start : start + block], 0.0)  # drop self pairs
        pair_sums += one_hot[start : start + block].T @ similarity @ one_hot
    counts = one_hot.sum(axis=0)
    intra = np.diag(pair_sums) / (counts * (counts - 1))
    inter = pair_sums / np.outer(counts, counts)
    upper = np.triu_indices(num_classes, 1)
    return (intra.mean() - inter[upper].mean()) / np.sqrt(u.shape[1])


def median_seconds(function, repeats, warmup=True):
    if warmup:
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def epoch_seconds(num_examples, num_classes, batch_size):
    from keras_mixkd.models import get_model

    rng = np.random.default_rng(0)
    images = rng.random((num_examples, 32, 32, 3), dtype=np.float32)
    labels = rng.integers(0, num_classes, num_examples)
    model = get_model("resnet20", num_classes=num_classes, input_shape=(32, 32, 3))
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    # Warm-up: compiles the train step, so the timed epoch is steady state.
    model.fit(images[: 4 * batch_size], labels[: 4 * batch_size], batch_size=batch_size, epochs=1, verbose=0)
    start = time.perf_counter()
    model.fit(images, labels, batch_size=batch_size, epochs=1, verbose=0)
    epoch = time.perf_counter() - start
    extractor = metrics.feature_extractor(model)
    predict = median_seconds(lambda: extractor.predict(images, batch_size=256, verbose=0), 1)
    return epoch, predict


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--dims", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--classes", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--brute-repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="N=2000, no resnet20 epoch")
    parser.add_argument("--skip-epoch", action="store_true", help="no resnet20 epoch (it takes minutes)")
    args = parser.parse_args()
    if args.quick:
        args.examples = 2000
    num_examples = args.examples
    backend = keras.backend.backend()
    threads = ""
    if backend == "torch":
        import torch

        threads = f", torch intra-op threads {torch.get_num_threads()}"
    print(f"backend {backend}, keras {keras.__version__}, N = {num_examples}, "
          f"{os.cpu_count()} CPU(s) visible, load average {os.getloadavg()[0]:.1f}{threads}")

    epoch = predict = None
    if not (args.quick or args.skip_epoch):
        epoch, predict = epoch_seconds(num_examples, args.classes[0], args.batch_size)
        print(f"resnet20, one epoch of {num_examples} 32x32x3 images, batch {args.batch_size}: "
              f"{epoch:.1f} s; predict of the penultimate features (batch 256): {predict:.2f} s "
              f"({100 * predict / epoch:.1f} % of the epoch)")

    rows = []
    others = []
    rng = np.random.default_rng(0)
    for dim in args.dims:
        for num_classes in args.classes:
            labels = rng.integers(0, num_classes, num_examples)
            centers = rng.normal(size=(num_classes, dim))
            features = np.maximum(centers[labels] + 2.0 * rng.normal(size=(num_examples, dim)), 0)
            features = features.astype(np.float32)
            ours = median_seconds(lambda: metrics.class_discrimination(features, labels), args.repeats)
            start = time.perf_counter()
            reference = brute_force_class_discrimination(features, labels)
            brute = [time.perf_counter() - start]
            for _ in range(args.brute_repeats - 1):
                start = time.perf_counter()
                brute_force_class_discrimination(features, labels)
                brute.append(time.perf_counter() - start)
            brute = statistics.median(brute)
            value = metrics.class_discrimination(features, labels)
            rows.append((dim, num_classes, ours, brute, value, reference))
            others.append((
                dim,
                num_classes,
                median_seconds(lambda: metrics.class_separation(features, labels), args.repeats),
                median_seconds(lambda: metrics.nc1(features, labels), args.repeats),
                median_seconds(lambda: metrics.gdv(features, labels), 1),
            ))

    print()
    print(f"| D | L | CD, ours (ms) | brute force f64 (ms) | speed-up | rel. diff | % of a resnet20 epoch |")
    print("|---|---|---|---|---|---|---|")
    for dim, num_classes, ours, brute, value, reference in rows:
        share = f"{100 * ours / epoch:.3f} %" if epoch else "n/a"
        print(f"| {dim} | {num_classes} | {1e3 * ours:.1f} | {1e3 * brute:.0f} | "
              f"{brute / ours:.0f}x | {abs(value - reference) / abs(reference):.1e} | {share} |")
    print()
    print("| D | L | class_separation (ms) | nc1 (ms) | gdv, O(N^2 D) (ms) |")
    print("|---|---|---|---|---|")
    for dim, num_classes, separation, collapse, distance in others:
        print(f"| {dim} | {num_classes} | {1e3 * separation:.1f} | {1e3 * collapse:.1f} | {1e3 * distance:.0f} |")


if __name__ == "__main__":
    main()

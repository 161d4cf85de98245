"""Teacher outputs computed once: how far cached logits are from running the teacher, and the time saved.

One teacher, one student, the same shuffled batches, trained twice from the
same initial weights: once with the teacher run on every batch, once reading
its logits computed beforehand (`compute_teacher_logits` +
`make_dataset(teacher_logits=...)`). Printed: the largest difference of the
logits (against the teacher's own eager call), of one batch's loss and of the
student's weights and logged history after `--epochs` epochs, without and
with MixUp (the teacher on the clean batch); then `fit` time of `--rounds`
interleaved rounds of each (the first dropped: compilation), their medians
and ratio, and the time the cache took to compute.

Usage:

    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/bench_teacher_cache.py                # digits
    KERAS_BACKEND=jax .venv/bin/python benchmarks/bench_teacher_cache.py --pair resnet56:resnet20
    .venv/bin/python benchmarks/bench_teacher_cache.py --smoke
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", default="digits_cnn:digits_cnn_small",
                        help="teacher:student; digits models train on digits, others on synthetic 32x32x3 "
                             "images of 100 classes (default: digits_cnn:digits_cnn_small)")
    parser.add_argument("--examples", type=int, default=None, help="training examples (default: all digits / 1024)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the compared trainings")
    parser.add_argument("--timed-epochs", type=int, default=5, help="epochs of each timed round")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved timed rounds (the first is dropped)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--smoke", action="store_true", help="seconds-scale: 128 examples, 1 epoch, 2 rounds")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.smoke:
        args.examples, args.epochs, args.timed_epochs, args.rounds = 128, 1, 1, 2
    return args


def main(argv=None):
    args = parse_args(argv)
    import keras
    import numpy as np

    from keras_mixkd import Distiller
    from keras_mixkd.augment import get_augmentation
    from keras_mixkd.data import load_dataset
    from keras_mixkd.data import make_dataset
    from keras_mixkd.distill import compute_teacher_logits
    from keras_mixkd.models import get_model
    from keras_mixkd.models import with_preprocessing
    from keras_mixkd.optimizers import SGD

    (teacher_name, student_name), = common.parse_pairs(args.pair)
    if teacher_name.startswith("digits"):
        splits = load_dataset("digits", validation_fraction=0.1, seed=0)
        x, y, num_classes, shape, normalization = (splits.x_train, splits.y_train, splits.num_classes,
                                                   splits.input_shape, splits.normalization)
    else:
        rng = np.random.default_rng(0)
        count = args.examples or 1024
        x = rng.uniform(size=(count, 32, 32, 3)).astype("float32")
        y = rng.integers(0, 100, size=count).astype("int32")
        num_classes, shape, normalization = 100, (32, 32, 3), (0.5, 0.25)
    if args.examples:
        x, y = x[:args.examples], y[:args.examples]

    keras.utils.set_random_seed(0)
    teacher = with_preprocessing(get_model(teacher_name, num_classes, input_shape=shape), normalization)
    teacher.compile(optimizer=SGD(0.05, momentum=0.9),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    # Trained one epoch: logits of a trained teacher's size, not values near 0.
    teacher.fit(make_dataset(x, y, batch_size=args.batch_size, seed=0), epochs=1, verbose=0)
    start = time.perf_counter()
    cache = compute_teacher_logits(teacher, x)
    cache_s = time.perf_counter() - start
    probe = Distiller(teacher, get_model(student_name, num_classes, input_shape=shape))
    eager = np.concatenate([keras.ops.convert_to_numpy(probe.teacher_logits(x[i:i + args.batch_size]))
                            for i in range(0, len(x), args.batch_size)])

    def dataset(cached, mixing):
        augmentation = None
        if mixing:
            keras.utils.set_random_seed(7)  # The augmentation's RNG inside tf.data.
            augmentation = get_augmentation("mixup", alpha=1.0, num_classes=num_classes, seed=7)
        return make_dataset(x, y, batch_size=args.batch_size, seed=3, augmentation=augmentation,
                            num_classes=num_classes, teacher_sees="clean" if mixing else "same",
                            teacher_logits=cache if cached else None)

    def train(cached, mixing, epochs):
        keras.utils.set_random_seed(5)
        student = with_preprocessing(get_model(student_name, num_classes, input_shape=shape), normalization)
        distiller = Distiller(teacher, student, temperature=4.0)
        distiller.compile(optimizer=SGD(0.05, momentum=0.9, weight_decay=5e-4))
        batch_x, batch_y = next(iter(dataset(cached, mixing)))
        first = distiller.evaluate(batch_x, batch_y, verbose=0, return_dict=True)
        start = time.perf_counter()
        history = distiller.fit(dataset(cached, mixing), epochs=epochs, verbose=0).history
        seconds = time.perf_counter() - start
        return np.concatenate([np.ravel(w) for w in student.get_weights()]), history, first, seconds

    results = {"backend": keras.backend.backend(), "pair": args.pair, "examples": len(x),
               "max_abs_logit": float(np.abs(eager).max()),
               "logits_max_abs_diff": float(np.abs(eager - cache).max()),
               "logits_max_rel_diff": float((np.abs(eager - cache) / np.maximum(np.abs(eager), 1.0)).max()),
               "cache_seconds": cache_s}
    common.log(f"{results['backend']} {args.pair}: logits max |diff| {results['logits_max_abs_diff']:.2e} "
               f"(relative {results['logits_max_rel_diff']:.2e}, max |logit| {results['max_abs_logit']:.1f})")
    for mixing in (False, True):
        fly, cached = train(False, mixing, args.epochs), train(True, mixing, args.epochs)
        row = {
            "one_batch_loss_max_abs_diff": max(abs(fly[2][k] - cached[2][k]) for k in fly[2]),
            "one_batch_loss": fly[2]["loss"],
            "weights_max_abs_diff": float(np.abs(fly[0] - cached[0]).max()),
            "history_max_abs_diff": max(float(np.abs(np.subtract(fly[1][k], cached[1][k])).max()) for k in fly[1]),
        }
        results["mixup" if mixing else "plain"] = row
        common.log(f"  {'mixup, teacher on the clean batch' if mixing else 'no augmentation'}: one-batch loss "
                   f"max |diff| {row['one_batch_loss_max_abs_diff']:.2e} (loss {row['one_batch_loss']:.3f}); "
                   f"after {args.epochs} epoch(s): weights {row['weights_max_abs_diff']:.2e}, "
                   f"history {row['history_max_abs_diff']:.2e}")
    times = {"teacher_every_batch": [], "cached": []}
    for _ in range(args.rounds):
        for name, cached in (("teacher_every_batch", False), ("cached", True)):
            times[name].append(train(cached, False, args.timed_epochs)[3])
    kept = {name: values[1:] or values for name, values in times.items()}
    medians = {name: float(np.median(values)) for name, values in kept.items()}
    results["fit_seconds"] = times
    results["fit_median_seconds"] = medians
    results["cached_over_teacher_every_batch"] = medians["cached"] / medians["teacher_every_batch"]
    common.log(f"  fit, {args.timed_epochs} epoch(s), median of {len(kept['cached'])}: teacher every batch "
               f"{medians['teacher_every_batch']:.2f} s, cached {medians['cached']:.2f} s (time ratio "
               f"{results['cached_over_teacher_every_batch']:.2f}); computing the cache {cache_s:.2f} s; "
               f"load average {os.getloadavg()[0]:.1f}")
    if args.json:
        common.write_json(args.json, results)
    print(json.dumps({k: v for k, v in results.items() if k != "fit_seconds"}))
    return results


if __name__ == "__main__":
    main()

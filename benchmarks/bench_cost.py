"""What XLA says each compiled step costs: a load-independent check of the timed ratios.

Under the JAX backend, compiles the same steps `bench_distill.py` times —
`keras_mixkd.Distiller`'s train step, `keras.distillation.Distiller`'s, the
student's plain train step and the teacher's inference — and prints XLA's
cost analysis of each (floating-point operations and bytes accessed). On a
shared machine the clock swings by 2x from round to round; these counts do
not. Ours against the floor (teacher inference + student step) shows the work
the distiller adds; ours against Keras's shows whether the two steps differ.

Usage:

    KERAS_BACKEND=jax .venv/bin/python benchmarks/bench_cost.py
    KERAS_BACKEND=jax .venv/bin/python benchmarks/bench_cost.py --pairs resnet56:resnet20 --json cost.json
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common  # noqa: E402

import keras  # noqa: E402

import bench_distill  # noqa: E402
from keras_mixkd.distill import Distiller  # noqa: E402


def _cost(compiled):
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):  # Older JAX: one dict per device.
        cost = cost[0]
    return {"gflop": cost.get("flops", 0.0) / 1e9, "gb_accessed": cost.get("bytes accessed", 0.0) / 1e9}


def train_step_cost(model, x, y):
    import jax

    model.train_on_batch(x, y)  # Builds the model, its optimizer and metrics.
    state = model._get_jax_state(
        trainable_variables=True,
        non_trainable_variables=True,
        optimizer_variables=True,
        metrics_variables=True,
        purge_model_variables=False,
    )
    return _cost(jax.jit(model.train_step).lower(state, (x, y, None)).compile())


def inference_cost(model, x):
    import jax

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    def forward(trainable, non_trainable, x):
        return model.stateless_call(trainable, non_trainable, x, training=False)[0]

    return _cost(jax.jit(forward).lower(trainable, non_trainable, x).compile())


def pair_costs(teacher_name, student_name, args):
    images, _, soft_labels, _ = common.make_mixed_batch(
        args.batch_size, args.num_classes, image_size=args.image_size, seed=args.seed
    )
    x, y = common.to_device(images), common.to_device(soft_labels)

    def fresh_pair():
        return bench_distill.build_pair(teacher_name, student_name, args.num_classes, args.image_size)

    teacher, student = fresh_pair()
    ours = Distiller(
        teacher, student, temperature=bench_distill.TEMPERATURE, student_loss_weight=bench_distill.STUDENT_LOSS_WEIGHT
    )
    ours.compile(optimizer=bench_distill.sgd())
    teacher, student = fresh_pair()
    theirs = keras.distillation.Distiller(
        teacher=teacher,
        student=student,
        distillation_losses=keras.distillation.LogitsDistillation(temperature=bench_distill.TEMPERATURE),
        student_loss_weight=bench_distill.STUDENT_LOSS_WEIGHT,
    )
    theirs.compile(optimizer=bench_distill.sgd(), loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    teacher, student = fresh_pair()
    student.compile(optimizer=bench_distill.sgd(), loss=keras.losses.CategoricalCrossentropy(from_logits=True))

    costs = {
        "ours": train_step_cost(ours, x, y),
        "keras": train_step_cost(theirs, x, y),
        "student_step": train_step_cost(student, x, y),
        "teacher_inference": inference_cost(teacher, x),
    }
    costs["floor"] = {
        key: costs["student_step"][key] + costs["teacher_inference"][key] for key in ("gflop", "gb_accessed")
    }
    return {"pair": f"{teacher_name}:{student_name}", "costs": costs}


def print_table(results):
    print("XLA cost analysis of one compiled step (JAX, CPU): GFLOP / GB accessed")
    print(f"{'pair':<22}{'ours':>18}{'floor':>18}{'keras':>18}{'ours/floor':>20}{'ours/keras':>20}")
    for r in results:
        c = r["costs"]

        def cell(name):
            return f"{c[name]['gflop']:8.3f} / {c[name]['gb_accessed']:6.3f}"

        def ratio(other):
            return (
                f"{c['ours']['gflop'] / c[other]['gflop']:9.5f} / "
                f"{c['ours']['gb_accessed'] / c[other]['gb_accessed']:8.4f}"
            )

        print(f"{r['pair']:<22}{cell('ours'):>18}{cell('floor'):>18}{cell('keras'):>18}{ratio('floor'):>20}{ratio('keras'):>20}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", default=",".join(common.DEFAULT_PAIRS))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-classes", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="no effect (the counts need no repeats)")
    parser.add_argument("--smoke", action="store_true", help="resnet8 pair, 16x16 images, batch 8")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.smoke:
        args.pairs, args.batch_size, args.num_classes, args.image_size = ",".join(common.SMOKE_PAIRS), 8, 10, 16
    args.pairs = common.parse_pairs(args.pairs)
    if keras.backend.backend() != "jax":
        parser.error("bench_cost.py reads XLA's cost analysis: run it with KERAS_BACKEND=jax")
    return args


def main(argv=None):
    args = parse_args(argv)
    results = []
    for teacher_name, student_name in args.pairs:
        common.log(f"[jax] cost of {teacher_name} -> {student_name} ...")
        results.append(pair_costs(teacher_name, student_name, args))
    print_table(results)
    common.write_json(args.json, {"results": results, "versions": common.library_versions()})
    return results


if __name__ == "__main__":
    main()

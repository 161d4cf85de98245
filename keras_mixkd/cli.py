"""The `keras-mixkd` command line: a thin face over the library.

    keras-mixkd [--backend {tensorflow,jax,torch}] COMMAND [options]

Commands: study (the main job), train-teacher, distill, evaluate, measure,
export, report. `keras-mixkd COMMAND --help` describes each.

The backend is chosen by `--backend` or by the `KERAS_BACKEND` environment
variable, and set before Keras is imported: this module imports nothing that
imports Keras at its top.
"""

import argparse
import json
import os
import sys

from keras_mixkd.version import __version__

BACKENDS = ("tensorflow", "jax", "torch")


class CommandError(Exception):
    """An error the command line reports as one clear line (exit status 2)."""


# ---------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------


def _backend_parent():
    # Accepted before or after the command: `keras-mixkd --backend jax study`
    # and `keras-mixkd study --backend jax`.
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--backend", choices=BACKENDS, default=argparse.SUPPRESS,
                        help="Keras backend (default: $KERAS_BACKEND, else tensorflow)")
    parent.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS,
                        help="show the full Python traceback of an error")
    return parent


def _verbosity(parser):
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=None,
                        help="Keras progress: 1 = bar per epoch (default on a terminal), 2 = one line "
                             "per epoch, 0 = silent")


def _scaling_flags(parser):
    from keras_mixkd.precision import PRECISION_POLICIES

    parser.add_argument("--devices", type=int, default=1,
                        help="train data-parallel on N devices (JAX, TensorFlow; on a machine without "
                             "accelerators, N virtual CPU devices). Default: 1")
    parser.add_argument("--precision", choices=PRECISION_POLICIES, default="float32",
                        help="dtype policy of the models built (default: float32)")


def _data_flags(parser, recipe_default="digits"):
    parser.add_argument("--recipe", default=recipe_default,
                        help="recipe whose [data] (and optimizer) settings to use: a packaged name or a "
                             f"TOML file (default: {recipe_default})")
    parser.add_argument("--run", default=None, help="take the data settings of this runs folder instead")
    parser.add_argument("--dataset", default=None, help="data set name (digits, cifar10, cifar100, npz, folder)")
    parser.add_argument("--data-path", default=None, help="file or folder for the npz / folder sources")


def build_parser():
    """The argument parser of `keras-mixkd` (every command has `--help`)."""
    parent = _backend_parent()
    parser = argparse.ArgumentParser(
        prog="keras-mixkd",
        description="How MixUp, CutMix and other augmentations change knowledge distillation "
                    "(Keras 3 on TensorFlow, JAX or PyTorch).",
        parents=[parent],
        epilog="`keras-mixkd study` with no arguments runs the default study on the embedded digits data.",
    )
    parser.add_argument("--version", action="version", version=f"keras-mixkd {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    study = commands.add_parser(
        "study", parents=[parent], help="run a study: teachers x distillation recipes x seeds, then the report",
        description="Run (or continue) a study described by a recipe: train each teacher, distil each "
                    "student, write runs/<name>/results.csv, results.json, report.md and plots, and print "
                    "the main table. Rerunning the same command skips finished cells and continues an "
                    "interrupted one from its last epoch.")
    study.add_argument("--recipe", default="digits",
                       help="packaged recipe name or TOML file (default: digits; see --list-recipes)")
    study.add_argument("--smoke", action="store_true", help="the recipe's smoke scale: tiny data, one epoch")
    study.add_argument("--name", default=None, help="run folder name (default: the recipe's name, +'-smoke')")
    study.add_argument("--runs-dir", default="runs", help="parent folder of runs (default: runs)")
    study.add_argument("--seeds", type=int, nargs="+", default=None, help="override the seeds")
    study.add_argument("--teacher-epochs", type=int, default=None, help="override teacher.epochs")
    study.add_argument("--student-epochs", type=int, default=None, help="override student.epochs")
    study.add_argument("--dataset", default=None, help="override data.dataset")
    study.add_argument("--data-path", default=None, help="override data.path")
    study.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override any recipe setting, value in TOML syntax, e.g. "
                            "--set teacher.optimizer.learning_rate=0.1 (repeatable)")
    study.add_argument("--only", action="append", default=[], metavar="FIELD=VALUE[,VALUE]",
                       help="run part of the grid, e.g. --only teacher_augmentation=mixup,cutmix "
                            "(fields: kind, teacher_model, teacher_augmentation, seed, student_model, recipe)")
    study.add_argument("--dry-run", action="store_true", help="print the grid and exit")
    study.add_argument("--no-report", action="store_true", help="skip report.md and the plots")
    study.add_argument("--list-recipes", action="store_true", help="list the packaged recipes and exit")
    _verbosity(study)
    _scaling_flags(study)
    study.set_defaults(handler=cmd_study)

    teacher = commands.add_parser(
        "train-teacher", parents=[parent], help="train one teacher and save it (.keras)",
        description="Train one teacher with an augmentation recipe and save it as .keras. Optimizer, "
                    "schedule and augmentation options come from the recipe's [teacher] table; flags "
                    "override. Rerunning with the same --output continues an interrupted run.")
    teacher.add_argument("--model", required=True, help="model name (see keras_mixkd.models.list_models())")
    teacher.add_argument("--augmentation", default="none", help="augmentation, e.g. mixup or standard+mixup")
    teacher.add_argument("--epochs", type=int, default=None)
    teacher.add_argument("--seed", type=int, default=0)
    teacher.add_argument("--output", required=True, help="path of the .keras file to write")
    _data_flags(teacher)
    _scaling_flags(teacher)
    _verbosity(teacher)
    teacher.set_defaults(handler=cmd_train_teacher)

    distill = commands.add_parser(
        "distill", parents=[parent], help="distil one student from a saved teacher",
        description="Distil a student from a saved teacher (.keras) and save the student (.keras). "
                    "Optimizer and schedule come from the recipe's [student] table; flags override.")
    distill.add_argument("--teacher", required=True, help="the teacher's .keras file")
    distill.add_argument("--student", required=True, help="student model name")
    distill.add_argument("--loss", choices=("kd", "standardized"), default="kd")
    distill.add_argument("--temperature", type=float, default=4.0)
    distill.add_argument("--student-loss-weight", type=float, default=0.1,
                         help="weight w of CE in w*CE + (1-w)*KD (0.1: CIFAR-100 benchmark; 0.5: study A)")
    distill.add_argument("--augmentation", default="none",
                         help="mixing at distillation time, e.g. partial_mixup or standard+mixup")
    distill.add_argument("--fraction", type=float, default=None, help="fraction mixed by partial_mixup")
    distill.add_argument("--alpha", type=float, default=None, help="Beta concentration of mixup/cutmix")
    distill.add_argument("--teacher-sees", choices=("same", "clean"), default="same")
    distill.add_argument("--epochs", type=int, default=None)
    distill.add_argument("--seed", type=int, default=0)
    distill.add_argument("--output", required=True, help="path of the student's .keras file")
    _data_flags(distill)
    _scaling_flags(distill)
    _verbosity(distill)
    distill.set_defaults(handler=cmd_distill)

    evaluate = commands.add_parser(
        "evaluate", parents=[parent], help="accuracy and calibration of a saved model",
        description="Accuracy and expected calibration error of a saved model (.keras; a distiller is "
                    "evaluated through its student) on the validation and test splits.")
    evaluate.add_argument("model", help=".keras file")
    evaluate.add_argument("--split", choices=("val", "test", "both"), default="both")
    evaluate.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    _data_flags(evaluate)
    evaluate.set_defaults(handler=cmd_evaluate)

    measure = commands.add_parser(
        "measure", parents=[parent], help="latent-space measures of a saved model (CD, GDV, ...)",
        description="Class-discrimination and the other latent-space and output measures of a saved "
                    "model's penultimate features on a split of a data set.")
    measure.add_argument("model", help=".keras file")
    measure.add_argument("--split", choices=("train", "val", "test"), default="test")
    measure.add_argument("--measures", nargs="+", default=None,
                         help="names (default: class_discrimination gdv class_separation nc1 accuracy "
                              "expected_calibration_error mean_entropy logit_std)")
    measure.add_argument("--layer", default=None, help="feature layer name (default: 'features')")
    measure.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    _data_flags(measure)
    measure.set_defaults(handler=cmd_measure)

    export = commands.add_parser(
        "export", parents=[parent], help="export a distilled student as a TensorFlow SavedModel",
        description="Export the student of a saved distiller (or a saved student) as a SavedModel.")
    export.add_argument("model", help=".keras file of a distiller or a student")
    export.add_argument("output", help="SavedModel folder to write")
    export.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    export.add_argument("--input-dtype", choices=("float32", "uint8"), default="float32",
                        help="what the SavedModel takes: float32 images in [0, 1] (default) or raw uint8 "
                             "pixels in 0-255")
    export.set_defaults(handler=cmd_export)

    report = commands.add_parser(
        "report", parents=[parent], help="tables and plots of a runs folder",
        description="Write report.md and plots/*.png of a runs folder (finished or not) and print the "
                    "main table. Needs no Keras.")
    report.add_argument("run_dir", help="runs/<name>")
    report.add_argument("--projection", choices=("pca", "tsne"), default=None,
                        help="2-D projection of the features (default: the study's, pca)")
    report.set_defaults(handler=cmd_report)
    return parser


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------


def main(argv=None):
    """Run `keras-mixkd` with `argv` (default `sys.argv[1:]`); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    if getattr(args, "command", None) is None:
        parser.print_help()
        return 2
    try:
        select_backend(getattr(args, "backend", None))
        with _training_scope(args):
            return args.handler(args) or 0
    except KeyboardInterrupt:
        print("keras-mixkd: interrupted; rerun the same command to continue.", file=sys.stderr)
        return 130
    except (CommandError, ValueError, TypeError, FileNotFoundError, OSError) as error:
        if getattr(args, "traceback", False):
            raise
        from keras_mixkd._checks import explain_error

        print(f"keras-mixkd {args.command}: error: {explain_error(error)}", file=sys.stderr)
        return 2


def select_backend(backend):
    """Set KERAS_BACKEND before Keras is imported; refuse when it is too late."""
    wanted = backend or os.environ.get("KERAS_BACKEND") or "tensorflow"
    if wanted not in BACKENDS:
        raise CommandError(f"Unknown backend {wanted!r} (from KERAS_BACKEND); choose one of {', '.join(BACKENDS)}.")
    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != wanted and backend:
            raise CommandError(
                f"Keras is already imported with the {keras.backend.backend()} backend in this process; "
                f"--backend {wanted} must be chosen before Keras is imported."
            )
        return
    os.environ["KERAS_BACKEND"] = wanted
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _training_scope(args):
    """--devices and --precision, entered before the command builds any model."""
    import contextlib

    devices, precision = getattr(args, "devices", 1), getattr(args, "precision", "float32")
    if devices == 1 and precision == "float32":
        return contextlib.nullcontext()
    from keras_mixkd.distribute import request_cpu_devices
    from keras_mixkd.distribute import training_scope

    if devices > 1 and os.environ.get("KERAS_BACKEND") != "torch":
        request_cpu_devices(devices)  # Virtual CPU devices where there are no accelerators.
    if args.command == "study":
        # The study clears the Keras session before each cell, which would drop an
        # outer scope: it enters one per cell itself (run_study(devices=, precision=)).
        from keras_mixkd.distribute import data_parallel

        data_parallel(devices)  # Refuse an impossible request (PyTorch) before any cell runs.
        return contextlib.nullcontext()
    return training_scope(devices=devices, precision=precision)


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------


def study_config_from_args(args):
    """The study config of `keras-mixkd study`'s flags (recipe, then overrides)."""
    from keras_mixkd.study.config import load_recipe
    from keras_mixkd.study.config import parse_override

    overrides = {}
    if args.seeds is not None:
        overrides["seeds"] = args.seeds
    if args.teacher_epochs is not None:
        overrides["teacher.epochs"] = args.teacher_epochs
    if args.student_epochs is not None:
        overrides["student.epochs"] = args.student_epochs
    if args.dataset is not None:
        overrides["data.dataset"] = args.dataset
    if args.data_path is not None:
        overrides["data.path"] = args.data_path
    for text in args.set:
        key, value = parse_override(text)
        overrides[key] = value
    return load_recipe(args.recipe, smoke=args.smoke, overrides=overrides)


def parse_only(items):
    """`["teacher_augmentation=mixup,cutmix"]` -> `{"teacher_augmentation": ["mixup", "cutmix"]}`."""
    only = {}
    for item in items:
        if "=" not in item:
            raise CommandError(f"--only expects FIELD=VALUE[,VALUE], got {item!r}.")
        field, values = item.split("=", 1)
        only.setdefault(field.strip(), []).extend(v.strip() for v in values.split(",") if v.strip())
    return only


def cmd_study(args):
    from keras_mixkd.study.config import list_recipes
    from keras_mixkd.study.grid import enumerate_cells

    if args.list_recipes:
        for name in list_recipes():
            print(name)
        return 0
    config = study_config_from_args(args)
    name = args.name or (config["name"] + ("-smoke" if args.smoke else ""))
    only = parse_only(args.only)
    if args.dry_run:
        from keras_mixkd.study.runner import select_cells

        cells = select_cells(enumerate_cells(config), only)
        for index, cell in enumerate(cells, 1):
            print(f"cell {index}/{len(cells)} · {cell.describe()}")
        return 0
    from keras_mixkd.study.runner import run_study

    run_study(config, runs_dir=args.runs_dir, name=name, only=only, report=not args.no_report,
              verbose=_fit_verbose(args), devices=args.devices, precision=args.precision)
    return 0


def _fit_verbose(args):
    return "auto" if args.verbose is None else args.verbose


def _data_config(args):
    """The [data] table for single-model commands: --run, else --recipe, then flags."""
    from keras_mixkd.study.config import load_recipe

    if args.run:
        from keras_mixkd.study.run_folder import RunFolder

        config = RunFolder(args.run).read_manifest()["config"]
    else:
        config = load_recipe(args.recipe)
    data = dict(config["data"])
    if args.dataset:
        data["dataset"] = args.dataset
    if args.data_path:
        data["path"] = args.data_path
    return config, data


def cmd_train_teacher(args):
    from keras_mixkd.study import atomic
    from keras_mixkd.study.training import prepare_data
    from keras_mixkd.study.training import train_teacher

    config, data = _data_config(args)
    splits = prepare_data(data)
    work_dir = args.output + ".work"
    os.makedirs(work_dir, exist_ok=True)  # an unwritable --output fails now, not after training
    model, record, _ = train_teacher(
        splits, args.model, args.augmentation, seed=args.seed,
        epochs=args.epochs or config["teacher"]["epochs"], optimizer=config["teacher"]["optimizer"],
        batch_size=data["batch_size"], augmentation_options=config["teacher"]["augmentation_options"],
        measure=config["measure"], work_dir=work_dir, verbose=_fit_verbose(args))
    with atomic.atomic_path(args.output) as tmp:
        model.save(tmp)
    atomic.write_json(args.output + ".json", record)
    import shutil

    shutil.rmtree(work_dir, ignore_errors=True)
    _print_record(record, args.output)
    return 0


def cmd_distill(args):
    from keras_mixkd.study import atomic
    from keras_mixkd.study.runner import load_teacher
    from keras_mixkd.study.training import distill_student
    from keras_mixkd.study.training import prepare_data

    config, data = _data_config(args)
    splits = prepare_data(data)
    teacher = load_teacher(args.teacher, splits.num_classes)
    options = {}
    if args.fraction is not None:
        options["fraction"] = args.fraction
    if args.alpha is not None:
        options["alpha"] = args.alpha
    names = [part for part in args.augmentation.split("+")]
    mixing = [n for n in names if n in ("mixup", "cutmix", "partial_mixup", "mixup_cutmix")]
    recipe = {
        "name": "cli", "loss": args.loss, "temperature": args.temperature,
        "student_loss_weight": args.student_loss_weight, "augmentation": [args.augmentation],
        "augmentation_options": {name: options for name in mixing}, "teacher_sees": args.teacher_sees,
    }
    work_dir = args.output + ".work"
    os.makedirs(work_dir, exist_ok=True)  # an unwritable --output fails now, not after training
    distiller, record, _ = distill_student(
        splits, teacher, args.student, recipe, seed=args.seed,
        epochs=args.epochs or config["student"]["epochs"], optimizer=config["student"]["optimizer"],
        batch_size=data["batch_size"], measure=config["measure"], work_dir=work_dir,
        verbose=_fit_verbose(args))
    card = record.get("model_card") or {}
    if card.get("distilled_from") is not None:
        card["distilled_from"]["teacher_file"] = os.path.abspath(args.teacher)
        teacher_card = _read_card(args.teacher)
        if teacher_card:
            card["distilled_from"].update(teacher_model=teacher_card.get("model"),
                                          teacher_trained=teacher_card.get("trained"))
    with atomic.atomic_path(args.output) as tmp:
        distiller.student.save(tmp)
    atomic.write_json(args.output + ".json", record)
    import shutil

    shutil.rmtree(work_dir, ignore_errors=True)
    _print_record(record, args.output)
    return 0


def _read_card(keras_path):
    from keras_mixkd.export import read_model_card

    return read_model_card(keras_path)


def _print_record(record, output):
    print(f"saved {output} (record: {output}.json)")
    print(f"test accuracy {100 * record['test_accuracy_last']:.2f} % at the last epoch ({record['last_epoch']}), "
          f"{100 * record['test_accuracy_best']:.2f} % at the best-validation epoch ({record['best_epoch']}); "
          f"CD {record['class_discrimination_last']:.4f}; ECE {record['ece_last']:.4f}")


def _load_model(path, num_classes):
    import keras

    import keras_mixkd.distill  # noqa: F401  (registers StandardizedLogits for loading)

    if not os.path.exists(path):
        raise FileNotFoundError(f"No model file at {path}.")
    try:
        model = keras.saving.load_model(path)
    except Exception as error:  # corrupt or foreign: name the file
        from keras_mixkd._checks import keras_file_problem

        raise CommandError(f"Cannot load {path} as a Keras model: {keras_file_problem(path) or error}") from error
    if hasattr(model, "student") and hasattr(model, "teacher"):
        model = model.student
    width = model.output_shape[-1]
    if width != num_classes:
        raise CommandError(f"{path} predicts {width} classes but the data has {num_classes}.")
    return model


def cmd_evaluate(args):
    from keras_mixkd.study.training import measure_model
    from keras_mixkd.study.training import prepare_data

    config, data = _data_config(args)
    splits = prepare_data(data)
    model = _load_model(args.model, splits.num_classes)
    results = {}
    for split in ("val", "test") if args.split == "both" else (args.split,):
        values = measure_model(model, splits, ece_bins=config["measure"]["ece_bins"], split=split)
        results[split] = {"accuracy": values["accuracy"], "expected_calibration_error":
                          values["expected_calibration_error"], "examples": int(len(getattr(splits, f"y_{split}")))}
        print(f"{split}: accuracy {100 * values['accuracy']:.2f} % · ECE {values['expected_calibration_error']:.4f} "
              f"· {results[split]['examples']} examples")
    _maybe_json(args.json, results)
    return 0


def cmd_measure(args):
    from keras_mixkd.callbacks import LatentMeasures
    from keras_mixkd.study.training import model_inputs
    from keras_mixkd.study.training import prepare_data

    config, data = _data_config(args)
    splits = prepare_data(data)
    model = _load_model(args.model, splits.num_classes)
    x, y = model_inputs(model, splits, args.split)  # Images in [0, 1], or normalised for an old file.
    measures = args.measures or ["class_discrimination", "gdv", "class_separation", "nc1", "accuracy",
                                 "expected_calibration_error", "mean_entropy", "logit_std"]
    callback = LatentMeasures(x, y, measures=measures, teacher=None, layer_name=args.layer,
                              num_bins=config["measure"]["ece_bins"])
    values = {name: float(v) for name, v in callback.compute(model).items()}
    width = max(len(n) for n in values)
    print(f"{args.model} on the {args.split} split of {data['dataset']} ({len(y)} examples):")
    for name, value in values.items():
        print(f"  {name.ljust(width)}  {value:.6g}")
    _maybe_json(args.json, values)
    return 0


def cmd_export(args):
    try:
        from keras_mixkd.export import export_student
    except ImportError:
        raise CommandError(
            "export is not available yet in this version of keras-mixkd (keras_mixkd.export is missing). "
            "Meanwhile: load the student with keras.saving.load_model and call "
            "model.export(path, format='tf_saved_model') under the TensorFlow or JAX backend."
        ) from None
    try:
        result = export_student(args.model, args.output, overwrite=args.overwrite,
                                input_dtype=args.input_dtype)
    except RuntimeError as error:  # A failed export or verification: one clear line.
        raise CommandError(str(error)) from error
    print(result)
    return 0


def cmd_report(args):
    from keras_mixkd.analysis import write_report

    write_report(args.run_dir, projection=args.projection)
    return 0


def _maybe_json(path, values):
    if path:
        from keras_mixkd.study import atomic

        atomic.write_json(path, values)
        print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())

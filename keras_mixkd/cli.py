"""The `keras-mixkd` command line: a thin face over the library.

    keras-mixkd [--backend {tensorflow,jax,torch}] COMMAND [options]

Commands: study (the main job), train-teacher, distill, evaluate, measure,
export, report, list. `keras-mixkd COMMAND --help` describes each.

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
    parser.add_argument("--verbose", type=int, nargs="?", const=1, choices=(0, 1, 2), default=0,
                        help="Keras's progress within each run: --verbose alone (1) = a bar per epoch on a "
                             "terminal, one line per epoch when the output is a file or pipe; 2 = one line "
                             "per epoch; 0 = none (default: 0)")


def _scaling_flags(parser):
    from keras_mixkd.precision import PRECISION_POLICIES

    parser.add_argument("--devices", type=int, default=1,
                        help="train data-parallel on N devices (JAX, TensorFlow; on a machine without "
                             "accelerators, N virtual CPU devices). Default: 1")
    parser.add_argument("--precision", choices=PRECISION_POLICIES, default="float32",
                        help="dtype policy of the models built (default: float32)")


def _executor_flags(parser):
    parser.add_argument("--executor", choices=("in_process", "ray"), default="in_process",
                        help="how the cells run: in_process (one after the other, here) or ray (each cell a "
                             "Ray task, on this machine or a cluster; pip install 'keras-mixkd[ray]'). "
                             "Default: in_process")
    parser.add_argument("--address", default=None,
                        help="Ray cluster to join, e.g. auto (after `ray start --head`) or host:6379. "
                             "Default: start Ray on this machine")
    parser.add_argument("--workers", type=int, default=None,
                        help="cells at once when Ray starts on this machine. Default: one per GPU, else "
                             "one per --cpus-per-cell CPUs")
    parser.add_argument("--cpus-per-cell", type=float, default=1.0,
                        help="CPUs (and math threads) of one Ray cell. Default: 1")
    parser.add_argument("--gpus-per-cell", type=float, default=None,
                        help="GPUs of one Ray cell. Default: 1 where the cluster has GPUs, else 0")
    parser.add_argument("--threads", type=int, default=None,
                        help="math threads of each cell. On a CPU they change the round-off, so the "
                             "numbers: the same --threads gives the same results under both executors "
                             "(--threads 1 = a Ray cell of 1 CPU). JAX takes only 1. Default: in_process "
                             "every core, ray --cpus-per-cell")


def _data_flags(parser, recipe_default="digits"):
    parser.add_argument("--recipe", default=recipe_default,
                        help="recipe whose [data] (and optimizer) settings to use: a packaged name or a "
                             f"TOML file (default: {recipe_default})")
    parser.add_argument("--run", default=None, help="take the data settings of this runs folder instead "
                        "(default: none, the recipe's)")
    parser.add_argument("--dataset", default=None, help="data set name (digits, cifar10, cifar100, npz, "
                        "folder; see `keras-mixkd list datasets`) (default: the recipe's data.dataset)")
    parser.add_argument("--data-path", default=None, help="file or folder for the npz / folder sources "
                        "(default: the recipe's data.path)")


def _training_flags(parser, role):
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"number of epochs, >= 1 (default: the recipe's {role}.epochs)")
    parser.add_argument("--keep-milestones", action="store_true",
                        help="with --epochs, keep the recipe's learning-rate milestones as they are instead "
                             "of scaling them with the epochs (default: scale them, and say so)")
    parser.add_argument("--option", action="append", default=[], metavar="AUGMENTATION.KEY=VALUE",
                        help="an augmentation option, value in TOML syntax, e.g. --option standard.padding=4 "
                             "--option cutout.size=16 --option mixup.alpha=0.2 (repeatable; default: the "
                             f"recipe's {role}.augmentation_options, with pad-crop and cutout sizes scaled "
                             "to the image when the data is not the recipe's)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --output file (default: refuse)")


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
    study.add_argument("--teacher-epochs", type=int, default=None,
                       help="override teacher.epochs (default: the recipe's); milestones scale with it")
    study.add_argument("--student-epochs", type=int, default=None,
                       help="override student.epochs (default: the recipe's); milestones scale with it")
    study.add_argument("--keep-milestones", action="store_true",
                       help="when epochs are changed, keep the recipe's learning-rate milestones instead of "
                            "scaling them with the epochs (default: scale them, and say so)")
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
    study.add_argument("--no-teacher-cache", action="store_true",
                       help="run each teacher on every batch even where it sees each image as loaded "
                            "(default: its logits of the training split are computed once; teacher_cache "
                            "= false in a recipe)")
    study.add_argument("--no-group", action="store_true",
                       help="train every student cell alone (default: student cells sharing a teacher and an "
                            "input stream train together, the teacher running once per batch; same results)")
    study.add_argument("--data-format", default=None, choices=("auto", "channels_last", "channels_first"),
                       help="layout inside every model: auto (default: channels-first on the PyTorch backend "
                            "where a model offers it, faster there; channels-last elsewhere), channels_last or "
                            "channels_first; float round-off only (data_format in a recipe)")
    study.add_argument("--tensorboard", action="store_true",
                       help="also write TensorBoard logs per cell to runs/<name>/logs/<cell>/tensorboard "
                            "(every cell writes logs/<cell>/history.csv)")
    study.add_argument("--list-recipes", action="store_true", help="list the packaged recipes and exit")
    _verbosity(study)
    _scaling_flags(study)
    _executor_flags(study)
    study.set_defaults(handler=cmd_study)

    teacher = commands.add_parser(
        "train-teacher", parents=[parent], help="train one teacher and save it (.keras)",
        description="Train one teacher with an augmentation recipe and save it as .keras. Optimizer, "
                    "schedule and augmentation options come from the recipe's [teacher] table; flags "
                    "override. Rerunning with the same --output continues an interrupted run.")
    teacher.add_argument("--model", required=True, help="model name (see keras_mixkd.models.list_models())")
    teacher.add_argument("--augmentation", default="none", help="augmentation, e.g. mixup or standard+mixup")
    _training_flags(teacher, "teacher")
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
    distill.add_argument("--loss", choices=("kd", "standardized", "lskd", "dkd"), default="kd")
    distill.add_argument("--temperature", type=float, default=4.0)
    distill.add_argument("--student-loss-weight", type=float, default=0.1,
                         help="weight w of CE in w*CE + (1-w)*KD (0.1: CIFAR-100 benchmark; 0.5: study A)")
    distill.add_argument("--augmentation", default="none",
                         help="mixing at distillation time, e.g. partial_mixup or standard+mixup")
    distill.add_argument("--fraction", type=float, default=None, help="fraction mixed by partial_mixup")
    distill.add_argument("--alpha", type=float, default=None, help="Beta concentration of mixup/cutmix")
    distill.add_argument("--teacher-sees", choices=("same", "clean"), default="same",
                         help="what the teacher sees when the batch is mixed: the same mixed batch or the "
                              "clean one")
    distill.add_argument("--teacher-outputs", choices=("logits", "probabilities"), default="logits",
                         help="what the teacher's file outputs: logits, or probabilities (a final softmax)")
    _training_flags(distill, "student")
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

    lister = commands.add_parser(
        "list", parents=[parent], help="list the models, augmentations, recipes or data sets",
        description="One line per name, with what it is: models and augmentations to name in recipes and "
                    "flags, recipes with the path of their TOML file (copy it to make your own), data sets.")
    lister.add_argument("what", choices=LISTS, help="what to list")
    lister.set_defaults(handler=cmd_list)
    _state_defaults(parser)
    return parser


LISTS = ("models", "augmentations", "recipes", "datasets")


def _state_defaults(parser):
    """Make every option's help say its default (appended where the text does not already)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _state_defaults(sub)
            continue
        if not action.option_strings or action.help == argparse.SUPPRESS:
            continue
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        action.help = action.help or ""
        if "default" in action.help.lower() or action.required:
            continue
        if isinstance(action, argparse._StoreTrueAction):
            text = "off"
        elif action.default in (None, [], ()):
            text = "none"
        else:
            text = action.default
        action.help = f"{action.help} (default: {text})".strip()


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
        if getattr(args, "threads", None) is not None:
            from keras_mixkd.study.executors.threads import thread_environment

            # Before TensorFlow or JAX starts its thread pool (fixed from then on).
            os.environ.update(thread_environment(args.threads, os.environ["KERAS_BACKEND"]))
        # Before anything imports JAX: --devices N asks JAX for N virtual CPU devices first.
        scope = _training_scope(args)
        if args.command not in ("report", "list"):
            import_tensorflow_quietly()
        with scope:
            return args.handler(args) or 0
    except KeyboardInterrupt:
        print("keras-mixkd: interrupted; rerun the same command to continue.", file=sys.stderr)
        return 130
    except (CommandError, ValueError, TypeError, FileNotFoundError, OSError) as error:
        if getattr(args, "traceback", False):
            raise
        from keras_mixkd._checks import explain_error

        print(f"keras-mixkd {args.command}: error: {cli_advice(explain_error(error))}", file=sys.stderr)
        return 2


# Lines TensorFlow's C++ runtime writes to stderr at import and first device use
# (before absl logging is set up, so TF_CPP_MIN_LOG_LEVEL does not hide them):
# start-up information and "no GPU here" errors of a CPU-only machine.
_STARTUP_NOISE = (
    "All log messages before absl::InitializeLog()",
    "oneDNN custom operations are on",
    "Could not find cuda drivers",
    "cuInit",
    "Unable to register cuDNN factory",
    "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory",
    "computation placer already registered",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions",
    "TF-TRT Warning",
    "Skipping registering GPU devices",
    "cudart_stub.cc",
    "cuda_driver.cc",
    "cuda_diagnostics.cc",
    "kernel driver does not appear to be running",
    "retrieving CUDA diagnostic information",
    "hostname:",
)


def is_startup_noise(line):
    """True for a line of TensorFlow's start-up chatter (see `_STARTUP_NOISE`), False for anything else."""
    return any(marker in line for marker in _STARTUP_NOISE)


def import_tensorflow_quietly():
    """Import TensorFlow and list its devices with its start-up chatter filtered out of stderr.

    Every backend's data pipeline runs on tf.data, so every command that trains
    or loads a model imports TensorFlow. Its C++ start-up lines go straight to
    file descriptor 2; they are caught in a temporary file and every line that
    is not known noise is written back to stderr, so real warnings still show.
    TensorFlow's Python logger is set to errors only (no retracing warnings).
    """
    import logging
    import tempfile

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if "tensorflow" in sys.modules:
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (an embedding host)
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # where a CPU-only machine logs its cuInit failure
        except ImportError:
            pass  # Keras's own import reports it
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        text = capture.read().decode("utf-8", errors="replace")
    kept = [line for line in text.splitlines() if line.strip() and not is_startup_noise(line)]
    if kept:
        print("\n".join(kept), file=sys.stderr)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


# Library messages whose advice is Python's, and what the command line's user types instead.
_CLI_ADVICE = (
    ("Pass teacher_outputs='probabilities'", "Pass --teacher-outputs probabilities"),
    ("Use None to turn it off.", "To turn it off, leave that augmentation out."),
)


def cli_advice(message):
    """`message` with Python-only advice replaced by the flags that do the same."""
    for python, flags in _CLI_ADVICE:
        message = message.replace(python, flags)
    return message


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
    if getattr(args, "no_teacher_cache", False):
        overrides["teacher_cache"] = False
    if getattr(args, "data_format", None) is not None:
        overrides["data_format"] = args.data_format
    for text in args.set:
        key, value = parse_override(text)
        overrides[key] = value
    config = load_recipe(args.recipe, smoke=args.smoke, overrides=overrides)
    for role in ("teacher", "student"):
        if f"{role}.epochs" not in overrides or f"{role}.optimizer.milestones" in overrides:
            continue  # epochs not changed, or milestones given explicitly: used as given
        _fit_milestones(config[role], _milestone_epochs(args.recipe, args.smoke, role), role,
                        args.keep_milestones)
    return config


def _milestone_epochs(recipe, smoke, role):
    """The number of epochs a recipe's milestones were written for.

    The full recipe's, unless its [smoke] table sets milestones of its own (a smoke
    table usually shortens the epochs and leaves the full schedule's milestones).
    """
    from keras_mixkd.study.config import load_recipe

    full = load_recipe(recipe)[role]
    if not smoke:
        return full["epochs"]
    shrunk = load_recipe(recipe, smoke=True)[role]
    same = shrunk["optimizer"]["milestones"] == full["optimizer"]["milestones"]
    return full["epochs"] if same else shrunk["epochs"]


def _fit_milestones(table, recipe_epochs, role, keep, flag="--keep-milestones"):
    """Scale `table["optimizer"]["milestones"]` when `table["epochs"]` is not the recipe's, and say so."""
    from keras_mixkd.study.config import scale_milestones

    epochs, milestones = table["epochs"], table["optimizer"]["milestones"]
    if epochs == recipe_epochs or not milestones:
        return
    if keep:
        late = [m for m in milestones if m >= epochs]
        if late:
            print(f"warning: {role} runs {epochs} epochs; its learning-rate milestones {late} (kept by "
                  f"{flag}) come at or after the last epoch and never take effect.", file=sys.stderr)
        return
    scaled = scale_milestones(milestones, recipe_epochs, epochs)
    table["optimizer"]["milestones"] = scaled
    print(f"note: {role}: {epochs} epochs instead of the recipe's {recipe_epochs}: learning-rate milestones "
          f"{milestones} scaled to {scaled} ({flag} keeps them as they are)")


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
    from keras_mixkd.study.runner import select_cells

    all_cells = enumerate_cells(config)
    cells = select_cells(all_cells, only)
    check_only(all_cells, only, cells)
    if args.dry_run:
        from keras_mixkd.study import check_study

        check_data_name(config["data"])
        check_study(config, args.runs_dir, name)  # all a real run checks before training
        for index, cell in enumerate(cells, 1):
            print(f"cell {index}/{len(cells)} · {cell.describe()}")
        return 0
    from keras_mixkd.study.runner import run_study

    run_study(config, runs_dir=args.runs_dir, name=name, only=only, report=not args.no_report,
              verbose=_fit_verbose(args), devices=args.devices, precision=args.precision,
              tensorboard=args.tensorboard,
              executor=args.executor, address=args.address, workers=args.workers,
              cpus_per_cell=args.cpus_per_cell, gpus_per_cell=args.gpus_per_cell, threads=args.threads,
              group_students=not args.no_group)
    return 0


def check_only(cells, only, chosen):
    """Refuse `--only` values that match no cell of the grid, listing the valid ones."""
    for field, values in only.items():
        valid = []
        for cell in cells:
            value = str(getattr(cell, field))
            if getattr(cell, field) != "" and value not in valid:
                valid.append(value)
        unknown = [v for v in values if v not in valid]
        if unknown:
            raise CommandError(
                f"--only {field}={','.join(values)}: {', '.join(map(repr, unknown))} matches no cell of "
                f"this study; valid values of {field}: {', '.join(valid) or 'none'}."
            )
    if only and not chosen:
        given = " ".join(f"{field}={','.join(values)}" for field, values in only.items())
        raise CommandError(f"--only {given}: together these match no cell of this study; loosen one of "
                           "them (see --dry-run).")


def check_data_name(data):
    """Refuse an unknown data set name, or a missing file or folder, as loading would."""
    from keras_mixkd.data import list_datasets

    if data["dataset"] not in list_datasets():
        raise CommandError(f"Unknown data set {data['dataset']!r} (data.dataset / --dataset); known: "
                           f"{', '.join(list_datasets())}.")
    if data["dataset"] in ("npz", "folder"):
        if not data["path"]:
            raise CommandError(f"The {data['dataset']!r} data set needs --data-path (data.path in a recipe).")
        if not os.path.exists(data["path"]):
            raise CommandError(f"--data-path {data['path']}: no such file or folder.")


def _fit_verbose(args):
    """fit's verbose: quiet by default; no carriage-return bars when stdout is not a terminal."""
    if args.verbose == 1 and not _is_terminal(sys.stdout):
        return 2
    return args.verbose


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


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


def _check_output(args):
    """Refuse an existing --output without --overwrite, and an --output in a folder that cannot be written."""
    output = args.output
    if os.path.isdir(output):
        raise CommandError(f"--output {output} is a folder; give the path of the .keras file to write.")
    if os.path.exists(output) and not args.overwrite:
        raise CommandError(f"--output {output} already exists; pass --overwrite to replace it, or choose "
                           "another path.")
    folder = os.path.dirname(os.path.abspath(output))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise CommandError(f"--output {output}: cannot create its folder {folder} ({error.strerror}).") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CommandError(f"--output {output}: its folder {folder} is not writable; write elsewhere.")
    if args.epochs is not None and args.epochs < 1:
        raise CommandError(f"--epochs must be a whole number >= 1, got {args.epochs}.")


def _augmentation_options(args, config, role, data, names):
    """The augmentation options of a single-model command: the recipe's, fitted to the data, then --option."""
    from keras_mixkd.study.config import parse_override
    from keras_mixkd.study.config import split_augmentation

    options = {name: dict(values) for name, values in config[role]["augmentation_options"].items()}
    recipe_data = config["data"]
    if (data["dataset"], data["path"], list(data["image_size"] or [])) != (
            recipe_data["dataset"], recipe_data["path"], list(recipe_data["image_size"] or [])):
        # The recipe's pixel sizes are its data's (1 px / 4 px on 8x8 digits): on other data let the
        # layers scale them with the image (pad-crop side / 8, cutout side / 2: 4 px and 16 px at 32x32).
        options.get("standard", {}).pop("padding", None)
        options.get("cutout", {}).pop("size", None)
    for text in args.option:
        key, value = parse_override(text)
        if "." not in key:
            raise CommandError(f"--option expects AUGMENTATION.KEY=VALUE (e.g. mixup.alpha=0.2), got {text!r}.")
        name, option = key.split(".", 1)
        options.setdefault(name, {})[option] = value
    used = [part for name in names for part in split_augmentation(name)]
    unused = sorted(set(n for n, _ in (t.split("=", 1)[0].split(".", 1) for t in args.option)) - set(used))
    if unused:
        raise CommandError(f"--option names {', '.join(unused)}, which this run does not use (augmentation: "
                           f"{'+'.join(used) or 'none'}).")
    return {name: values for name, values in options.items() if name in used}


def _epochs(args, config, role):
    """--epochs or the recipe's, with the milestones fitted to them (changes config in place)."""
    table = config[role]
    recipe_epochs = table["epochs"]
    if args.epochs is not None and args.epochs != recipe_epochs:
        table["epochs"] = args.epochs
        _fit_milestones(table, recipe_epochs, role, args.keep_milestones)
    return table["epochs"]


def _run_in_work_dir(output, train):
    """Run `train(work_dir)`; a failure that leaves nothing to continue from removes the work folder."""
    import shutil

    work_dir = output + ".work"
    os.makedirs(work_dir, exist_ok=True)
    try:
        return train(work_dir)
    except BaseException:
        if not any(files for _, _, files in os.walk(work_dir)):
            shutil.rmtree(work_dir, ignore_errors=True)  # nothing to resume from
        raise


def _save_run(model, record, output, extra):
    import shutil

    from keras_mixkd.study import atomic

    record = {**record, **extra}
    with atomic.atomic_path(output) as tmp:
        model.save(tmp)
    atomic.write_json(output + ".json", record)
    shutil.rmtree(output + ".work", ignore_errors=True)
    _print_record(record, output)


def _data_record(splits, data, options):
    """What a record JSON says of its data and augmentation, so the run can be read and redone."""
    import keras

    return {
        "dataset": data["dataset"], "data_path": data["path"] or None, "num_classes": int(splits.num_classes),
        "class_names": [str(name) for name in splits.class_names], "input_shape": list(splits.input_shape),
        "normalization": {"mean": list(map(float, splits.normalization[0])),
                          "std": list(map(float, splits.normalization[1]))},
        "augmentation_options": options, "backend": keras.backend.backend(),
    }


def cmd_train_teacher(args):
    from keras_mixkd.study.training import prepare_data
    from keras_mixkd.study.training import train_teacher

    _check_output(args)
    config, data = _data_config(args)
    epochs = _epochs(args, config, "teacher")
    options = _augmentation_options(args, config, "teacher", data, [args.augmentation])
    splits = prepare_data(data)

    def train(work_dir):
        return train_teacher(
            splits, args.model, args.augmentation, seed=args.seed, epochs=epochs,
            optimizer=config["teacher"]["optimizer"], batch_size=data["batch_size"],
            augmentation_options=options, measure=config["measure"], work_dir=work_dir,
            verbose=_fit_verbose(args))

    model, record, _ = _run_in_work_dir(args.output, train)
    _save_run(model, record, args.output, _data_record(splits, data, options))
    return 0


def cmd_distill(args):
    from keras_mixkd.study.runner import load_teacher
    from keras_mixkd.study.training import distill_student
    from keras_mixkd.study.training import prepare_data

    _check_output(args)
    if not os.path.isfile(args.teacher):
        raise CommandError(f"--teacher {args.teacher}: no such file (give a teacher's .keras file, e.g. one "
                           "written by train-teacher).")
    if args.alpha is not None and not args.alpha > 0:
        raise CommandError(f"--alpha must be > 0 (the Beta(alpha, alpha) concentration), got {args.alpha:g}; "
                           "to distil without mixing, leave mixup / cutmix out of --augmentation.")
    if args.fraction is not None and not 0 < args.fraction <= 1:
        raise CommandError(f"--fraction must lie in (0, 1], got {args.fraction:g}.")
    config, data = _data_config(args)
    epochs = _epochs(args, config, "student")
    splits = prepare_data(data)
    teacher = load_teacher(args.teacher, splits.num_classes)
    names = [part for part in args.augmentation.split("+")]
    options = _augmentation_options(args, config, "student", data, [args.augmentation])
    mixing = [n for n in names if n in ("mixup", "cutmix", "partial_mixup", "mixup_cutmix")]
    for name in mixing:
        if args.fraction is not None and name == "partial_mixup":
            options.setdefault(name, {})["fraction"] = args.fraction
        if args.alpha is not None:
            options.setdefault(name, {})["alpha"] = args.alpha
    recipe = {
        "name": "cli", "loss": args.loss, "temperature": args.temperature,
        "student_loss_weight": args.student_loss_weight, "augmentation": [args.augmentation],
        "augmentation_options": options, "teacher_sees": args.teacher_sees,
        "teacher_outputs": args.teacher_outputs,
    }

    def train(work_dir):
        return distill_student(
            splits, teacher, args.student, recipe, seed=args.seed, epochs=epochs,
            optimizer=config["student"]["optimizer"], batch_size=data["batch_size"], measure=config["measure"],
            work_dir=work_dir, verbose=_fit_verbose(args))

    distiller, record, _ = _run_in_work_dir(args.output, train)
    card = record.get("model_card") or {}
    if card.get("distilled_from") is not None:
        card["distilled_from"]["teacher_file"] = os.path.abspath(args.teacher)
        teacher_card = _read_card(args.teacher)
        if teacher_card:
            card["distilled_from"].update(teacher_model=teacher_card.get("model"),
                                          teacher_trained=teacher_card.get("trained"))
    extra = _data_record(splits, data, options)
    extra.update(teacher_file=os.path.abspath(args.teacher), teacher_outputs=args.teacher_outputs,
                 teacher_sees=args.teacher_sees)
    _save_run(distiller.student, record, args.output, extra)
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
        import keras_mixkd.distill  # noqa: F401  (registers the library's saved classes)
        import keras_mixkd.models  # noqa: F401
        import keras_mixkd.optimizers  # noqa: F401

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
    chosen = ("val", "test") if args.split == "both" else (args.split,)
    if args.split == "both" and len(splits.y_val) == 0:
        # Trained on the whole training split (validation_fraction = 0): there is no val to measure.
        print("val: none (data.validation_fraction = 0: no validation split); the test split only")
        chosen = ("test",)
    for split in chosen:
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
    _check_export_paths(args.model, args.output)
    try:
        result = export_student(args.model, args.output, overwrite=args.overwrite,
                                input_dtype=args.input_dtype)
    except RuntimeError as error:  # A failed export or verification: one clear line.
        raise CommandError(str(error)) from error
    print(result)
    return 0


def _check_export_paths(model, output):
    """Name the file or the target folder when export cannot start (not a temporary folder)."""
    from keras_mixkd._checks import keras_file_problem

    if not os.path.exists(model):
        raise CommandError(f"No model file at {model}.")
    problem = os.path.isfile(model) and keras_file_problem(model)
    if problem:
        raise CommandError(f"{model} exists but cannot be loaded: {problem}.")
    parent = os.path.dirname(os.path.abspath(output))
    existing = parent
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
        raise CommandError(f"Cannot write the SavedModel {output}: {existing} is not a writable folder; "
                           "export elsewhere.")


_DATASETS = {
    "digits": "scikit-learn's 8x8 handwritten digits, 10 classes, embedded (no download)",
    "cifar10": "CIFAR-10, 32x32 colour, 10 classes (keras.datasets; downloads once)",
    "cifar100": "CIFAR-100, 32x32 colour, 100 classes (keras.datasets; downloads once)",
    "folder": "your images: --data-path DIR with one subfolder per class (or DIR/train and DIR/test)",
    "npz": "your arrays: --data-path FILE.npz with x_train, y_train, x_test, y_test (optional class_names)",
}


def _model_description(name):
    import re

    families = [
        (r"resnet(\d+)$", "CIFAR ResNet-{0} (He et al.; 16/32/64 channels)"),
        (r"resnet(\d+)x4$", "CIFAR ResNet-{0}, 4x wider (64/128/256 channels)"),
        (r"wrn_(\d+)_(\d+)$", "Wide ResNet, depth {0}, width {1}"),
        (r"vgg(\d+)$", "VGG-{0} with batch norm (CIFAR)"),
    ]
    fixed = {
        "resnet18": "ResNet-18 with a CIFAR stem (study A's teacher)",
        "mobilenetv2": "MobileNetV2, half width (CIFAR distillation benchmark student)",
        "shufflev1": "ShuffleNetV1 (CIFAR)", "shufflev2": "ShuffleNetV2 (CIFAR)",
        "lenet5": "LeNet-5 (study A's student; images >= 16x16)",
        "alexnet": "AlexNet for small images (study A's student; images >= 29x29)",
        "digits_cnn": "small CNN for the embedded 8x8 digits (teacher)",
        "digits_cnn_small": "tiny CNN for the embedded 8x8 digits (student)",
    }
    if name in fixed:
        return fixed[name]
    for pattern, text in families:
        match = re.match(pattern, name)
        if match:
            return text.format(*match.groups())
    return ""


def list_entries(what):
    """`[(name, description)]` of `keras-mixkd list WHAT`."""
    if what == "models":
        from keras_mixkd.models import list_models

        return [(name, _model_description(name)) for name in list_models()]
    if what == "augmentations":
        from keras_mixkd.augment import describe_augmentation
        from keras_mixkd.augment import list_augmentations

        return [(name, describe_augmentation(name)) for name in list_augmentations()]
    if what == "recipes":
        import tomllib

        from keras_mixkd.study.config import list_recipes
        from keras_mixkd.study.config import recipe_path

        entries = []
        for name in list_recipes():
            path = recipe_path(name)
            with open(path, "rb") as f:
                description = tomllib.load(f).get("description", "")
            entries.append((name, f"{description} · {path}"))
        return entries
    from keras_mixkd.data import list_datasets

    return [(name, _DATASETS.get(name, "")) for name in list_datasets()]


def cmd_list(args):
    entries = list_entries(args.what)
    width = max(len(name) for name, _ in entries)
    for name, description in entries:
        print(f"{name.ljust(width)}  {description}".rstrip())
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

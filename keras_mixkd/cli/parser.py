"""The flags of `keras-mixkd`: `build_parser()` (every command has `--help`)."""

import argparse

from keras_mixkd.catalog import LISTS
from keras_mixkd.precision import PRECISION_POLICIES
from keras_mixkd.startup import BACKENDS
from keras_mixkd.version import __version__


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
    parser.add_argument("--devices", type=int, default=1,
                        help="train data-parallel on N accelerators (JAX, TensorFlow); the batch size must "
                             "divide by N. Default: 1")
    parser.add_argument("--virtual-devices", action="store_true",
                        help="let --devices N split the CPU into N virtual devices (a trial of the "
                             "data-parallel path on a machine without accelerators: no faster)")
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
    parser.add_argument("--image-size", type=_image_size, default=None, metavar="SIZE or HEIGHTxWIDTH",
                        help="resize every image, e.g. 32 or 24x32 (data.image_size; default: the recipe's, "
                             "which for a folder of images is 32x32)")


def _input_normalized_flag(parser, what):
    parser.add_argument("--input-normalized", choices=("auto", "yes", "no"), default="auto",
                        help=f"what {what} expects when it has no normalisation layer inside (a model of your own): "
                             "no = images as loaded, in [0, 1]; yes = images normalised with the data's "
                             "statistics; auto = yes, with a warning. A model keras-mixkd trained normalises "
                             "inside and takes images in [0, 1] whatever this says (default: auto)")


def _image_size(text):
    """`--image-size 32` -> [32, 32]; `24x32` -> [24, 32]."""
    parts = text.lower().split("x")
    try:
        size = [int(part) for part in parts]
    except ValueError:
        size = []
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) < 1:
        raise argparse.ArgumentTypeError(f"expected SIZE or HEIGHTxWIDTH, positive whole numbers (e.g. 32 or "
                                         f"24x32), got {text!r}")
    return size


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
    parser.add_argument("--batch-size", type=int, default=None,
                        help="examples per training batch (default: the recipe's data.batch_size)")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help=f"the optimizer's learning rate, for every model (default: the recipe's "
                             f"{role}.optimizer.learning_rate and model_learning_rates)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override any recipe setting, value in TOML syntax, e.g. --set "
                             f"{role}.optimizer.momentum=0.8 (repeatable; the flags above win)")


def _single_model_flags(parser, role, output_help):
    """The flags `train-teacher` and `distill` share: training, seed, output, data, scaling, verbosity."""
    _training_flags(parser, role)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", required=True, help=output_help)
    _data_flags(parser)
    _scaling_flags(parser)
    _verbosity(parser)


def _saved_model_command(commands, parent, name, help, description, *, splits, split):
    """A command reading one saved model: its positional `model`, `--split` and `--json`."""
    command = commands.add_parser(name, parents=[parent], help=help, description=description)
    command.add_argument("model", help=".keras file")
    command.add_argument("--split", choices=splits, default=split)
    command.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    return command


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
    study.add_argument("--no-fixed-cost-cuts", action="store_true",
                       help="switch off the number-preserving cuts of each cell's fixed cost (to measure them; "
                            "RunOptions(fixed_cost_cuts=False))")
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

    teacher = commands.add_parser(
        "train-teacher", parents=[parent], help="train one teacher and save it (.keras)",
        description="Train one teacher with an augmentation recipe and save it as .keras. Optimizer, "
                    "schedule and augmentation options come from the recipe's [teacher] table; flags "
                    "override. Rerunning with the same --output continues an interrupted run.")
    teacher.add_argument("--model", required=True, help="model name (see keras_mixkd.models.list_models())")
    teacher.add_argument("--augmentation", default="none", help="augmentation, e.g. mixup or standard+mixup")
    _single_model_flags(teacher, "teacher", "path of the .keras file to write")

    distill = commands.add_parser(
        "distill", parents=[parent], help="distil one student from a saved teacher",
        description="Distil a student from a saved teacher (.keras) and save the student (.keras). "
                    "Optimizer and schedule come from the recipe's [student] table; flags override.")
    distill.add_argument("--teacher", required=True, help="the teacher's .keras file (a saved Distiller: its student)")
    distill.add_argument("--student", required=True, help="student model name")
    distill.add_argument("--loss", choices=("kd", "standardized", "lskd", "dkd"), default="kd")
    distill.add_argument("--temperature", type=float, default=4.0)
    distill.add_argument("--student-loss-weight", type=float, default=0.1,
                         help="weight w of CE in w*CE + d*KD (0.1: CIFAR-100 benchmark; 0.5: study A)")
    distill.add_argument("--distillation-loss-weight", type=float, default=None,
                         help="weight d of the distillation loss in w*CE + d*KD, >= 0 (default: 1 - w; "
                              "logit-standardised KD's reference: --loss standardized --student-loss-weight 0.1 "
                              "--distillation-loss-weight 9)")
    distill.add_argument("--augmentation", default="none",
                         help="mixing at distillation time, e.g. partial_mixup or standard+mixup")
    distill.add_argument("--fraction", type=float, default=None, help="fraction mixed by partial_mixup")
    distill.add_argument("--alpha", type=float, default=None, help="Beta concentration of mixup/cutmix")
    distill.add_argument("--teacher-sees", choices=("same", "clean"), default="same",
                         help="what the teacher sees when the batch is mixed: the same mixed batch or the "
                              "clean one")
    distill.add_argument("--teacher-outputs", choices=("logits", "probabilities"), default="logits",
                         help="what the teacher's file outputs: logits, or probabilities (a final softmax)")
    _single_model_flags(distill, "student", "path of the student's .keras file")
    _input_normalized_flag(distill, "the teacher")

    evaluate = _saved_model_command(
        commands, parent, "evaluate", "accuracy and calibration of a saved model",
        "Accuracy and expected calibration error of a saved model (.keras; a distiller is evaluated through "
        "its student) on the validation and test splits.", splits=("val", "test", "both"), split="both")
    _data_flags(evaluate)
    _input_normalized_flag(evaluate, "the model")

    measure = _saved_model_command(
        commands, parent, "measure", "latent-space measures of a saved model (CD, GDV, ...)",
        "Class-discrimination and the other latent-space and output measures of a saved model's penultimate "
        "features on a split of a data set.", splits=("train", "val", "test"), split="test")
    measure.add_argument("--measures", nargs="+", default=None,
                         help="names (default: class_discrimination gdv class_separation nc1 accuracy "
                              "expected_calibration_error negative_log_likelihood mean_entropy logit_std)")
    measure.add_argument("--layer", default=None, help="feature layer name (default: 'features')")
    _data_flags(measure)
    _input_normalized_flag(measure, "the model")

    calibrate = commands.add_parser(
        "calibrate", parents=[parent], help="calibrate a saved model by temperature scaling",
        description="Fit one temperature T on the validation split by minimising its negative log-likelihood "
                    "(temperature scaling, Guo et al., ICML 2017) and save a model whose output is its logits / T "
                    "(a TemperatureScaling layer), with ECE and NLL before and after (validation and test "
                    "splits) in its model card.")
    calibrate.add_argument("model", help=".keras file (a saved distiller: its student)")
    calibrate.add_argument("--output", required=True, help="path of the calibrated model's .keras file")
    calibrate.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    calibrate.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    calibrate.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                           help="override any recipe setting, value in TOML syntax, e.g. --set "
                                "data.validation_fraction=0.2 (repeatable)")
    _data_flags(calibrate)
    _input_normalized_flag(calibrate, "the model")

    export = commands.add_parser(
        "export", parents=[parent], help="export a distilled student as a SavedModel, ONNX or LiteRT file",
        description="Export the student of a saved distiller (or a saved student, teacher or model) as a "
                    "TensorFlow SavedModel (its serving_default signature takes `images` and gives `output_0`), "
                    "an ONNX file or a LiteRT file (OUTPUT/model.onnx, OUTPUT/model.tflite, beside the model card "
                    "OUTPUT/metadata.json), and check it in a fresh process in its runtime against the Keras "
                    "model; print its parameters, size, latency and (data known) test accuracy. See docs/ship.md.")
    export.add_argument("model", help=".keras file of a distiller, a student or any one-input model")
    export.add_argument("output", help="folder to write (the SavedModel, or the folder of model.onnx / "
                                       "model.tflite and metadata.json)")
    export.add_argument("--format", default="saved_model", metavar="FORMAT",
                        help="saved_model, onnx or litert (default: saved_model)")
    export.add_argument("--quantize", default="none", metavar="QUANTIZE",
                        help="litert only: none, float16 (weights in float16) or int8 (post-training "
                             "quantisation calibrated on 200 training images; needs the data) (default: none)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    export.add_argument("--no-verify", dest="verify", action="store_false",
                        help="write the export without checking it in a fresh process (no agreement, latency "
                             "or test accuracy is measured); export_student's verify=False")
    export.add_argument("--input-dtype", choices=("float32", "uint8"), default="float32",
                        help="what the SavedModel takes: float32 images in [0, 1] (default) or raw uint8 "
                             "pixels in 0-255 (saved_model only)")
    _input_normalized_flag(export, "the model")
    # The data: the statistics --input-normalized yes puts inside, int8's training images, the test
    # accuracy (default: the runs folder of MODEL, else the data set its model card names).
    _data_flags(export)
    export.add_argument("--tolerance", type=float, default=None,
                        help="largest accepted |export - Keras| relative to the outputs' scale: the bound "
                             "is TOLERANCE x max(1, max |output|) (default: 1e-5 for a float32 SavedModel, 1e-4 "
                             "for ONNX and LiteRT, 1e-2 for LiteRT float16; 5e-2 under mixed_float16, 0.25 under "
                             "mixed_bfloat16)")

    compression = commands.add_parser(
        "compression", parents=[parent], help="the compression table of a study run (every format)",
        description="Export the teacher and students of a finished study run (its first seed) in each format, "
                    "verify each in its runtime, and write RUN/compression.json: parameters, size, CPU latency "
                    "and test accuracy per format; the run's report.md then shows \"What the compression "
                    "bought\". Exports go to RUN/export/<cell>/<format>/.")
    compression.add_argument("run", help="a runs folder written by `keras-mixkd study` (runs/<name>)")
    compression.add_argument("--format", action="append", default=None, metavar="FORMAT[:QUANTIZE]",
                             help="a format to export, repeatable: saved_model, onnx, litert, litert:float16, "
                                  "litert:int8 (default: saved_model, onnx, litert, litert:int8)")
    compression.add_argument("--key", action="append", default=None,
                             help="a cell to export, repeatable (default: every cell of the first seed)")

    report = commands.add_parser(
        "report", parents=[parent], help="tables and plots of a runs folder",
        description="Write report.md and plots/*.png of a runs folder (finished or not) and print the "
                    "main table. Needs no Keras.")
    report.add_argument("run_dir", help="runs/<name>")
    report.add_argument("--projection", choices=("pca", "tsne"), default=None,
                        help="2-D projection of the features (default: the study's, pca)")

    lister = commands.add_parser(
        "list", parents=[parent], help="list the models, augmentations, recipes or data sets",
        description="One line per name, with what it is: models and augmentations to name in recipes and "
                    "flags, recipes with the path of their TOML file (copy it to make your own), data sets.")
    lister.add_argument("what", choices=LISTS, help="what to list")
    _state_defaults(parser)
    return parser


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

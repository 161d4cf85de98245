"""The `keras-mixkd` command line: a face over the library, nothing more.

    keras-mixkd [--backend {tensorflow,jax,torch}] COMMAND [options]

Commands: study (the main job), train-teacher, distill, evaluate, measure,
calibrate, export, compression, report, list. `keras-mixkd COMMAND --help` describes each. Each
command reads its flags, calls the library function of the same job (named in
its handler) and prints what it returns; errors are the library's own.

The backend is chosen by `--backend` or by the `KERAS_BACKEND` environment
variable, and set before Keras is imported: no module imported here imports
Keras at its top.
"""

import os
import sys

from keras_mixkd._checks import explain_error
from keras_mixkd.cli.parser import build_parser
from keras_mixkd.catalog import list_entries
from keras_mixkd.export import COMPRESSION_FILE
from keras_mixkd.export import check_export_options
from keras_mixkd.export import compression_table
from keras_mixkd.export import export_student
from keras_mixkd.export.compression import DEFAULT_FORMATS
from keras_mixkd.startup import import_tensorflow_quietly
from keras_mixkd.startup import imports_tensorflow
from keras_mixkd.startup import is_startup_noise  # noqa: F401  (public here since the start)
from keras_mixkd.startup import select_backend
from keras_mixkd.startup import training_scope_for
from keras_mixkd.study import atomic
from keras_mixkd.study.config import list_recipes
from keras_mixkd.study.executors.threads import apply_thread_environment
from keras_mixkd.study.milestones import as_overrides
from keras_mixkd.study.milestones import study_config
from keras_mixkd.study.check import check_study
from keras_mixkd.study.selection import choose_cells
from keras_mixkd.study.selection import parse_only
from keras_mixkd.study.single_run import RunSettings
from keras_mixkd.study.single_run import calibrate_file
from keras_mixkd.study.single_run import distill_file
from keras_mixkd.study.single_run import distillation_recipe
from keras_mixkd.study.single_run import evaluate_file
from keras_mixkd.study.single_run import export_data
from keras_mixkd.study.single_run import export_normalization
from keras_mixkd.study.single_run import measure_file
from keras_mixkd.study.single_run import train_teacher_file

# What a command refuses with one line (exit status 2); anything else is a bug and shows its traceback.
USER_ERRORS = (ValueError, TypeError, OSError)


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
    # A failed export (a RuntimeError of export_student) is the user's to act on too.
    expected = USER_ERRORS + ((RuntimeError,) if args.command in ("export", "compression") else ())
    try:
        select_backend(getattr(args, "backend", None))
        if getattr(args, "threads", None) is not None:
            # Before TensorFlow or JAX starts its thread pool (fixed from then on).
            apply_thread_environment(args.threads, os.environ["KERAS_BACKEND"])
        # Before anything imports JAX: --devices N asks JAX for N virtual CPU devices first.
        scope = training_scope_for(args.command, getattr(args, "devices", 1), getattr(args, "precision", "float32"),
                                   virtual_devices=getattr(args, "virtual_devices", False))
        if imports_tensorflow(args.command, getattr(args, "what", None)):
            import_tensorflow_quietly()
        with scope:
            return HANDLERS[args.command](args) or 0
    except KeyboardInterrupt:
        print("keras-mixkd: interrupted; rerun the same command to continue.", file=sys.stderr)
        return 130
    except expected as error:
        if getattr(args, "traceback", False):
            raise
        print(f"keras-mixkd {args.command}: error: {explain_error(error)}", file=sys.stderr)
        return 2


# ---------------------------------------------------------------------------
# Commands: flags in, one library call, its result printed
# ---------------------------------------------------------------------------


def study_config_from_args(args):
    """The study config of `keras-mixkd study`'s flags; prints the milestone notes (`milestones.study_config`)."""
    overrides = {key: value for key, value in (
        ("seeds", args.seeds), ("teacher.epochs", args.teacher_epochs), ("student.epochs", args.student_epochs),
        ("data.dataset", args.dataset), ("data.path", args.data_path),
        ("teacher_cache", False if getattr(args, "no_teacher_cache", False) else None),
        ("data_format", getattr(args, "data_format", None))) if value is not None}
    config, notes = study_config(args.recipe, smoke=args.smoke, overrides={**overrides, **as_overrides(args.set)},
                                 keep_milestones=args.keep_milestones)
    _print_notes(notes)
    return config


def cmd_study(args):
    if args.list_recipes:
        print("\n".join(list_recipes()))
        return 0
    config = study_config_from_args(args)
    name = args.name or (config["name"] + ("-smoke" if args.smoke else ""))
    only = parse_only(args.only)
    cells = choose_cells(config, only)
    if args.dry_run:
        check_study(config, args.runs_dir, name)  # all a real run checks before training
        for index, cell in enumerate(cells, 1):
            print(f"cell {index}/{len(cells)} · {cell.describe()}")
        return 0
    from keras_mixkd.study.run_options import RunOptions
    from keras_mixkd.study.runner import run_study  # imports Keras: after --backend is set

    options = RunOptions(verbose=_fit_verbose(args), devices=args.devices, precision=args.precision,
                         tensorboard=args.tensorboard, group_students=not args.no_group,
                         fixed_cost_cuts=not args.no_fixed_cost_cuts)
    run_study(config, runs_dir=args.runs_dir, name=name, only=only, report=not args.no_report, options=options,
              executor=args.executor, address=args.address, workers=args.workers,
              cpus_per_cell=args.cpus_per_cell, gpus_per_cell=args.gpus_per_cell, threads=args.threads)
    return 0


def _settings(args, role, augmentations=("none",)):
    """`RunSettings.from_recipe` of a single-model command's flags; prints its notes."""
    rate = getattr(args, "learning_rate", None)
    flags = {"data.batch_size": getattr(args, "batch_size", None), "data.image_size": args.image_size,
             f"{role}.optimizer.learning_rate": rate,
             f"{role}.optimizer.model_learning_rates": None if rate is None else {}}
    overrides = {**as_overrides(getattr(args, "set", ())),
                 **{key: value for key, value in flags.items() if value is not None}}
    settings = RunSettings.from_recipe(
        role, args.recipe, run_dir=args.run, dataset=args.dataset, data_path=args.data_path,
        epochs=getattr(args, "epochs", None), keep_milestones=getattr(args, "keep_milestones", False),
        options=getattr(args, "option", ()), augmentations=augmentations, overrides=overrides)
    _print_notes(settings.notes)
    return settings


def cmd_train_teacher(args):
    settings = _settings(args, "teacher", [args.augmentation])
    record = train_teacher_file(args.output, args.model, settings, augmentation=args.augmentation, seed=args.seed,
                                overwrite=args.overwrite, verbose=_fit_verbose(args))
    _print_record(record, args.output)
    return 0


def cmd_distill(args):
    settings = _settings(args, "student", [args.augmentation])
    recipe = distillation_recipe(
        loss=args.loss, temperature=args.temperature, student_loss_weight=args.student_loss_weight,
        augmentation=args.augmentation, augmentation_options=settings.augmentation_options, fraction=args.fraction,
        alpha=args.alpha, teacher_sees=args.teacher_sees, teacher_outputs=args.teacher_outputs,
        distillation_loss_weight=args.distillation_loss_weight)
    record = distill_file(args.output, args.teacher, args.student, settings, recipe, seed=args.seed,
                          overwrite=args.overwrite, verbose=_fit_verbose(args),
                          input_normalized=args.input_normalized)
    _print_record(record, args.output)
    return 0


def cmd_evaluate(args):
    results = evaluate_file(args.model, _settings(args, "student"), split=args.split,
                            input_normalized=args.input_normalized)
    if args.split == "both" and "val" not in results:
        print("val: none (data.validation_fraction = 0: no validation split); the test split only")
    for split, values in results.items():
        print(f"{split}: accuracy {100 * values['accuracy']:.2f} % · ECE {values['expected_calibration_error']:.4f} "
              f"· {values['examples']} examples")
    _maybe_json(args.json, results)
    return 0


def cmd_measure(args):
    settings = _settings(args, "student")
    values, examples = measure_file(args.model, settings, split=args.split, measures=args.measures, layer=args.layer,
                                    input_normalized=args.input_normalized)
    width = max(len(n) for n in values)
    print(f"{args.model} on the {args.split} split of {settings.data['dataset']} ({examples} examples):")
    for name, value in values.items():
        print(f"  {name.ljust(width)}  {value:.6g}")
    _maybe_json(args.json, values)
    return 0


def cmd_calibrate(args):
    info = calibrate_file(args.model, args.output, _settings(args, "student"), overwrite=args.overwrite,
                          input_normalized=args.input_normalized)
    print(f"saved {args.output} (record: {args.output}.json): outputs logits / T, "
          f"T = {info['temperature']:.6g} fitted on the validation split")
    for split in ("val", "test"):
        if split in info:
            values = info[split]
            print(f"{split}: ECE {values['ece_before']:.4f} -> {values['ece_after']:.4f} · NLL "
                  f"{values['nll_before']:.4f} -> {values['nll_after']:.4f} · {values['examples']} examples")
    _maybe_json(args.json, info)
    return 0


def cmd_export(args):
    check_export_options(args.format, args.quantize)
    normalization = export_normalization(args.model, args.input_normalized, recipe=args.recipe, run_dir=args.run,
                                         dataset=args.dataset, data_path=args.data_path, image_size=args.image_size)
    data = export_data(args.model, args.quantize, recipe=args.recipe, run_dir=args.run, dataset=args.dataset,
                       data_path=args.data_path, image_size=args.image_size)
    print(export_student(args.model, args.output, overwrite=args.overwrite, verify=args.verify,
                         input_dtype=args.input_dtype, normalization=normalization, tolerance=args.tolerance,
                         format=args.format, quantize=args.quantize, **data))
    return 0


def cmd_compression(args):
    compression_table(args.run, formats=args.format or DEFAULT_FORMATS, keys=args.key)
    print(f"Wrote {os.path.join(args.run, COMPRESSION_FILE)}; the table is in {os.path.join(args.run, 'report.md')}.")
    return 0


def cmd_list(args):
    entries = list_entries(args.what)
    width = max(len(name) for name, _ in entries)
    for name, description in entries:
        print(f"{name.ljust(width)}  {description}".rstrip())
    return 0


def cmd_report(args):
    # The one import left here: matplotlib's, which only `report` needs (not --help, not list).
    from keras_mixkd.analysis import write_report

    write_report(args.run_dir, projection=args.projection)
    return 0


# ---------------------------------------------------------------------------
# Printing
# ---------------------------------------------------------------------------


def _print_notes(notes):
    for note in notes:
        print(note, file=sys.stderr if note.startswith("warning:") else sys.stdout)


def _print_record(record, output):
    print(f"saved {output} (record: {output}.json)")
    print(f"test accuracy {100 * record['test_accuracy_last']:.2f} % at the last epoch ({record['last_epoch']}), "
          f"{100 * record['test_accuracy_best']:.2f} % at the best-validation epoch ({record['best_epoch']}); "
          f"CD {record['class_discrimination_last']:.4f}; ECE {record['ece_last']:.4f}")


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


def _maybe_json(path, values):
    if path:
        atomic.write_json(path, values)
        print(f"wrote {path}")


HANDLERS = {"study": cmd_study, "train-teacher": cmd_train_teacher, "distill": cmd_distill, "evaluate": cmd_evaluate,
            "measure": cmd_measure, "calibrate": cmd_calibrate, "export": cmd_export, "compression": cmd_compression,
            "report": cmd_report, "list": cmd_list}

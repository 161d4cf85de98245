"""Study recipes: TOML files that describe a whole study, checked whole with line numbers.

A recipe names the data, the teachers (model x augmentation), the students, the
distillation recipes and the seeds. `load_recipe` reads a packaged recipe by
name ("digits", "study_a_cifar10", "study_b_cifar100") or any TOML file, fills
in defaults, applies the recipe's `[smoke]` scale if asked, then command-line
overrides, and checks every key and value: an error gives the file and line it
is on. It returns a typed `StudySpec` (see `keras_mixkd.study.spec`), which is
also the dict earlier versions returned.

The keys are declared once, on the spec classes (`StudySpec.FIELDS` ...); a
loss's options beside the loss (`keras_mixkd.losses.loss_options`), and an
augmentation's options by its registry (`keras_mixkd.augment`): both are
checked at load time, which imports Keras then (the command line chooses the
backend first). Model names are checked by `check_names` (the model zoo), and
what a run checks of the data and of its runs folder by `check_study`.
"""

import copy
import difflib
import importlib.resources
import json
import os
import re
import tomllib

from keras_mixkd.study.spec.pair import PairSpec
from keras_mixkd.study.spec.recipe import DistillationRecipe
from keras_mixkd.study.spec.source import RecipeSource
from keras_mixkd.study.spec.source import format_path
from keras_mixkd.study.spec.study import StudySpec
from keras_mixkd.study.spec.table import SpecTable

# key -> (default, kind) for values, key -> dict for tables, derived from the spec
# classes. Kept for callers of earlier versions; the classes are the declaration.
_SCHEMA = StudySpec.schema()
_OPTIMIZER = _SCHEMA["teacher"]["optimizer"]
_PAIR = PairSpec.schema()


class _RecipeSchema(dict):
    """A recipe's keys and the built-in losses' options, read from the loss registry on first use."""

    def _load(self):
        if not dict.__len__(self):
            dict.update(self, DistillationRecipe.schema())
            for name, option in DistillationRecipe.all_loss_options().items():
                dict.__setitem__(self, name, (option.default, "loss_option"))

    def __getitem__(self, key):
        self._load()
        return super().__getitem__(key)

    def __contains__(self, key):
        self._load()
        return super().__contains__(key)

    def __iter__(self):
        self._load()
        return super().__iter__()

    def __len__(self):
        self._load()
        return super().__len__()

    def items(self):
        self._load()
        return super().items()

    def keys(self):
        self._load()
        return super().keys()


_DISTILLATION = _RecipeSchema()
_TABLES = {"recipes": DistillationRecipe, "pairs": PairSpec}

KNOWN_OPTIMIZERS = ("sgd", "adam", "adamw")
KNOWN_WEIGHT_DECAY_MODES = ("default", "l2", "decoupled")
KNOWN_PROJECTIONS = ("pca", "tsne")
KNOWN_MEASURE_SPLITS = ("val", "test")
# The recipe column of the student-alone baseline; no distillation recipe may take it.
ALONE = "alone"

RECIPE_PACKAGE = "keras_mixkd.recipes"


class RecipeError(ValueError):
    """A recipe or an override that is not valid; the message says where."""


# ---------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------


def list_recipes():
    """Names of the recipes packaged with keras-mixkd."""
    folder = importlib.resources.files(RECIPE_PACKAGE)
    return sorted(
        entry.name[: -len(".toml")]
        for entry in folder.iterdir()
        if entry.name.endswith(".toml")
    )


def recipe_path(name_or_path):
    """The file of a packaged recipe name, or `name_or_path` if it is a file."""
    text = os.fspath(name_or_path)
    if os.path.isfile(text):
        return text
    if text.endswith(".toml") or os.sep in text:
        raise RecipeError(f"Recipe file {text!r} does not exist.")
    resource = importlib.resources.files(RECIPE_PACKAGE) / f"{text}.toml"
    if not resource.is_file():
        raise RecipeError(
            f"Unknown recipe {text!r}: neither a file nor a packaged recipe. "
            f"Packaged recipes: {', '.join(list_recipes())}."
        )
    return os.fspath(resource)


def load_recipe(name_or_path="digits", *, smoke=False, overrides=None):
    """Read, complete and check a study recipe.

    Arguments:
        name_or_path: a packaged recipe name (see `list_recipes()`) or the path
            of a TOML file.
        smoke: apply the recipe's `[smoke]` table: the same grid, shrunk to run
            in seconds on tiny data (what the tests run).
        overrides: `{"dotted.key": value}` applied last (the command line's
            flags), e.g. `{"seeds": [0], "teacher.epochs": 2}`.

    Returns:
        The complete, checked `StudySpec` (a JSON-serialisable dict too).

    Example:

    >>> config = load_recipe("digits", overrides={"seeds": [0]})
    >>> config["teacher"]["augmentations"]
    ['none', 'standard', 'cutout', 'label_smoothing', 'mixup', 'cutmix']
    """
    path = recipe_path(name_or_path)
    with open(path, "rb") as f:
        raw = f.read()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise RecipeError(f"Recipe {path} is not valid TOML: {error}") from None
    text = raw.decode("utf-8")
    smoke_table = data.pop("smoke", None)
    source = RecipeSource(path, text)
    _check_keys(data, _SCHEMA, (), source)
    if smoke_table is not None:
        if not isinstance(smoke_table, dict):
            raise RecipeError(f"{source.where(('smoke',))}: [smoke] must be a table.")
        _check_keys(smoke_table, _SCHEMA, ("smoke",), source)
    kept = frozenset()
    if smoke:
        if smoke_table is None:
            raise RecipeError(f"Recipe {path} has no [smoke] table, so --smoke cannot apply.")
        # The full recipe is checked whole; option tables it uses may go unused at the smoke scale.
        kept = _option_table_keys(_complete(copy.deepcopy(data), source, frozenset()))
        data = _deep_merge(data, smoke_table)
    _resolve_data_path(data, path)
    config = _complete(data, source, kept)
    if overrides:
        config = apply_overrides(config, overrides)
    config["recipe"] = {"source": path, "smoke": bool(smoke)}
    return config


def complete_config(data, *, source=None):
    """Fill defaults into a partial config dict and check every value; returns a `StudySpec`.

    Example:

    >>> spec = complete_config({"pairs": [{"teacher": "digits_cnn", "student": "digits_mlp"}],
    ...                         "distillation": [{"name": "kd"}]})
    >>> spec.distillation[0].temperature
    4.0
    """
    return _complete(data, source or RecipeSource("<dict>", ""), frozenset())


def _complete(data, source, kept):
    """`complete_config`; option tables in `kept` (`_option_table_keys`) may go unused."""
    _check_keys(data, _SCHEMA, (), source)
    config = _fill(data, StudySpec, (), source)
    config["distillation"] = [
        _fill_entry(entry, DistillationRecipe, ("distillation", i), source)
        for i, entry in enumerate(config["distillation"])
    ]
    config["pairs"] = [
        _fill_entry(entry, PairSpec, ("pairs", i), source)
        for i, entry in enumerate(config["pairs"])
    ]
    if not config["pairs"]:
        raise RecipeError(f"{source.name}: a study needs at least one [[pairs]] teacher/student entry.")
    if not config["distillation"]:
        raise RecipeError(f"{source.name}: a study needs at least one [[distillation]] recipe.")
    names = [entry["name"] for entry in config["distillation"]]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RecipeError(f"{source.name}: distillation recipe names must be unique; repeated: {duplicates}.")
    if ALONE in names:
        where = source.where(("distillation", names.index(ALONE), "name"))
        raise RecipeError(
            f"{where}: the name {ALONE!r} is reserved for the student-alone baseline "
            "(student.baseline); give the distillation recipe another name."
        )
    if len(set(config["seeds"])) != len(config["seeds"]):
        raise RecipeError(f"{source.name}: seeds must be distinct, got {config['seeds']}.")
    augs = config["teacher"]["augmentations"]
    if len(set(augs)) != len(augs):
        raise RecipeError(f"{source.name}: teacher augmentations must be distinct, got {augs}.")
    for role in ("teacher", "student"):
        optimizer = config[role]["optimizer"]
        if optimizer["name"] == "adamw" and optimizer["weight_decay_mode"] == "l2":
            raise RecipeError(
                f"{source.where((role, 'optimizer', 'weight_decay_mode'))}: adamw decays decoupled by "
                "definition; got weight_decay_mode = \"l2\". Use name = \"adam\" for Adam with L2 "
                "(torch.optim.Adam's weight_decay), or weight_decay_mode = \"decoupled\"."
            )
        milestones = config[role]["optimizer"]["milestones"]
        if milestones != sorted(set(milestones)):
            raise RecipeError(
                f"{source.where((role, 'optimizer', 'milestones'))}: milestones must be "
                f"increasing, got {milestones}."
            )
    _check_augmentations(config, source)
    _check_tables_in_use(config, source, kept)
    _check_student_side_mixup(config, source)
    return config


STUDENT_SIDE_MIXUP = "student_side_mixup"


def _check_student_side_mixup(config, source):
    """`student_side_mixup` mixes the teacher's cached outputs: distillation only, clean teacher, Hinton KD."""
    for role, key in (("teacher", "augmentations"), ("student", "augmentation")):
        if any(STUDENT_SIDE_MIXUP in split_augmentation(name) for name in config[role][key]):
            raise RecipeError(
                f"{source.where((role, key))}: {STUDENT_SIDE_MIXUP} mixes a teacher's outputs, so it is an "
                "augmentation of a [[distillation]] recipe only (its `augmentation`); use mixup here.")
    for i, recipe in enumerate(config["distillation"]):
        if not any(STUDENT_SIDE_MIXUP in split_augmentation(name) for name in recipe["augmentation"]):
            continue
        where = source.where(("distillation", i, "augmentation"))
        if recipe["teacher_sees"] != "clean":
            raise RecipeError(
                f"{where}: {STUDENT_SIDE_MIXUP} distils from the teacher's outputs on the clean images; set "
                f"teacher_sees = \"clean\" (got {recipe['teacher_sees']!r}).")
        if recipe["loss"] != "kd" or recipe["feature_loss_weight"] > 0:
            raise RecipeError(
                f"{where}: {STUDENT_SIDE_MIXUP} mixes the teacher's probabilities at the temperature of Hinton "
                f"KD; it needs loss = \"kd\" and no feature loss (got loss = {recipe['loss']!r}, "
                f"feature_loss_weight = {recipe['feature_loss_weight']!r}).")
        given = recipe["augmentation_options"].get(STUDENT_SIDE_MIXUP, {}).get("temperature")
        if given is not None and given != recipe["temperature"]:
            raise RecipeError(
                f"{where}: {STUDENT_SIDE_MIXUP}'s temperature {given!r} differs from the recipe's temperature "
                f"{recipe['temperature']!r}; leave it out (the recipe's is used).")


def _resolve_data_path(data, recipe_file):
    # A relative data.path in a recipe file is the file's neighbour, wherever the command runs.
    table = data.get("data")
    if isinstance(table, dict) and isinstance(table.get("path"), str) and table["path"]:
        if not os.path.isabs(table["path"]):
            folder = os.path.dirname(os.path.abspath(recipe_file))
            table["path"] = os.path.normpath(os.path.join(folder, table["path"]))


def _check_augmentations(config, source):
    """Refuse unknown augmentation names and option tables, and options their registry refuses."""
    from keras_mixkd.augment import check_augmentation_options
    from keras_mixkd.augment import list_augmentations

    known = list_augmentations()
    student_parts = [(("student", "augmentation"), part) for name in config["student"]["augmentation"]
                     for part in split_augmentation(name)]
    roles = [(("teacher",), "augmentations", config["teacher"]["augmentation_options"], {})]
    roles.append((("student",), "augmentation", config["student"]["augmentation_options"], {}))
    for i, recipe in enumerate(config["distillation"]):
        roles.append((("distillation", i), "augmentation", recipe["augmentation_options"],
                      config["student"]["augmentation_options"]))
    for path, key, options, inherited in roles:
        table = config
        for part in path:
            table = table[part]
        parts = [(path + (key,), part) for name in table[key] for part in split_augmentation(name)]
        for where, part in parts:
            if part not in known:
                raise RecipeError(
                    f"{source.where(where)}: unknown augmentation {part!r}. {_suggest(part, known)}"
                    f"Known augmentations: {', '.join(known)}; '+' joins several, e.g. 'standard+mixup'."
                )
        for name in options:
            if name not in known:
                raise RecipeError(
                    f"{source.where(path + ('augmentation_options', name))}: unknown augmentation {name!r} "
                    f"in [{format_path(path + ('augmentation_options',))}]. {_suggest(name, known)}"
                    f"Known augmentations: {', '.join(known)}."
                )
        if path[0] == "distillation":
            parts = student_parts + parts  # a run builds the student's augmentation, then the recipe's
        for _, part in parts:
            # As a run builds it: a recipe's table for an augmentation replaces the student's.
            owner = path if part in options or not inherited else ("student",)
            given = options[part] if part in options else inherited.get(part, {})
            try:
                check_augmentation_options(part, given)
            except ValueError as error:
                option = getattr(error, "option", None)
                where = owner + ("augmentation_options", part) + ((option,) if option else ())
                raise RecipeError(f"{source.where(where)}: {error}") from None


def _option_tables(config):
    """`(key, path, augmentation, options, in_use)` of every `augmentation_options` table.

    `in_use` holds the augmentations the table serves: the teachers'; the
    student's and every recipe's for the student's table (recipes inherit
    it); the student's and the recipe's own for a recipe's table. `key`
    identifies the table and its contents (a recipe by its name).
    """
    student = [config["student"]["augmentation"]]
    recipes = [recipe["augmentation"] for recipe in config["distillation"]]
    roles = [(("teacher",), ("teacher",), config["teacher"]["augmentations"]),
             (("student",), ("student",), student + recipes)]
    roles += [(("distillation", i), ("distillation", recipe["name"]), student + [recipe["augmentation"]])
              for i, recipe in enumerate(config["distillation"])]
    for path, owner, in_use in roles:
        table = config
        for part in path:
            table = table[part]
        in_use = [name for names in in_use for name in ([names] if isinstance(names, str) else names)]
        for name, options in table["augmentation_options"].items():
            key = owner + (name, json.dumps(options, sort_keys=True, default=str))
            yield key, path, name, options, in_use


def _option_table_keys(config):
    return frozenset(key for key, *_ in _option_tables(config))


def _check_tables_in_use(config, source, kept):
    """Refuse options for an augmentation its table's role does not use (augment's one rule).

    Tables in `kept` (accepted in the full recipe, or before the command
    line's overrides) may go unused: `--set teacher.augmentations=["none"]`
    or a `[smoke]` scale trains fewer augmentations with the same recipe.
    """
    from keras_mixkd.augment import check_options_in_use

    for key, path, name, options, in_use in _option_tables(config):
        if key in kept:
            continue
        try:
            # Values are `_check_augmentations`'s, where a run reads them.
            check_options_in_use([f"{name}.{option}" for option in options], in_use)
        except ValueError as error:
            where = path + ("augmentation_options", name, error.option.split(".", 1)[1])
            raise RecipeError(f"{source.where(where)}: {error}") from None


def apply_overrides(config, overrides):
    """Return `config` with `{"dotted.key": value}` overrides applied and checked.

    Unknown keys raise `RecipeError` naming the key and the closest known ones.
    """
    kept = _option_table_keys(config)
    config = copy.deepcopy(config)
    source = RecipeSource("command line", "")
    for dotted, value in overrides.items():
        path = tuple(dotted.split("."))
        schema = _SCHEMA
        for i, part in enumerate(path):
            if not isinstance(schema, dict) or part not in schema:
                known = sorted(schema) if isinstance(schema, dict) else []
                raise RecipeError(
                    f"Unknown setting {dotted!r} (from the command line). "
                    f"{_suggest(part, known)}Known settings: {', '.join(_dotted_keys())}."
                )
            schema = schema[part]
        if isinstance(schema, dict):
            raise RecipeError(f"Setting {dotted!r} is a table; give one of its keys, e.g. {dotted}.{next(iter(schema))}.")
        target = config
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
    recipe = config.pop("recipe", None)
    config = _complete(config, source, kept)
    if recipe is not None:
        config["recipe"] = recipe
    return config


def scale_milestones(milestones, recipe_epochs, epochs):
    """Learning-rate milestones moved to the same fraction of a run of `epochs` epochs.

    A milestone `m` of a schedule written for `recipe_epochs` epochs becomes
    `m * epochs / recipe_epochs` rounded half up, at least 1; those that would fall at or
    after the last epoch (where they never take effect) and repeats are dropped.

    Arguments:
        milestones: increasing epochs of the recipe's schedule.
        recipe_epochs: the number of epochs the schedule was written for.
        epochs: the number of epochs of this run.

    Example:

    >>> scale_milestones([60, 80, 120], 150, 30)
    [12, 16, 24]
    """
    for name, value in (("recipe_epochs", recipe_epochs), ("epochs", epochs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"scale_milestones: {name} must be an int >= 1, got {value!r}.")
    scaled = []
    for milestone in milestones:
        moved = max(1, (2 * milestone * epochs + recipe_epochs) // (2 * recipe_epochs))  # exact, half up
        if moved < epochs and moved not in scaled:
            scaled.append(moved)
    return scaled


def parse_override(text):
    """Parse one `--set key=value` flag; the value is read as a TOML value.

    Example:

    >>> parse_override("teacher.epochs=3")
    ('teacher.epochs', 3)
    >>> parse_override("data.dataset=cifar10")
    ('data.dataset', 'cifar10')
    """
    if "=" not in text:
        raise RecipeError(f"--set expects key=value, got {text!r}.")
    key, value = text.split("=", 1)
    key = key.strip()
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()  # a bare word: a string
    return key, parsed


def check_names(config):
    """Check model and augmentation names against the zoo (imports Keras).

    Raises `RecipeError` naming the unknown entry and listing the known ones.
    """
    from keras_mixkd.augment import list_augmentations
    from keras_mixkd.models import list_models

    models = set(list_models())
    for i, pair in enumerate(config["pairs"]):
        for role in ("teacher", "student"):
            if pair[role].lower() not in models:
                raise RecipeError(
                    f"pairs[{i}].{role}: unknown model {pair[role]!r}. "
                    f"Known models: {', '.join(sorted(models))}."
                )
    if config.get("data_format") == "channels_first":
        from keras_mixkd.models import offers_channels_first

        if uses_feature_maps(config):
            raise RecipeError(
                "data_format = \"channels_first\" with a feature-based recipe (feature_loss_weight > 0): its "
                "projector compares channels-last feature maps. Use data_format = \"auto\" or \"channels_last\"."
            )
        for i, pair in enumerate(config["pairs"]):
            for role in ("teacher", "student"):
                if not offers_channels_first(pair[role]):
                    raise RecipeError(
                        f"pairs[{i}].{role}: model {pair[role]!r} is built channels-last only, but "
                        "data_format = \"channels_first\". Use data_format = \"auto\" (channels-first where a "
                        "model offers it) or \"channels_last\"."
                    )
    augmentations = set(list_augmentations())
    entries = [("teacher.augmentations", name) for name in config["teacher"]["augmentations"]]
    entries += [("student.augmentation", name) for name in config["student"]["augmentation"]]
    entries += [
        (f"distillation[{i}].augmentation", name)
        for i, recipe in enumerate(config["distillation"])
        for name in recipe["augmentation"]
    ]
    for where, name in entries:
        for part in split_augmentation(name):
            if part not in augmentations:
                raise RecipeError(
                    f"{where}: unknown augmentation {part!r} (in {name!r}). "
                    f"Known augmentations: {', '.join(sorted(augmentations))}."
                )


def uses_feature_maps(config):
    """Whether a distillation recipe of the study matches intermediate feature maps (FitNets)."""
    return any(recipe["feature_loss_weight"] > 0 for recipe in config["distillation"])


def study_data_format(config):
    """The `data_format` the study's cells build their models with: "auto", "channels_last" or "channels_first".

    Feature-based recipes (FitNets) compare the teacher's and the student's
    intermediate feature maps through a projector built channels-last, so
    under "auto" such a study builds every model channels-last.
    """
    data_format = config.get("data_format", "auto")
    if data_format == "auto" and uses_feature_maps(config):
        return "channels_last"
    return data_format


def weight_decay_mode(optimizer_config):
    """The weight-decay mode an optimizer table runs: "l2" or "decoupled".

    `"default"` is "l2" for sgd and adam (PyTorch's SGD and Adam add `wd * w`
    to the gradient) and "decoupled" for adamw.

    Example:

    >>> weight_decay_mode({"name": "sgd", "weight_decay_mode": "default"})
    'l2'
    """
    mode = optimizer_config.get("weight_decay_mode", "default")
    if mode == "default":
        return "decoupled" if optimizer_config["name"] == "adamw" else "l2"
    return mode


def default_measure():
    """The `measure` table of a recipe that sets none: option -> default."""
    return {key: spec[0] for key, spec in _SCHEMA["measure"].items()}


def recipe_defaults():
    """The defaults of a `[[distillation]]` recipe's keys: key -> default."""
    return {key: spec[0] for key, spec in _DISTILLATION.items()}


def split_augmentation(name):
    """`"standard+mixup"` -> `["standard", "mixup"]`; `"none"` -> `[]`."""
    return [part.strip() for part in name.split("+") if part.strip() and part.strip() != "none"]


# ---------------------------------------------------------------------------
# Checking
# ---------------------------------------------------------------------------


def _dotted_keys(schema=_SCHEMA, prefix=""):
    keys = []
    for key, value in schema.items():
        if isinstance(value, dict):
            keys += _dotted_keys(value, prefix + key + ".")
        else:
            keys.append(prefix + key)
    return keys


def _suggest(word, known):
    close = difflib.get_close_matches(word, known, n=1)
    return f"Did you mean {close[0]!r}? " if close else ""


def _check_keys(data, schema, path, source):
    for key, value in data.items():
        if key not in schema:
            raise RecipeError(
                f"{source.where(path + (key,))}: unknown key {key!r}"
                f"{' in [' + format_path(path) + ']' if path else ''}. "
                f"{_suggest(key, list(schema))}Known keys here: {', '.join(schema)}."
            )
        sub = schema[key]
        if isinstance(sub, dict):
            if not isinstance(value, dict):
                raise RecipeError(f"{source.where(path + (key,))}: expected a table, got {value!r}.")
            _check_keys(value, sub, path + (key,), source)
        elif sub[1] in ("recipes", "pairs"):
            entry_schema = _DISTILLATION if sub[1] == "recipes" else _PAIR
            if not isinstance(value, list):
                raise RecipeError(f"{source.where(path + (key,))}: expected a list of tables ([[{key}]]), got {value!r}.")
            for i, entry in enumerate(value):
                if not isinstance(entry, dict):
                    raise RecipeError(f"{source.where(path + (key, i))}: expected a table, got {entry!r}.")
                _check_keys(entry, entry_schema, path + (key, i), source)


def _fill(data, cls, path, source):
    """`cls` (a `SpecTable`) from `data`: defaults filled, every value checked."""
    out = {}
    for key, spec in cls.FIELDS.items():
        if isinstance(spec, type) and issubclass(spec, SpecTable):
            out[key] = _fill(data.get(key, {}), spec, path + (key,), source)
            continue
        default, kind = spec
        value = data.get(key, copy.deepcopy(default))
        if value is None:
            raise RecipeError(f"{source.where(path + (key,))}: {format_path(path + (key,))} is required.")
        out[key] = _check_value(value, kind, path + (key,), source)
    return cls(out)


def _fill_entry(entry, cls, path, source):
    _check_keys(entry, _DISTILLATION if cls is DistillationRecipe else cls.schema(), path, source)
    out = _fill(entry, cls, path, source)
    if cls is DistillationRecipe:
        out.update(_loss_options(entry, out["loss"], path, source))
    return out


def _loss_options(entry, loss, path, source):
    """A recipe's loss options, checked by the loss registry; others' options at their defaults."""
    from keras_mixkd import losses

    own = {option.name: option for option in losses.loss_options(loss)}
    out = {}
    for name, option in DistillationRecipe.all_loss_options().items():
        if name not in entry:
            out[name] = own[name].default if name in own else option.default
            continue
        value = entry[name]
        checker = own.get(name, option)
        try:
            checked = checker.check(value)
        except (TypeError, ValueError):
            raise RecipeError(
                f"{source.where(path + (name,))}: expected {checker.expected}, got {value!r}."
            ) from None
        if name not in own:
            takers = [n for n in losses.list_losses() if name in {o.name for o in losses.loss_options(n)}]
            if checked != option.default:
                raise RecipeError(
                    f"{source.where(path + (name,))}: {name!r} is an option of loss "
                    f"{' / '.join(repr(n) for n in takers)}, but this recipe's loss is {loss!r}."
                )
            out[name] = option.default
            continue
        out[name] = checked
    return out


def _check_value(value, kind, path, source):
    def fail(expected):
        return RecipeError(f"{source.where(path)}: expected {expected}, got {value!r}.")

    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "str":
        if not isinstance(value, str):
            raise fail("a string")
        return value
    if kind == "name":
        if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", value):
            raise fail("a name of letters, digits, '_', '-', '.'")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise fail("an integer")
        return value
    if kind in ("positive_int", "nonnegative_int"):
        low = 1 if kind == "positive_int" else 0
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise fail(f"an integer >= {low}")
        return value
    if kind == "positive":
        if not number or not value > 0:
            raise fail("a number > 0")
        return float(value)
    if kind == "nonnegative":
        if not number or value < 0:
            raise fail("a number >= 0")
        return float(value)
    if kind == "fraction":
        if not number or not 0 <= value <= 1:
            raise fail("a number in [0, 1]")
        return float(value)
    if kind == "validation_fraction":
        if not number or not 0 <= value < 1:
            raise fail("a number in [0, 1) (0: no validation split, train on the whole training split)")
        return float(value)
    if kind == "measure_split":
        if value not in KNOWN_MEASURE_SPLITS:
            raise fail(f"one of {', '.join(repr(v) for v in KNOWN_MEASURE_SPLITS)}")
        return value
    if kind == "seeds":
        if not isinstance(value, list) or not value or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value
        ):
            raise fail("a non-empty list of integers >= 0")
        return list(value)
    if kind == "epochs_list":
        if not isinstance(value, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in value
        ):
            raise fail("a list of epochs (integers > 0)")
        return list(value)
    if kind == "size":
        if value in ([], None):
            return []
        if not isinstance(value, list) or len(value) != 2 or not all(
            isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in value
        ):
            raise fail("[height, width] of positive integers, or [] to keep the size")
        return list(value)
    if kind == "names":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise fail("a name or a non-empty list of names")
        return list(value)
    if kind == "options_by_name":
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise fail("a table of option tables, one per augmentation name")
        return copy.deepcopy(value)
    if kind == "rates":
        if not isinstance(value, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in value.values()
        ):
            raise fail("a table model name -> learning rate > 0")
        return {k.lower(): float(v) for k, v in value.items()}
    if kind == "optimizer":
        if value not in KNOWN_OPTIMIZERS:
            raise fail(f"one of {', '.join(KNOWN_OPTIMIZERS)}")
        return value
    if kind == "weight_decay_mode":
        if value not in KNOWN_WEIGHT_DECAY_MODES:
            raise fail(
                f"one of {', '.join(KNOWN_WEIGHT_DECAY_MODES)} (l2: added to the gradient as "
                "torch.optim.SGD does; decoupled: w -= lr * wd * w as AdamW)"
            )
        return value
    if kind == "loss":
        from keras_mixkd.losses import list_losses

        if value not in list_losses():
            raise fail(f"one of {', '.join(list_losses())}")
        return value
    if kind == "weight_or_default":
        if not number or not (value >= 0 or value == -1):
            raise fail("a number >= 0, or -1 for 1 - student_loss_weight")
        return float(value)
    if kind == "ddof":
        if value not in (0, 1) or isinstance(value, bool):
            raise fail("0 (population std) or 1 (unbiased std, as torch.std)")
        return value
    if kind == "projection":
        if value not in KNOWN_PROJECTIONS:
            raise fail(f"one of {', '.join(KNOWN_PROJECTIONS)}")
        return value
    if kind == "data_format":
        if value not in ("auto", "channels_last", "channels_first"):
            raise fail("'auto', 'channels_last' or 'channels_first'")
        return value
    if kind == "teacher_sees":
        if value not in ("same", "clean"):
            raise fail("'same' or 'clean'")
        return value
    if kind in ("recipes", "pairs"):
        return list(value)  # entries are checked by _fill_entry
    raise AssertionError(f"unknown kind {kind}")


def _deep_merge(base, update):
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out

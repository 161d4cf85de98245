"""The grid of a study: which teachers to train and which students to distil.

Teachers are trained once per (teacher model, augmentation, seed) and reused by
every distillation recipe and every student that names them. Every student
model is also trained once per seed without a teacher (the student-alone
baseline, `student.baseline = true`), however many teachers and recipes name
it. The order puts, for each seed, the baselines first, then each teacher right
before the students distilled from it, so a partial run already holds complete
rows.
"""

import dataclasses

from keras_mixkd.study.config import ALONE


@dataclasses.dataclass(frozen=True)


class Cell:
    """One unit of work of a study, with a key that names its result.

    Arguments:
        kind: "teacher" (train a teacher), "student" (distil a student) or
            "alone" (train a student model without a teacher: the baseline).
        teacher_model, teacher_augmentation: the teacher ("" for "alone").
        seed: the seed of the cell.
        student_model: the student ("student" and "alone", else "").
        recipe: the distillation recipe's name ("student"), "alone" for the
            baseline, "" for a teacher.
    """

    kind: str
    teacher_model: str
    teacher_augmentation: str
    seed: int
    student_model: str = ""
    recipe: str = ""

    @property
    def teacher_key(self):
        """Key of the teacher this cell trains or distils from (None for "alone")."""
        if self.kind == "alone":
            return None
        return f"teacher__{self.teacher_model}__{self.teacher_augmentation}__s{self.seed}"

    @property
    def depends_on(self):
        """Keys of the cells whose results this cell needs first (a student: its teacher)."""
        return (self.teacher_key,) if self.kind == "student" else ()

    @property
    def key(self):
        """Unique, file-name-safe key of this cell's result."""
        if self.kind == "teacher":
            return self.teacher_key
        if self.kind == "alone":
            return f"student__{self.student_model}__alone__s{self.seed}"
        return (
            f"student__{self.student_model}__{self.recipe}__from__{self.teacher_model}"
            f"__{self.teacher_augmentation}__s{self.seed}"
        )

    def describe(self):
        """The progress line's tail, e.g. "teacher=mixup · seed 1 · kd -> lenet5"."""
        if self.kind == "alone":
            return f"seed {self.seed} · train student {self.student_model} alone (no teacher)"
        text = f"teacher={self.teacher_augmentation} · seed {self.seed}"
        if self.kind == "teacher":
            return f"{text} · train teacher {self.teacher_model}"
        return f"{text} · distil {self.recipe}: {self.teacher_model} -> {self.student_model}"


def enumerate_cells(config):
    """All cells of a study config, teachers before their students.

    Example:

    >>> cells = enumerate_cells(load_recipe("digits"))
    >>> [cell.kind for cell in cells[:3]]
    ['alone', 'teacher', 'student']
    >>> cells[0].key
    'student__digits_cnn_small__alone__s0'
    """
    cells = []
    seen_teachers = set()
    teacher_models = []
    student_models = []
    for pair in config["pairs"]:
        if pair["teacher"] not in teacher_models:
            teacher_models.append(pair["teacher"])
        if pair["student"] not in student_models:
            student_models.append(pair["student"])
    baseline = config["student"].get("baseline", True)
    for seed in config["seeds"]:
        if baseline:
            cells += [Cell(ALONE, "", "", seed, student_model, ALONE) for student_model in student_models]
        for augmentation in config["teacher"]["augmentations"]:
            for teacher_model in teacher_models:
                teacher = Cell("teacher", teacher_model, augmentation, seed)
                if teacher.key not in seen_teachers:
                    seen_teachers.add(teacher.key)
                    cells.append(teacher)
                for pair in config["pairs"]:
                    if pair["teacher"] != teacher_model:
                        continue
                    for recipe in config["distillation"]:
                        cells.append(
                            Cell("student", teacher_model, augmentation, seed,
                                 pair["student"], recipe["name"])
                        )
    return cells

"""The grid of a study: which teachers to train and which students to distil.

Teachers are trained once per (teacher model, augmentation, seed) and reused by
every distillation recipe and every student that names them. The order puts
each teacher right before the students distilled from it, so a partial run
already holds complete rows.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Cell:
    """One unit of work of a study, with a key that names its result.

    Arguments:
        kind: "teacher" (train a teacher) or "student" (distil a student).
        teacher_model, teacher_augmentation, seed: the teacher (both kinds).
        student_model, recipe: the student and the distillation recipe's
            name (students only, else "").
    """

    kind: str
    teacher_model: str
    teacher_augmentation: str
    seed: int
    student_model: str = ""
    recipe: str = ""

    @property
    def teacher_key(self):
        """Key of the teacher this cell trains or distils from."""
        return f"teacher__{self.teacher_model}__{self.teacher_augmentation}__s{self.seed}"

    @property
    def key(self):
        """Unique, file-name-safe key of this cell's result."""
        if self.kind == "teacher":
            return self.teacher_key
        return (
            f"student__{self.student_model}__{self.recipe}__from__{self.teacher_model}"
            f"__{self.teacher_augmentation}__s{self.seed}"
        )

    def describe(self):
        """The progress line's tail, e.g. "teacher=mixup · seed 1 · kd -> lenet5"."""
        text = f"teacher={self.teacher_augmentation} · seed {self.seed}"
        if self.kind == "teacher":
            return f"{text} · train teacher {self.teacher_model}"
        return f"{text} · distil {self.recipe}: {self.teacher_model} -> {self.student_model}"


def enumerate_cells(config):
    """All cells of a study config, teachers before their students.

    Example:

    >>> cells = enumerate_cells(load_recipe("digits"))
    >>> cells[0].kind, cells[1].kind
    ('teacher', 'student')
    """
    cells = []
    seen_teachers = set()
    teacher_models = []
    for pair in config["pairs"]:
        if pair["teacher"] not in teacher_models:
            teacher_models.append(pair["teacher"])
    for seed in config["seeds"]:
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

"""`PairSpec`: one `[[pairs]]` entry of a study."""

from keras_mixkd.study.spec.table import SpecTable


class PairSpec(SpecTable):
    """A teacher model and the student model distilled from it (names of the zoo).

    Example:

    >>> load_recipe("digits").pairs[0].teacher
    'digits_cnn'
    """

    FIELDS = {"teacher": (None, "str"), "student": (None, "str")}

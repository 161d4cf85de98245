"""`RecipeSource`: the text a recipe was read from, to point at a key's line."""

import re

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\.\"' ]+?)\s*=")


class RecipeSource:
    """Where a recipe came from: its name (a file, "command line") and its text.

    `tomllib` gives no line numbers, so a key's line is found by scanning the
    text: table headers (`[a.b]`, and `[[a]]`, counted so that the n-th
    `[[distillation]]` entry is told apart from the others) and `key = `
    lines, inline tables included.

    Arguments:
        name: what error messages call the source (a file path).
        text: the TOML text ("" when there is none).

    Example:

    >>> source = RecipeSource("r.toml", "[[pairs]]\\nteacher = 'a'\\n[[pairs]]\\nteacher = 'b'\\n")
    >>> source.where(("pairs", 1, "teacher"))
    'r.toml, line 4: pairs[1].teacher'
    """

    def __init__(self, name, text):
        self.name = name
        self.lines = text.splitlines()

    def line_of(self, path):
        """1-based line of the key `path` (a tuple of names and list indices), or None."""
        target = list(path)
        if not any(isinstance(p, str) for p in target) or not self.lines:
            return None
        plain = [p for p in target if isinstance(p, str)]
        header, counts, fallback = [], {}, None
        for number, line in enumerate(self.lines, 1):
            match = _HEADER.match(line)
            if match:
                names = split_dotted(match.group(2))
                if match.group(1) == "[[":
                    counts[tuple(names)] = counts.get(tuple(names), -1) + 1
                header = self._indexed(names, counts)
                if header == target:
                    return number
                if [p for p in header if isinstance(p, str)] == plain and fallback is None:
                    fallback = number
                continue
            match = _KEY.match(line)
            if not match:
                inline = re.search(rf"[{{,]\s*{re.escape(plain[-1])}\s*=", line)
                if inline and fallback is None:
                    fallback = number
                continue
            key = header + split_dotted(match.group(1))
            if key == target:
                return number
            if [p for p in key if isinstance(p, str)] == plain and fallback is None:
                fallback = number
            if key == target[: len(key)] and "{" in line and plain[-1] in line:
                fallback = number  # an inline table holding the key
        return fallback

    @staticmethod
    def _indexed(names, counts):
        # [a.b] after the n-th [[a]] belongs to a[n]: insert the indices of arrays of tables.
        out = []
        for i, name in enumerate(names):
            out.append(name)
            if tuple(names[: i + 1]) in counts:
                out.append(counts[tuple(names[: i + 1])])
        return out

    def where(self, path):
        """`"file, line N: dotted.path"` (or without the line when it is not found)."""
        dotted = format_path(path)
        line = self.line_of(path)
        if line is None:
            return f"{self.name}: {dotted}"
        return f"{self.name}, line {line}: {dotted}"


def split_dotted(text):
    """`'a."b".c'` -> `["a", "b", "c"]`."""
    return [part.strip().strip("\"'") for part in text.split(".")]


def format_path(path):
    """`("distillation", 0, "alpha")` -> `"distillation[0].alpha"`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out

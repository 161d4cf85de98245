"""The README's Python examples run as written (with fewer epochs)."""

import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_examples():
    assert python_blocks(), "README.md lost its Python examples"


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_example_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = re.sub(r"epochs=\d+", "epochs=1", python_blocks()[index])
    exec(compile(code, f"README.md python block {index}", "exec"), {"__name__": "readme"})

"""The README's Python examples run, so they cannot rot."""

import re
from pathlib import Path

import pytest
import sklearn

README = Path(__file__).resolve().parents[1] / "README.md"
_PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(text):
    """Return the ```python fenced blocks of a Markdown text, in order."""
    return _PYTHON_BLOCK.findall(text)


def test_python_blocks_are_found():
    blocks = python_blocks("intro\n```python\na = 1\n```\n```bash\nls\n```\n"
                           "```python\nb = a\n```\n")
    assert blocks == ["a = 1\n", "b = a\n"]


def test_readme_examples_run():
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert blocks, f"no ```python blocks found in {README}"
    # one namespace, block after block, as a reader pasting them in order would;
    # config_context undoes the examples' sklearn.set_config calls
    namespace = {"__name__": "__readme__"}
    with sklearn.config_context():
        for number, block in enumerate(blocks, start=1):
            try:
                exec(compile(block, f"README.md python block {number}", "exec"), namespace)
            except Exception as exc:  # pragma: no cover - the failure report
                pytest.fail(f"README.md python block {number} raised {exc!r}:\n{block}")

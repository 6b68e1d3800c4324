"""The web layer stays readable: `create_app` is a short list of named steps and no function in
allocation/web/ grows past one screen (issue 13, item 8)."""
import ast
from pathlib import Path

WEB = Path(__file__).resolve().parent.parent / "allocation" / "web"
LONGEST = 60  # lines, docstring and nested functions included
CREATE_APP = 40


def _functions():
    for path in sorted(WEB.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path.name, node.name, node.end_lineno - node.lineno + 1


def test_no_web_function_is_longer_than_a_screen():
    too_long = [(file, name, lines) for file, name, lines in _functions() if lines > LONGEST]
    assert too_long == []


def test_create_app_is_a_short_list_of_steps():
    lengths = {name: lines for file, name, lines in _functions() if file == "app.py"}
    assert lengths["create_app"] <= CREATE_APP

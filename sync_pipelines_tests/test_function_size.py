"""No function in ``sync_pipelines/`` (outside the sandbox and the migrations) is longer than
80 lines or takes more than 7 positional parameters (keyword-only options are fine)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sync_pipelines"
EXEMPT = (PACKAGE / "sandbox", PACKAGE / "warehouse" / "migrations")
MAX_LINES = 80
MAX_POSITIONAL = 7

# TODO(lead): functions over the limits that predate this test, to be split by their owners;
# "path:function" -> why it is allowed for now. Shrink this list, never grow it.
ALLOWED: dict[str, str] = {}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if not any(p.is_relative_to(e) for e in EXEMPT))


def _positional(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    names = [a.arg for a in (*node.args.posonlyargs, *node.args.args)]
    return len(names) - (1 if names and names[0] in ("self", "cls") else 0)


def _oversized() -> dict[str, str]:
    found = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            lines = node.end_lineno - node.lineno + 1
            positional = _positional(node)
            if lines > MAX_LINES or positional > MAX_POSITIONAL:
                where = f"{path.relative_to(PACKAGE.parent)}:{node.name}"
                found[where] = f"line {node.lineno}: {lines} lines, {positional} positional parameters"
    return found


def test_no_function_is_longer_than_80_lines_or_takes_more_than_7_positional_parameters():
    oversized = {where: why for where, why in _oversized().items() if where not in ALLOWED}
    assert not oversized, (
        f"functions over {MAX_LINES} lines or {MAX_POSITIONAL} positional parameters (split them at their "
        "phases, or pass one object / keyword-only options):\n" + "\n".join(f"  {w} ({why})" for w, why in oversized.items())
    )


def test_the_allow_list_names_only_functions_still_over_the_limits():
    stale = sorted(set(ALLOWED) - set(_oversized()))
    assert not stale, f"remove from ALLOWED (now within the limits, or gone): {stale}"

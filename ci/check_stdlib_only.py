"""Check the design's rule that ``sflowlab.codec`` and ``sflowlab.clock`` import only the stdlib."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "sflowlab"
CHECKED = [*sorted((ROOT / "codec").rglob("*.py")), ROOT / "clock.py"]


def foreign_imports(path: Path) -> list[str]:
    """Top-level modules imported by ``path`` that are neither stdlib nor relative."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            if top not in sys.stdlib_module_names and top != "__future__":
                found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}: imports {name}")
    return found


def main() -> int:
    problems = [p for path in CHECKED for p in foreign_imports(path)]
    for p in problems:
        print(p)
    print(f"stdlib-only check: {len(CHECKED)} files, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())

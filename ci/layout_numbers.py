"""The weight a user carries, as issue 48 counts it: lines and ``$`` expressions of every bundle config, modules at
the package's top level, the widest function's parameter count, and the package's lines.

    python ci/layout_numbers.py [checkout]      # default: this repository
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

CONFIGS = ("train", "inference", "evaluate", "multi_gpu_train", "inference_onnx")


def widest_function(package: Path) -> tuple:
    widest = (0, "")
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args
                count = len(args.posonlyargs) + len(args.args) + len(args.kwonlyargs)
                count -= 1 if args.args and args.args[0].arg in ("self", "cls") else 0
                widest = max(widest, (count, f"{path.relative_to(package)}:{node.name}"))
    return widest


def main(root: Path) -> None:
    package = root / "freq_transforms"
    print(f"top-level modules: {len(list(package.glob('*.py')))}")
    print(f"widest function: {widest_function(package)}")
    print(f"package lines: {sum(len(p.read_text().splitlines()) for p in package.rglob('*.py'))}")
    for bundle in sorted(p for p in (root / "bundles").iterdir() if (p / "configs").is_dir()):
        cells = []
        for name in CONFIGS:
            text = (bundle / "configs" / f"{name}.json").read_text()
            cells.append(f"{name} {len(text.splitlines())} lines / {text.count(chr(34) + '$')} $")
        print(f"{bundle.name}: " + "; ".join(cells))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])

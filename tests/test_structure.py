"""The house rules of the package, measured from its source: no import circle, small classes and library modules,
the lab apart from the library, and a current import picture in docs/architecture.md."""

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "ci"))

import import_graph  # noqa: E402

MAX_CLASS_LINES, MAX_LIBRARY_MODULE_LINES = 120, 350
TOP = {"freq_transforms.cli.main", "freq_transforms.cli.commands", "freq_transforms.__main__"}  # the command line, above both


def _graph():
    return import_graph.imports(import_graph.modules())


def test_no_import_circle_anywhere_in_the_package():
    assert import_graph.cycles(_graph()) == []


def test_the_circle_finder_finds_a_circle():
    assert import_graph.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_class_over_120_lines_and_no_library_module_over_350():
    too_long = []
    for name, path in import_graph.modules().items():
        text = path.read_text()
        if ".lab" not in name and len(text.splitlines()) > MAX_LIBRARY_MODULE_LINES:
            too_long.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                too_long.append(f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert too_long == []


def test_the_library_never_imports_the_lab():
    graph = _graph()
    library = [m for m in graph if ".lab" not in m and m not in TOP]
    assert {m: sorted(t for t in graph[m] if ".lab" in t) for m in library if any(".lab" in t for t in graph[m])} == {}


def test_the_import_picture_in_the_docs_is_current():
    """``python ci/import_graph.py --write`` after a change of imports."""
    assert import_graph.mermaid(_graph()) in (ROOT / "docs" / "architecture.md").read_text()


def test_every_subpackage_is_in_the_wheel():
    """pyproject lists packages by name: a new subpackage missing there installs without its modules."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "freq_transforms").rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)


IMPORT_STATE = """
import importlib, json, logging, pkgutil, sys, warnings
# third-party packages first: what importing them changes is theirs (and happens in any program that uses them)
for name in ("torch", "monai", "monai.bundle", "ignite.engine", "ignite.handlers", "numpy", "scipy.stats", "nibabel",
             "matplotlib", "fire", "tqdm", "onnx", "onnxruntime"):
    importlib.import_module(name)
def state():
    return {"sys.excepthook": repr(sys.excepthook), "logging record factory": repr(logging.getLogRecordFactory()),
            "sys.path": list(sys.path), "warnings filters": repr(warnings.filters)}
import freq_transforms
before, changed = state(), []
for info in pkgutil.walk_packages(freq_transforms.__path__, "freq_transforms."):
    if not info.name.endswith("__main__"):
        importlib.import_module(info.name)
        now = state()
        changed += [[info.name, key] for key in before if now[key] != before[key]]
        before = now
print(json.dumps(changed))
"""


def test_importing_any_module_changes_nothing_global():
    """A notebook, a test runner or a MONAI Label server that imports any module of the package keeps its
    excepthook, logging record factory, sys.path and warnings filters; the one-line errors are installed by the
    command line's main and by each bundle's initialize (freq_transforms.bundle.checks.install_one_line_errors)."""
    result = subprocess.run([sys.executable, "-c", IMPORT_STATE], capture_output=True, text=True, timeout=600,
                            cwd=ROOT.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []

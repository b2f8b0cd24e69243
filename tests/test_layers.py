"""The layer rules, checked in fresh interpreters: the library never imports Ray (pipelines/
and serve/ are the Ray adapters), the edge runtime imports without torch, and nothing but
tests imports audiodistill.testing."""

import subprocess
import sys

IMPORT_ALL = """
import importlib, pkgutil, sys
import audiodistill
names = [m.name for m in pkgutil.walk_packages(audiodistill.__path__, "audiodistill.")]
for name in names:
    importlib.import_module(name)
print(len(names), sorted(m for m in sys.modules if m.split(".")[0] == "ray"))
"""

EDGE_ONLY = """
import sys
for name in ("torch", "ray", "transformers", "torchaudio"):
    sys.modules[name] = None  # an import of it fails, as on an [edge] install
import importlib, pkgutil
import audiodistill.edge
for m in pkgutil.walk_packages(audiodistill.edge.__path__, "audiodistill.edge."):
    importlib.import_module(m.name)
for name in ("audiodistill.evaluation.edge_bench", "audiodistill.online.client",
             "audiodistill.cli"):
    importlib.import_module(name)
print("ok")
"""


NOTHING_IMPORTS_TESTING = """
import importlib, pkgutil, sys

def walk(name):  # walk_packages would import audiodistill.testing itself to look inside
    module = importlib.import_module(name)
    for m in pkgutil.iter_modules(getattr(module, "__path__", [])):
        if f"{name}.{m.name}" != "audiodistill.testing":
            walk(f"{name}.{m.name}")

for name in ("audiodistill", "pipelines", "serve"):
    walk(name)
print(sorted(m for m in sys.modules if m.startswith("audiodistill.testing")))
"""


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_no_library_module_imports_ray():
    count, ray_modules = _run(IMPORT_ALL).split(" ", 1)
    assert int(count) > 40 and ray_modules == "[]"


def test_the_edge_runtime_imports_without_torch():
    assert _run(EDGE_ONLY) == "ok"


def test_production_code_never_imports_the_test_helpers():
    assert _run(NOTHING_IMPORTS_TESTING) == "[]"


def test_no_module_name_appears_twice():
    """Each file name says what it holds, once: `ls -R` is a map of the concepts."""
    from collections import Counter
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    names = Counter(
        p.name
        for folder in ("audiodistill", "pipelines", "serve")
        for p in (root / folder).rglob("*.py")
        if p.name != "__init__.py"
    )
    assert [name for name, n in names.items() if n > 1] == []


def test_every_package_says_what_it_owns():
    import importlib
    import pkgutil

    import audiodistill

    packages = [m.name for m in pkgutil.walk_packages(audiodistill.__path__, "audiodistill.")]
    packages = [name for name in packages if hasattr(importlib.import_module(name), "__path__")]
    assert len(packages) >= 10
    assert [p for p in packages if not (importlib.import_module(p).__doc__ or "").strip()] == []

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

"""The generated benchmark page is in sync with the committed results, and no doc names a
scratch or out-of-repository path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("/tmp/", "shared/data", "../shared")


def test_benchmarks_page_regenerates_from_committed_results():
    result = subprocess.run(
        [sys.executable, "benchmarks/tables.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_docs_name_no_scratch_or_outside_paths():
    pages = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").rglob("*") if p.is_file())]
    found = [
        f"{page.relative_to(ROOT)}:{number}: {line.strip()}"
        for page in pages
        for number, line in enumerate(page.read_text(errors="replace").splitlines(), 1)
        if any(bad in line for bad in FORBIDDEN)
    ]
    assert not found, "\n".join(found)

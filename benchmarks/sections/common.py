"""Reading the committed results and formatting them: the helpers every section uses."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"

# Where the recordings were kept: outside the repository, so the page names a placeholder.
REAL_SAMPLE = "/path/to/librispeech-sample"


def load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def clean(command: str) -> str:
    """A recorded command line with its scratch paths made repository-relative or placeholders.

    `/tmp/fresh/` was a clean clone's root (so `/tmp/fresh/runs/x` is `runs/x`); any other
    scratch path outside the repository becomes `/path/to/<its last part>`.
    """
    command = command.replace("/tmp/fresh/", "")
    return re.sub(r"/tmp/(?:[^/\s]+/)*([^/\s]+)", r"/path/to/\1", command)


def pct(x: float | None) -> str:
    return "" if x is None else f"{x * 100:.1f}%"


def ms(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds * 1000:.0f}"


def pair_ms(a: float | None, b: float | None) -> str:
    return f"{ms(a)} / {ms(b)}"


def times(x: float) -> str:
    return f"{x:.1f}x"


def table(header: list[str], align: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return out + [""]


def code(lines: list[str]) -> list[str]:
    return ["```bash", *lines, "```", ""]


def sources(*paths: str, taken: str = "") -> str:
    """The results files of a table, and when they were taken (from the lab notebook)."""
    files = "Results: " + ", ".join(f"`benchmarks/results/{p}`" for p in paths)
    return files + (f"; taken {taken} (lab_notebook.md)." if taken else ".")


def eval_report(name: str) -> dict:
    return load(f"eval/{name}/report.json") if "/" not in name else load(name)


def model(report: dict, name: str) -> dict:
    for m in report["models"]:
        if m["name"] == name:
            return m
    raise KeyError(f"{name!r} not in report ({[m['name'] for m in report['models']]})")


def eval_command(report: dict) -> str:
    """One `audiodistill eval` line for a whole report, from the per-model commands it records.

    `audiodistill eval` records for each model the command that measures it (on recordings
    without transcripts: with the reference model listed first); the union of their
    `--model` arguments, in order, with the first command's other arguments, is the command
    that re-measures the report.
    """
    models: list[str] = []
    rest: list[str] = []
    for i, m in enumerate(report["models"]):
        words = shlex.split(clean(m["command"]))
        j = 2
        while j < len(words):
            if words[j] == "--model":
                if words[j + 1] not in models:
                    models.append(words[j + 1])
                j += 2
                continue
            if i == 0:
                rest.append(words[j])
            j += 1
    parts = ["audiodistill", "eval"]
    for m in models:
        parts += ["--model", m]
    return " ".join(parts + rest)

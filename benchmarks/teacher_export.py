"""The teacher exported the way the students are: the strongest baseline for the export.

    python benchmarks/teacher_export.py --out runs/exp/teacher_fill_onnx
    audiodistill eval --model teacher:hf-fill --model runs/exp/teacher_fill_onnx ...

A whisper-distil student that keeps every decoder layer and is never trained is the bundled
teacher with the window fill (`audiodistill eval`'s `teacher:hf-fill`). Saved and exported to
int8 ONNX like a student, it shows what the export and its runtime alone give the teacher,
so that a student's speed-up over it is what distillation itself buys.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def export_teacher(out: Path) -> dict:
    """Save the filled teacher as a whisper-distil student and export it (int8 only)."""
    from transformers import WhisperConfig

    from audiodistill.export.exporter import export_onnx
    from audiodistill.students.whisper_distil import WhisperDistilOptions, WhisperDistilTask
    from audiodistill.teachers.convert import ensure_bundled_hf

    layers = WhisperConfig.from_pretrained(ensure_bundled_hf()).decoder_layers
    task = WhisperDistilTask(WhisperDistilOptions(decoder_layers=layers, fill_window=True))
    with tempfile.TemporaryDirectory() as scratch:
        saved = Path(scratch) / "model"
        task.save(task.build().eval(), saved)
        return export_onnx(saved, out, int8=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="export directory")
    args = parser.parse_args(argv)
    export_teacher(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

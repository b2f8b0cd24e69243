"""`audiodistill export`: a trained student as a self-contained ONNX directory.

Streaming students export one chunk step of their encoder (export/streaming_onnx.py);
whisper-distil students an encoder and a decoder step graph (export/whisper_onnx.py);
whisper-causal students an encoder step, a cross-attention and a decoder step graph
(export/causal_onnx.py). Every directory holds a config.json that the edge runtime
(audiodistill.edge) reads first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from audiodistill.config import ConfigError
from audiodistill.errors import ModelError
from audiodistill.export.streaming_onnx import CONFIG_FILE, export_streaming_onnx
from audiodistill.progress import Stages
from audiodistill.students.streaming import STUDENT_KIND

WHISPER_KIND = "whisper-distil"  # config.json "student" of a saved whisper-distil student
CAUSAL_KIND = "whisper-causal"  # ... of a saved whisper-causal student
# the bundled teacher with the window fill, exported as a whisper-distil student: the
# teacher at the export runtime's speed (the baseline a student's speed-up is measured on)
FILLED_TEACHER = "teacher:hf-fill"


@dataclass(frozen=True)
class ExportOptions:
    # saved student directory (streaming, whisper-distil or whisper-causal), or
    # "teacher:hf-fill": the bundled teacher with the window fill, as a whisper-distil export
    model: str
    # export format; ONNX is the one the edge runtime reads
    format: Literal["onnx"] = "onnx"
    # also write model.int8.onnx (dynamic int8, per-channel weights) beside model.onnx
    int8: bool = False
    # keep the fp32 graphs beside the int8 ones; false (with int8) leaves only int8: the
    # smallest directory a device (or a release under models/) needs
    keep_fp32: bool = True
    # output directory; made self-contained (config, tokenizer, model files)
    out: str = "runs/export"


def export_onnx(model_dir: str | Path, out_dir: str | Path, int8: bool = False) -> dict:
    """Export the saved student at `model_dir` to `out_dir`; return the export's config.

    Streaming students as described above; whisper-distil students as an encoder and a
    decoder graph (audiodistill/export/whisper_onnx.py).
    """
    if str(model_dir) == FILLED_TEACHER:
        return _export_filled_teacher(out_dir, int8)
    kind = student_kind(model_dir)
    if kind == WHISPER_KIND:
        from audiodistill.export.whisper_onnx import export_whisper_onnx

        return export_whisper_onnx(model_dir, out_dir, int8)
    if kind == CAUSAL_KIND:
        from audiodistill.export.causal_onnx import export_causal_onnx

        return export_causal_onnx(model_dir, out_dir, int8)
    return export_streaming_onnx(model_dir, out_dir, int8)


def _export_filled_teacher(out_dir: str | Path, int8: bool) -> dict:
    """The filled teacher saved as an untrained whisper-distil student, then exported."""
    import tempfile

    from audiodistill.export.whisper_onnx import export_whisper_onnx
    from audiodistill.students.whisper_distil import filled_teacher_task

    task = filled_teacher_task()
    with tempfile.TemporaryDirectory() as scratch:
        task.save(task.build().eval(), Path(scratch))
        return export_whisper_onnx(scratch, out_dir, int8)


def student_kind(model_dir: str | Path) -> str:
    """The kind of the saved student at `model_dir`; ModelError unless it can be exported."""
    if str(model_dir) == FILLED_TEACHER:
        return WHISPER_KIND
    config_path = Path(model_dir) / CONFIG_FILE
    if not config_path.is_file():
        raise ModelError(f"{model_dir}: not a saved student (no {CONFIG_FILE})")
    kind = json.loads(config_path.read_text()).get("student")
    if kind not in (STUDENT_KIND, WHISPER_KIND, CAUSAL_KIND):
        raise ModelError(
            f"{model_dir}: ONNX export takes {STUDENT_KIND}, {WHISPER_KIND} or {CAUSAL_KIND} "
            f"students, not {kind!r}"
        )
    return kind


def drop_fp32(out: Path) -> dict:
    """Delete an export's fp32 graphs and their entry in config.json; its new config."""
    config = json.loads((out / CONFIG_FILE).read_text())
    fp32 = config["models"].pop("fp32")
    for name in fp32.values() if isinstance(fp32, dict) else [fp32]:
        (out / name).unlink()
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=1))
    return config


def run(options: ExportOptions) -> dict:
    """The `export` command: write the directory, return a summary (files and sizes)."""
    if not options.keep_fp32 and not options.int8:
        raise ConfigError("keep_fp32=false leaves no model without int8=true")
    kind = student_kind(options.model)
    stages = Stages("export")
    int8 = " and quantizing to int8" if options.int8 else ""
    what = "the teacher with the window fill" if options.model == FILLED_TEACHER else (
        f"the {kind} student {options.model}")  # fmt: skip
    stages(f"tracing {what} to ONNX{int8}")
    config = export_onnx(options.model, options.out, options.int8)
    if not options.keep_fp32:
        config = drop_fp32(Path(options.out))
    sizes = {p.name: p.stat().st_size for p in sorted(Path(options.out).glob("*.onnx"))}
    stages(f"wrote {options.out}")
    return {"out": str(options.out), "student": config["student"], "bytes": sizes}

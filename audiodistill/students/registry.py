"""The one place that knows every kind of student: its options, its training task, its loader.

A student registers here and nowhere else: `STUDENT_KINDS` names the options dataclass it
declares (which becomes its section of `DistillOptions`, e.g. `streaming:` in a distill
YAML), its `StudentTask` and the function that loads its export. `build_task(options)` turns
DistillOptions into the task the training loop runs; `load_model(path)` reads an export's
config.json "student" key and hands the directory to that kind's loader.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audiodistill.config import ConfigError
from audiodistill.students.codec_student import CodecOptions
from audiodistill.students.fake_student import FakeStudentOptions
from audiodistill.students.streaming_task import StreamingOptions
from audiodistill.students.whisper_causal import WhisperCausalOptions
from audiodistill.students.whisper_distil import WhisperDistilOptions

if TYPE_CHECKING:
    from audiodistill.training.distill_options import DistillOptions
    from audiodistill.training.loop import StudentTask


@dataclass(frozen=True)
class StudentKind:
    """One kind of student."""

    section: str  # its DistillOptions field (a YAML section), holding `options`
    options: type  # the options dataclass the student declares
    task: str  # "module:Class" of its StudentTask, built from its options; imported on use
    loader: str  # "module:function" loading its export directory; imported on use


STUDENT_KINDS = {
    # a chunked encoder (the teacher's, made causal, or a Conformer), character CTC head
    "streaming": StudentKind(
        "streaming",
        StreamingOptions,
        "audiodistill.students.streaming_task:StreamingTask",
        "audiodistill.students.streaming:load_student",
    ),
    # the teacher's encoder plus K of its decoder layers
    "whisper-distil": StudentKind(
        "whisper_distil",
        WhisperDistilOptions,
        "audiodistill.students.whisper_distil:WhisperDistilTask",
        "audiodistill.students.whisper_distil:WhisperDistilModel",
    ),
    # the teacher's encoder made causal in chunks, read by K of the teacher's decoder layers
    "whisper-causal": StudentKind(
        "whisper_causal",
        WhisperCausalOptions,
        "audiodistill.students.whisper_causal:WhisperCausalTask",
        "audiodistill.students.whisper_causal:WhisperCausalModel",
    ),
    # a smaller neural audio codec distilled from a codec teacher
    "codec": StudentKind(
        "codec",
        CodecOptions,
        "audiodistill.students.codec_student:CodecTask",
        "audiodistill.students.codec_student:load_student",
    ),
    # tone digits: a tiny real learning problem for tests and dry runs
    "fake": StudentKind(
        "fake",
        FakeStudentOptions,
        "audiodistill.students.fake_student:FakeStudentTask",
        "audiodistill.students.fake_student:load_fake_student",
    ),
}
STUDENTS = tuple(STUDENT_KINDS)  # the kinds, in the order --help lists them


def _imported(path: str) -> Any:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def build_task(options: DistillOptions) -> StudentTask:
    """The training task for `options.student`; ConfigError naming the kinds for an unknown one."""
    kind = STUDENT_KINDS.get(options.student)
    if kind is None:
        raise ConfigError(
            f"student: unknown kind {options.student!r} (known: {', '.join(STUDENTS)})"
        )
    return _imported(kind.task)(getattr(options, kind.section))


def load_model(path: str | Path) -> Any:
    """An exported student, ready for inference: ASR students `transcribe(audios) -> list[str]`,
    codec students `encode(audio) -> codes` and `decode(codes) -> audio`."""
    config_path = Path(path) / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{path}: not an exported student (no config.json)")
    name = json.loads(config_path.read_text()).get("student")
    if name not in STUDENT_KINDS:
        raise ValueError(
            f"{config_path}: unknown student kind {name!r} (known: {', '.join(STUDENTS)})"
        )
    return _imported(STUDENT_KINDS[name].loader)(path)

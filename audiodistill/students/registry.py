"""The one place that knows every kind of student: training tasks and exported-model loaders.

`build_task(options)` turns DistillOptions into the StudentTask the training loop runs;
`load_model(path)` reads an export's config.json "student" key and hands the directory to
that student's loader. A new student registers in both functions and nowhere else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from audiodistill.config import ConfigError
from audiodistill.training.loop import StudentTask
from audiodistill.training.options import DistillOptions

STUDENTS = ("streaming", "whisper-distil", "codec", "fake")  # kinds build_task knows


def build_task(options: DistillOptions) -> StudentTask:
    """The training task for `options.student`; ConfigError naming the kinds for an unknown one."""
    if options.student == "fake":
        from audiodistill.students.fake_student import FakeStudentTask

        return FakeStudentTask(options.fake)
    if options.student == "whisper-distil":
        from audiodistill.students.whisper_distil import WhisperDistilTask

        return WhisperDistilTask(options.whisper_distil)
    if options.student == "streaming":
        from audiodistill.students.streaming_task import StreamingTask

        return StreamingTask(options.streaming)
    if options.student == "codec":
        from audiodistill.students.codec_student import CodecTask

        return CodecTask(options.codec)
    raise ConfigError(f"student: unknown kind {options.student!r} (known: {', '.join(STUDENTS)})")


def load_model(path: str | Path) -> Any:
    """An exported student, ready for inference: ASR students `transcribe(audios) -> list[str]`,
    codec students `encode(audio) -> codes` and `decode(codes) -> audio`."""
    config_path = Path(path) / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{path}: not an exported student (no config.json)")
    kind = json.loads(config_path.read_text()).get("student")
    if kind == "fake":
        from audiodistill.students.fake_student import load_fake_student

        return load_fake_student(path)
    if kind == "whisper-distil":
        from audiodistill.students.whisper_distil import WhisperDistilModel

        return WhisperDistilModel(path)
    if kind == "streaming":
        from audiodistill.students.streaming import load_student

        return load_student(path)
    if kind == "codec":
        from audiodistill.students.codec_student import load_student as load_codec_student

        return load_codec_student(path)
    raise ValueError(f"{config_path}: unknown student kind {kind!r} (known: {', '.join(STUDENTS)})")

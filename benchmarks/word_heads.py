"""What word times lose when a Whisper-type model's alignment heads are unknown.

A whisper-distil student keeps the teacher's alignment heads only where its kept decoder
layers hold them; without any it falls back to every head of its upper half of layers
(`whisper_alignment.alignment_heads`). This times the known-boundary clips
(audiodistill.data.synth.word_clips) both ways, for the transformers teacher (tiny.en) and the
released whisper-distil student, and writes the errors (audiodistill.evaluation.word_timing.errors).

    python benchmarks/word_heads.py --out benchmarks/results/word_heads.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from audiodistill.data.synth.word_clips import word_clips
from audiodistill.decoding.words import snap_to_speech
from audiodistill.evaluation.word_timing import errors

RELEASED = "models/whisper-tiny-en-distil"


def timed(transcribe_words: Callable, clips) -> dict:
    """Errors of the alignment's own times and of the served (snapped) ones."""
    aligned = [transcribe_words([clip.audio])[0] for clip in clips]
    served = [snap_to_speech(words, clip.audio) for words, clip in zip(aligned, clips, strict=True)]
    references = [clip.words for clip in clips]
    return {
        "served": asdict(errors(references, served)),
        "alignment": asdict(errors(references, aligned)),
    }


def main() -> None:
    from audiodistill.edge.whisper import OnnxWhisper
    from audiodistill.teachers.whisper_hf import HFWhisperTeacher

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="benchmarks/results/word_heads.json")
    out = Path(parser.parse_args().out)
    clips, rows = word_clips(), {}
    teacher = HFWhisperTeacher()
    name = "whisper-tiny.en (transformers)"
    rows[f"{name}, its alignment heads"] = timed(teacher.transcribe_words, clips)
    teacher.model.generation_config.alignment_heads = None
    rows[f"{name}, all heads of layers 2-3"] = timed(teacher.transcribe_words, clips)
    student = OnnxWhisper(RELEASED, int8=True)
    name = "whisper-tiny-en-distil (onnx int8)"
    rows[f"{name}, the teacher's heads in its layers"] = timed(student.transcribe_words, clips)
    student.config["alignment_heads"] = None
    rows[f"{name}, all heads of layers 1-2"] = timed(student.transcribe_words, clips)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1) + "\n")
    for name, row in rows.items():
        served, alone = row["served"], row["alignment"]
        print(f"{name}: served {_ms(served)}, alignment alone {_ms(alone)} (start/end/joined)")


def _ms(errors: dict) -> str:
    keys = ("start_mae_s", "end_mae_s", "joined_mae_s")
    return " / ".join(f"{errors[k] * 1000:.0f}" for k in keys)


if __name__ == "__main__":
    main()

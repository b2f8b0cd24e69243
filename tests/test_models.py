"""The students released under models/ load and transcribe on a fresh clone."""

import json
from pathlib import Path

import pytest

from audiodistill.evaluation.wer import wer

MODELS = Path(__file__).resolve().parent.parent / "models"
RELEASED = sorted(p for p in MODELS.glob("*") if (p / "config.json").is_file())
MAX_BYTES = 40 * 10**6  # a released student, its LM included


def test_something_is_released():
    assert RELEASED, "models/ holds no released student"


@pytest.mark.parametrize("path", RELEASED, ids=lambda p: p.name)
def test_released_student_is_small_carded_and_transcribes(path, speech):
    from audiodistill.evaluation.measurement import load_eval_model

    assert sum(f.stat().st_size for f in path.iterdir()) <= MAX_BYTES
    card = (path / "README.md").read_text()
    assert "Reproduce" in card and "audiodistill" in card
    assert "fp32" not in json.loads((path / "config.json").read_text())["models"]
    model = load_eval_model(str(path))
    sentences, clips = speech
    texts = model.transcribe(clips[:3])
    assert wer(" ".join(sentences[:3]), " ".join(texts)) < 0.5

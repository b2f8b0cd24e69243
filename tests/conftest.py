import pytest


@pytest.fixture(scope="session")
def speech():
    """(sentences, 16 kHz clips) of TTS speech, shared by every test that needs real audio."""
    from audiodistill.testing.speech import SENTENCES, speak

    return SENTENCES, speak()


@pytest.fixture(scope="session")
def hf_teacher_dir(tmp_path_factory):
    """The bundled teacher converted to transformers format once per test session."""
    from audiodistill.teachers.convert import convert_ct2_whisper

    return convert_ct2_whisper(None, tmp_path_factory.mktemp("teacher") / "tiny.en-hf")

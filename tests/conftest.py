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


def _alive_actors(class_name: str | None = None) -> list[dict]:
    """Alive actors of the connected Ray cluster, read from its GCS: unlike the state API
    (ray.util.state), this needs no dashboard and cannot pick another local Ray instance."""
    from ray._private import state

    return [
        {
            "class_name": a.get("ActorClassName"),
            "node_id": a.get("Address", {}).get("NodeID"),
            "pid": a.get("Pid"),
        }
        for a in state.actors().values()
        if a.get("State") == "ALIVE" and class_name in (None, a.get("ActorClassName"))
    ]


@pytest.fixture
def alive_actors():
    return _alive_actors

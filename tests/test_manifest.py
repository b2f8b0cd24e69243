import json

import numpy as np
import pandas as pd
import pytest

from audiodistill.data.audio import save_wav
from audiodistill.data.manifest import ManifestError, Utterance, read_manifest, write_manifest


@pytest.fixture
def corpus(tmp_path):
    for name in ("a", "sub/b"):
        save_wav(tmp_path / f"{name}.wav", np.zeros(1600, dtype=np.float32))
    return tmp_path


def test_directory_of_audio(corpus):
    rows = read_manifest(corpus)
    assert [u.id for u in rows] == ["a", "sub/b"]
    assert all(u.audio.startswith(str(corpus)) for u in rows)


def test_directory_given_as_a_relative_path(corpus, monkeypatch):
    monkeypatch.chdir(corpus / "sub")
    rows = read_manifest("..")
    assert [u.audio for u in rows] == [str(corpus / "a.wav"), str(corpus / "sub/b.wav")]


def test_jsonl_round_trip_with_relative_paths(corpus):
    utts = [Utterance("a", str(corpus / "a.wav"), 0.1, "hi", "train", "v1", {"voice": "v1"})]
    write_manifest(utts, corpus / "manifest.jsonl")
    assert json.loads((corpus / "manifest.jsonl").read_text())["audio"] == "a.wav"
    assert read_manifest(corpus / "manifest.jsonl") == utts
    assert read_manifest(corpus) == utts  # a dir with manifest.jsonl means that manifest
    assert read_manifest(corpus, split="test") == []


def test_csv_and_parquet(corpus):
    frame = pd.DataFrame({"id": ["1", "2"], "audio": ["a.wav", "sub/b.wav"], "text": ["x", None]})
    frame.to_csv(corpus / "m.csv", index=False)
    frame.to_parquet(corpus / "m.parquet")
    for name in ("m.csv", "m.parquet"):
        rows = read_manifest(corpus / name)
        assert [u.id for u in rows] == ["1", "2"] and rows[1].text is None
        assert rows[0].audio == str(corpus / "a.wav")


@pytest.mark.parametrize(
    "row, message",
    [
        ({"audio": "a.wav"}, "row 2: field 'id'"),
        ({"id": "x"}, "row 2: field 'audio'"),
        ({"id": "x", "audio": "a.wav", "duration": "long"}, "row 2: field 'duration'"),
        ({"id": "x", "audio": "a.wav", "split": "val"}, "row 2: field 'split'"),
        ({"id": "ok", "audio": "a.wav"}, "row 2: field 'id' 'ok' repeats row 1"),
    ],
)
def test_validation_names_row_and_field(tmp_path, row, message):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"id": "ok", "audio": "a.wav"}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(ManifestError, match=message):
        read_manifest(path)


def test_unreadable_sources(tmp_path):
    with pytest.raises(ManifestError, match="no such file"):
        read_manifest(tmp_path / "missing.jsonl")
    (tmp_path / "m.jsonl").write_text("{not json\n")
    with pytest.raises(ManifestError, match="row 1: not valid JSON"):
        read_manifest(tmp_path / "m.jsonl")
    with pytest.raises(ManifestError, match="no audio files"):
        read_manifest(tmp_path)


def test_saved_hf_dataset_keeps_audio_encoded(tmp_path):
    datasets = pytest.importorskip("datasets")
    import io

    import soundfile as sf

    from audiodistill.data.audio import load_audio

    buf = io.BytesIO()
    sf.write(buf, np.zeros(8000, dtype=np.float32), 16000, format="WAV")
    ds = datasets.Dataset.from_dict(
        {"audio": [{"bytes": buf.getvalue(), "path": None}], "text": ["hello"]}
    ).cast_column("audio", datasets.Audio(decode=False))
    ds.save_to_disk(str(tmp_path / "ds"))
    (row,) = read_manifest(tmp_path / "ds")
    assert row.id == "0" and row.text == "hello" and row.audio == ""
    assert len(load_audio(row.audio_bytes)) == 8000


def test_assign_splits_is_stable_per_id_and_keeps_given_splits():
    from audiodistill.data.manifest import assign_splits

    corpus = [Utterance(f"spk{i}/utt", f"/{i}.wav") for i in range(400)]
    corpus.append(Utterance("given", "/g.wav", split="train"))
    split = assign_splits(corpus, dev_fraction=0.1, test_fraction=0.2, seed=0)
    counts = {s: sum(u.split == s for u in split) for s in ("train", "dev", "test")}
    assert 30 <= counts["dev"] <= 50 and 65 <= counts["test"] <= 95
    assert split[-1].split == "train"
    # an id lands in the same split whatever else the corpus holds: a grown corpus keeps
    # its held-out recordings held out
    grown = assign_splits([*corpus[:200], Utterance("new", "/n.wav")], 0.1, 0.2, seed=0)
    assert [u.split for u in grown[:200]] == [u.split for u in split[:200]]
    other_seed = assign_splits(corpus, 0.1, 0.2, seed=1)
    assert [u.split for u in other_seed] != [u.split for u in split]


def test_manifest_command_writes_splits(corpus, tmp_path):
    from audiodistill.cli import main

    out = tmp_path / "listed" / "manifest.jsonl"
    assert main(["manifest", f"source={corpus}", f"out={out}", "test_fraction=1.0"]) == 0
    assert [u.split for u in read_manifest(out)] == ["test", "test"]
    assert read_manifest(out)[0].audio == str(corpus / "a.wav")
    assert main(["manifest", f"source={corpus}", f"out={out}", "test_fraction=1.5"]) == 2

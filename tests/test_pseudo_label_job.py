"""The Ray pseudo-label job end to end: exactly once, failures per item, resume, a grown or
edited manifest, a lost node; and the lazy shard reader it streams from."""

import dataclasses
import json
import os
import signal
import threading
import time

import numpy as np
import pandas as pd
import pytest

from audiodistill.data.audio import SAMPLE_RATE, save_wav
from audiodistill.data.label_store import finished_shards, read_labels, shard_path
from audiodistill.data.manifest import ManifestError, Utterance, read_manifest, write_manifest
from audiodistill.teachers import TeacherOptions
from audiodistill.teachers.shard_labelling import PlanMismatchError, PseudoLabelOptions, iter_shards
from pipelines.pseudo_label import run, shard_attempts

pytestmark = pytest.mark.integration

N_GOOD = 20


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """20 readable clips of different lengths, one empty file and one that is not audio."""
    root = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    utts = []
    for i in range(N_GOOD):
        audio = 0.1 * rng.standard_normal(SAMPLE_RATE // 4 + 160 * i).astype(np.float32)
        save_wav(root / f"u{i:02d}.wav", audio)
        utts.append(Utterance(f"u{i:02d}", str(root / f"u{i:02d}.wav"), text="some words"))
    (root / "empty.wav").write_bytes(b"")
    (root / "junk.wav").write_bytes(b"definitely not a RIFF file" * 20)
    utts.insert(5, Utterance("empty", str(root / "empty.wav")))
    utts.insert(13, Utterance("junk", str(root / "junk.wav")))
    write_manifest(utts, root / "manifest.jsonl")
    return root / "manifest.jsonl"


@pytest.fixture
def ray_session():
    import ray

    yield
    ray.shutdown()


def _options(manifest, out, **kw):
    teacher = TeacherOptions(backend="fake", threads=1)
    return PseudoLabelOptions(
        manifest=str(manifest), out=str(out), shard_size=4, workers=2, teacher=teacher, **kw
    )


def _assert_exactly_once(out, ids=None):
    labels = read_labels(out)
    ids = ids or [f"u{i:02d}" for i in range(N_GOOD)] + ["empty", "junk"]
    assert sorted(labels["id"]) == sorted(ids)
    assert labels["id"].is_unique
    return labels


def _ids(shards):
    return [[u.id for u in shard.utterances] for shard in shards]


def test_shards_are_the_same_from_every_manifest_format(corpus, tmp_path):
    """JSONL, CSV and Parquet manifests of the same rows give the same shards; a directory
    gives its files in sorted path order, as the whole-list reader did."""
    utts = read_manifest(corpus)
    frame = pd.DataFrame({"id": [u.id for u in utts], "audio": [u.audio for u in utts]})
    frame.to_csv(tmp_path / "m.csv", index=False)
    frame.to_parquet(tmp_path / "m.parquet")
    expected = [[u.id for u in utts[i : i + 4]] for i in range(0, len(utts), 4)]
    for manifest in (corpus, tmp_path / "m.csv", tmp_path / "m.parquet"):
        assert _ids(iter_shards(PseudoLabelOptions(str(manifest), shard_size=4))) == expected
    for name in ("b.wav", "a.wav", "a/c.wav", "a/notes.txt"):
        (tmp_path / "dir" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "dir" / name).write_bytes(b"")
    shards = iter_shards(PseudoLabelOptions(str(tmp_path / "dir"), shard_size=2))
    assert _ids(shards) == [["a/c", "a"], ["b"]]
    train = [dataclasses.replace(u, split="train" if i % 2 else "dev") for i, u in enumerate(utts)]
    write_manifest(train, tmp_path / "split.jsonl")
    options = PseudoLabelOptions(
        str(tmp_path / "split.jsonl"), split="train", limit=5, shard_size=2
    )
    first = [u.id for u in train if u.split == "train"][:5]
    assert _ids(iter_shards(options)) == [first[:2], first[2:4], first[4:]]


def test_shards_are_read_a_piece_at_a_time(corpus, tmp_path):
    """A bad row far down the manifest fails only when the reader gets there: the shards
    before it have been handed out already."""
    lines = corpus.read_text().splitlines()
    lines.insert(9, "{not json")
    (corpus.parent / "bad_row_10.jsonl").write_text("\n".join(lines) + "\n")
    shards = iter_shards(PseudoLabelOptions(str(corpus.parent / "bad_row_10.jsonl"), shard_size=4))
    assert _ids([next(shards), next(shards)]) == [
        ["u00", "u01", "u02", "u03"],
        ["u04", "empty", "u05", "u06"],
    ]
    with pytest.raises(ManifestError, match="row 10: not valid JSON"):
        next(shards)


def test_job_labels_each_id_once_and_fails_bad_items_alone(corpus, tmp_path, ray_session):
    summary = run(_options(corpus, tmp_path / "run"), progress=False)
    labels = _assert_exactly_once(tmp_path / "run")
    good = labels[labels["error"].isna()]
    assert len(good) == N_GOOD and (good["text"].str.len() > 0).all()
    assert summary["items"] == N_GOOD + 2 and summary["failed"] == 2
    assert summary["audio_seconds_per_second"] > 0
    lines = (tmp_path / "run" / "errors.jsonl").read_text().splitlines()
    errors = {e["id"]: e["error"] for e in map(json.loads, lines)}
    assert errors.keys() == {"empty", "junk"}
    assert "file is empty" in errors["empty"] and "not decodable" in errors["junk"]
    assert (tmp_path / "run" / "config.yaml").exists()


def test_rerun_redoes_only_missing_shards(corpus, tmp_path, ray_session):
    out = tmp_path / "run"
    run(_options(corpus, out), progress=False)
    shard_path(out, 2).unlink()
    before = {i: shard_path(out, i).stat().st_mtime_ns for i in finished_shards(out)}
    summary = run(_options(corpus, out), progress=False)
    assert summary["labelled_this_run"] == 4
    assert {i: shard_path(out, i).stat().st_mtime_ns for i in before} == before
    _assert_exactly_once(out)
    with pytest.raises(PlanMismatchError, match="overwrite=true"):
        run(_options(corpus, out, limit=10), progress=False)


def test_grown_manifest_labels_only_its_new_shards(corpus, tmp_path, ray_session):
    """Rows appended: full shards stay as they are, the short last one and the new ones are
    labelled. A row inserted in the middle: the shards from there on are labelled again.
    Rows removed: the shard files past the new end stop the job."""
    utts = read_manifest(corpus)
    manifest, out = tmp_path / "manifest.jsonl", tmp_path / "run"
    write_manifest(utts[:18], manifest)  # shards 0-3 full, shard 4 holds 2 rows
    assert run(_options(manifest, out), progress=False)["labelled_this_run"] == 18
    kept = {i: shard_path(out, i).stat().st_mtime_ns for i in range(4)}
    write_manifest(utts, manifest)
    assert run(_options(manifest, out), progress=False)["labelled_this_run"] == 6
    assert {i: shard_path(out, i).stat().st_mtime_ns for i in range(4)} == kept
    _assert_exactly_once(out)
    extra = dataclasses.replace(utts[0], id="extra")
    write_manifest([*utts[:9], extra, *utts[9:]], manifest)  # lands in shard 2
    assert run(_options(manifest, out), progress=False)["labelled_this_run"] == 23 - 8
    assert {i: shard_path(out, i).stat().st_mtime_ns for i in range(2)} == {
        i: kept[i] for i in range(2)
    }
    _assert_exactly_once(out, [u.id for u in utts] + ["extra"])
    write_manifest(utts[:18], manifest)
    with pytest.raises(PlanMismatchError, match="past the end"):
        run(_options(manifest, out), progress=False)


@pytest.mark.slow  # ~45 s on 2 busy cores: a 4-node cluster starts
def test_lost_node_has_its_shard_retried_elsewhere_and_loses_nothing(
    corpus, tmp_path, ray_session
):
    """Two actors on separate nodes; the node of one dies while that actor holds a shard.

    The job's own attempt records must show that shard cut off on the lost node and labelled
    again on another; the output must still hold every row exactly once.
    """
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    nodes = {n.node_id: n for n in (cluster.add_node(num_cpus=1) for _ in range(3))}
    ray.init(address=cluster.address)
    out = tmp_path / "run"
    # 2 s per shard of 4: a shard that has just started is still held when the node dies
    slow_teacher = TeacherOptions(backend="fake", threads=1, fake_seconds_per_item=0.5)
    slow = dataclasses.replace(_options(corpus, out), teacher=slow_teacher)
    job = threading.Thread(target=lambda: run(slow, progress=False))
    try:
        job.start()
        held = _fresh_attempt(out, max_age_s=0.5, timeout_s=120)
        # a dead machine runs nothing: its worker stops at once, then the node goes
        os.kill(held["pid"], signal.SIGKILL)
        cluster.remove_node(nodes[held["node"]], allow_graceful=False)
        job.join(timeout=240)
        assert not job.is_alive(), "job did not finish after losing a node"
        tries = shard_attempts(out)[held["shard"]]
        assert tries[0] == held, "the shard held by the lost node was not its first try"
        retry = tries[-1]
        assert "finished" in retry and retry["node"] != held["node"], f"no retry elsewhere: {tries}"
        assert len(finished_shards(out)) == 6
        _assert_exactly_once(out)
    finally:
        ray.shutdown()
        cluster.shutdown()


def _fresh_attempt(out, max_age_s: float, timeout_s: float) -> dict:
    """A try at a shard that is running and started less than `max_age_s` ago."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        running = [
            a
            for tries in shard_attempts(out).values()
            for a in tries
            if "finished" not in a and time.time() - a["started"] < max_age_s
        ]
        if running:
            return running[0]
        time.sleep(0.02)
    raise AssertionError("no shard was seen starting")

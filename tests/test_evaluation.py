"""One measurement for teacher and students: scoring, labels, model loading, the eval command."""

import json
import math
import shlex

import numpy as np
import pytest
import soundfile as sf

from audiodistill.cli import main
from audiodistill.data.audio import SAMPLE_RATE
from audiodistill.data.manifest import Utterance, read_manifest
from audiodistill.evaluation.measurement import (
    EvalModel,
    EvalOptions,
    data_label,
    eval_command,
    evaluate,
    load_eval_model,
)
from audiodistill.evaluation.wer import normalize_text


@pytest.fixture(scope="module")
def manifest(speech, tmp_path_factory):
    """The shared TTS clips as a test-split manifest on disk."""
    sentences, clips = speech
    root = tmp_path_factory.mktemp("eval_data")
    rows = []
    for i, (text, clip) in enumerate(zip(sentences, clips, strict=True)):
        sf.write(root / f"u{i}.wav", clip, SAMPLE_RATE)
        rows.append({"id": f"u{i}", "audio": f"u{i}.wav", "text": text, "split": "test"})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "manifest.jsonl"


def _echo_model(utterances, drop_last_word=False):
    """Transcribes by looking the reference up by audio length: a perfect (or damaged) model."""
    by_length = {}
    for u in utterances:
        text = u.text.rsplit(" ", 1)[0] if drop_last_word else u.text
        by_length[sf.info(u.audio).frames] = text
    return EvalModel("echo", "test", parameters=10, size_bytes=2_000_000,
                     transcribe=lambda audios: [by_length[len(a)] for a in audios])  # fmt: skip


def test_perfect_and_damaged_models_are_scored(manifest):
    utterances = read_manifest(manifest)
    report, hypotheses = evaluate(_echo_model(utterances), utterances)
    assert report.wer == 0 and report.cer == 0 and hypotheses == [u.text for u in utterances]
    assert report.utterances == len(utterances) and report.size_mb == 2.0
    assert report.rtf > 0 and report.latency_p95_s >= report.latency_p50_s > 0
    words = sum(len(normalize_text(u.text).split()) for u in utterances)
    damaged, _ = evaluate(_echo_model(utterances, drop_last_word=True), utterances)
    assert damaged.deletions == len(utterances) and damaged.substitutions == 0
    assert damaged.wer == pytest.approx(len(utterances) / words)


def test_inline_audio_is_scored_like_files(manifest):
    """Manifests from HF datasets or Parquet carry encoded audio inline and no usable path."""
    from dataclasses import replace

    utterances = read_manifest(manifest)
    model = _echo_model(utterances)
    inline = [replace(u, audio="", audio_bytes=open(u.audio, "rb").read()) for u in utterances]
    report, hypotheses = evaluate(model, inline)
    assert report.wer == 0 and hypotheses == [u.text for u in utterances]


def test_data_label_says_what_the_audio_is():
    synth = [Utterance("a", "/a.wav", meta={"augmentation": "clean", "voice": "v"})]
    real = [Utterance("b", "/b.flac")]
    assert "synthetic" in data_label(synth, "auto")
    assert data_label(real, "auto") == "recorded speech"
    assert data_label(real, "LibriSpeech test-clean") == "LibriSpeech test-clean"


def test_unknown_model_spec_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a model"):
        load_eval_model(str(tmp_path))


def test_eval_command_scores_teacher_and_student(manifest, tmp_path, capsys):
    from audiodistill.students.registry import build_task
    from audiodistill.training.distill_options import DistillOptions

    task = build_task(DistillOptions(student="fake"))
    task.save(task.build(), tmp_path / "fake-student")
    out = tmp_path / "eval"
    argv = ["eval", "--model", "teacher:ct2", "--model", str(tmp_path / "fake-student"),
            "--data", str(manifest), f"out={out}"]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    teacher, student = report["models"]
    assert teacher["kind"] == "teacher" and teacher["wer"] < 0.2
    assert 37e6 < teacher["parameters"] < 39e6  # tiny.en
    assert student["kind"] == "fake" and student["parameters"] > 0
    # the student is compared with the first model on the same utterances
    assert teacher["wer_delta"] is None
    assert student["wer_delta"] == pytest.approx(student["wer"] - teacher["wer"])
    assert student["wer_delta_low"] <= student["wer_delta"] <= student["wer_delta_high"]
    assert report["data"] == "recorded speech"  # no synth metadata in this manifest
    lines = (out / "hypotheses.jsonl").read_text().splitlines()
    assert len(lines) == 2 * len(read_manifest(manifest))
    assert "| fake-student | fake |" in capsys.readouterr().out
    assert (out / "config.yaml").is_file()
    assert teacher["peak_rss_mb"] > 50 and student["peak_rss_mb"] > 50  # each its own process
    assert teacher["latency_p99_s"] >= teacher["latency_p95_s"] >= teacher["latency_p50_s"]
    assert teacher["chunk_latencies_s"] is None  # not a streaming model
    assert {"wer_vs_rtf.png", "wer_vs_size.png"} <= {p.name for p in (out / "plots").iterdir()}
    # the recorded command reproduces its row
    assert main(shlex.split(student["command"])[1:]) == 0
    again = json.loads((out / "report.json").read_text())["models"]
    assert len(again) == 1 and again[0]["wer"] == student["wer"]


def test_recordings_without_transcripts_score_agreement_with_the_first_model(
    manifest, tmp_path, capsys
):
    from audiodistill.students.registry import build_task
    from audiodistill.training.distill_options import DistillOptions

    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    untranscribed = manifest.parent / "untranscribed.jsonl"
    untranscribed.write_text("".join(json.dumps({**r, "text": None}) + "\n" for r in rows))
    task = build_task(DistillOptions(student="fake"))
    task.save(task.build(), tmp_path / "fake-student")
    out = tmp_path / "eval"
    argv = ["eval", "--model", "teacher:ct2", "--model", str(tmp_path / "fake-student"),
            "--data", str(untranscribed), f"out={out}"]  # fmt: skip
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    teacher, student = report["models"]
    assert teacher["metric"] == student["metric"] == "agreement_wer"
    assert teacher["wer"] == 0 and student["reference_model"] == teacher["name"]
    assert student["wer"] > 0 and student["wer_delta"] is None  # nothing to compare beyond it
    assert "scored against" in report["data"]
    references = [json.loads(line)["reference"] for line in (out / "hypotheses.jsonl").open()]
    teacher_texts = [json.loads(line)["hypothesis"] for line in (out / "hypotheses.jsonl").open()]
    assert references[: len(rows)] == teacher_texts[: len(rows)] != [None] * len(rows)
    table = capsys.readouterr().out
    assert f"agreement WER vs {teacher['name']}" in table and "| reference | n/a |" in table
    # a student's recorded command names the model it was scored against, first
    assert shlex.split(student["command"])[2:6] == [
        "--model", "teacher:ct2", "--model", str(tmp_path / "fake-student")
    ]  # fmt: skip
    refused = main([*argv[:5], "--data", str(untranscribed), "reference=text", f"out={out}"])
    assert refused == 2


def test_recorded_command_names_every_non_default_option():
    options = EvalOptions(models=("a", "b"), data="d m.jsonl", split=None, limit=3,
                          data_label="recorded speech", out="o")  # fmt: skip
    command = eval_command(options, "b")
    assert shlex.split(command)[:6] == [
        "audiodistill",
        "eval",
        "--model",
        "b",
        "--data",
        "d m.jsonl",
    ]
    assert shlex.split(command)[6:] == [
        "split=null",
        "limit=3",
        "data_label=recorded speech",
        "out=o",
    ]


@pytest.fixture(scope="module")
def streaming_student(tmp_path_factory):
    from audiodistill.testing.dummies import save_untrained_streaming_student

    return save_untrained_streaming_student(tmp_path_factory.mktemp("students") / "stream")


def test_streaming_student_gets_chunk_and_final_latencies(manifest, streaming_student):
    utterances = read_manifest(manifest)
    model = load_eval_model(streaming_student)
    report, _ = evaluate(model, utterances)
    assert report.kind == "streaming" and report.peak_rss_mb > 0
    piece = model.chunk_ms * SAMPLE_RATE // 1000
    chunks = sum(math.ceil(sf.info(u.audio).frames / piece) for u in utterances)
    assert len(report.chunk_latencies_s) == chunks  # one accept() per chunk of audio
    assert len(report.final_latencies_s) == len(utterances)
    assert 0 < report.chunk_latency_p50_s <= report.chunk_latency_p95_s
    assert 0 < report.final_latency_p50_s <= report.final_latency_p95_s


@pytest.fixture(scope="module")
def local_run(manifest, streaming_student, tmp_path_factory):
    """The streaming student scored by `run`: a fresh local process, no Ray."""
    from audiodistill.evaluation.measurement import run

    out = tmp_path_factory.mktemp("local_eval")
    run(EvalOptions(models=(streaming_student,), data=str(manifest), out=str(out)))
    return out


def test_run_writes_streaming_samples_plots_and_results_page(local_run, tmp_path):
    report = json.loads((local_run / "report.json").read_text())
    (model,) = report["models"]
    assert model["final_latency_p95_s"] > 0 and len(model["final_latencies_s"]) == 6
    assert model["peak_rss_mb"] > 50 and model["command"].startswith("audiodistill eval --model")
    assert report["split"] == "test" and report["utterances"] == 6
    assert (local_run / "plots" / "streaming_latency_cdf.png").stat().st_size > 1000
    out = tmp_path / "results.md"
    assert main(["results", "--report", str(local_run / "report.json"), "--out", str(out)]) == 0
    assert model["command"] in out.read_text() and report["data"] in out.read_text()


@pytest.mark.integration
def test_ray_shards_give_the_same_hypotheses_and_wer(
    local_run, manifest, streaming_student, tmp_path
):  # noqa: E501
    from pipelines.evaluate import run

    (ray_report,) = run(EvalOptions(models=(streaming_student,), data=str(manifest),
                                    out=str(tmp_path), workers=2))  # fmt: skip
    (local,) = json.loads((local_run / "report.json").read_text())["models"]
    assert ray_report.wer == local["wer"] and ray_report.cer == local["cer"]
    hypotheses = [(local_run / "hypotheses.jsonl"), (tmp_path / "hypotheses.jsonl")]
    assert hypotheses[0].read_text() == hypotheses[1].read_text()  # manifest order kept
    assert len(ray_report.final_latencies_s) == 6 and ray_report.peak_rss_mb > 50
    assert "workers=2" in ray_report.command


def test_eval_refuses_a_manifest_without_references(tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros(SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE)
    from audiodistill.evaluation.measurement import EvalOptions, run

    with pytest.raises(ValueError, match="needs a transcript on every row"):
        run(EvalOptions(data=str(tmp_path), split=None, reference="text", out=str(tmp_path)))
    with pytest.raises(ValueError, match="list the teacher first"):
        run(EvalOptions(data=str(tmp_path), split=None, out=str(tmp_path / "out")))

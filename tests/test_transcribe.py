"""`audiodistill transcribe --model DIR`: the released students run in-process on files and
on PCM from stdin, in every output format, without torch; `bench` on a whisper-distil export."""

import json
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from audiodistill.cli import main
from audiodistill.data.audio import SAMPLE_RATE, resample, save_wav
from audiodistill.evaluation.edge_bench import BenchOptions, run_bench
from audiodistill.evaluation.wer import wer
from audiodistill.online.client import TranscribeOptions

MODELS = Path(__file__).resolve().parent.parent / "models"
STREAMING = MODELS / "whisper-tiny-en-streaming"
DISTIL = MODELS / "whisper-tiny-en-distil"
RATE = 44_100  # the recording's rate: every input is resampled on the way in
LEAD_S, PAUSE_S = 0.5, 1.5  # silence before the first sentence, and between the two
CLI = [sys.executable, "-c", "import sys; from audiodistill.cli import main; sys.exit(main())"]


@pytest.fixture(scope="module")
def recording(speech, tmp_path_factory):
    """(two sentences, a 44.1 kHz WAV of them read with a pause between, its s16le PCM)."""
    sentences, clips = speech
    lead, pause = np.zeros(int(LEAD_S * SAMPLE_RATE)), np.zeros(int(PAUSE_S * SAMPLE_RATE))
    audio = np.concatenate([lead, clips[0], pause, clips[1], lead]).astype(np.float32)
    path = tmp_path_factory.mktemp("recording") / "two.wav"
    save_wav(path, resample(audio, SAMPLE_RATE, RATE), RATE)
    pcm = (resample(audio, SAMPLE_RATE, RATE) * 32767).astype("<i2").tobytes()
    return sentences[:2], path, pcm


@pytest.fixture(scope="module")
def seconds(speech):
    """(where the first sentence's speech starts, where the second's does, where the second
    sentence's clip starts, the recording's length) in seconds."""
    first, second = speech[1][:2]
    onsets = [np.argmax(np.abs(clip) > 0.01) / SAMPLE_RATE for clip in (first, second)]
    second_at = LEAD_S + len(first) / SAMPLE_RATE + PAUSE_S
    total = second_at + (len(second) / SAMPLE_RATE) + LEAD_S
    return LEAD_S + onsets[0], second_at + onsets[1], second_at, total


def _transcribe(capsys, *args: str) -> str:
    assert main(["transcribe", *args]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("model", [STREAMING, DISTIL], ids=lambda p: p.name)
def test_each_released_student_transcribes_a_file_segment_by_segment(model, recording, capsys):
    sentences, path, _ = recording
    lines = _transcribe(capsys, "--model", str(model), str(path)).splitlines()
    assert len(lines) == 2  # one final per sentence: the pause closes the first
    assert wer(" ".join(sentences), " ".join(lines)) < 0.5


def test_json_srt_and_vtt_give_the_same_segments(recording, seconds, capsys):
    _, path, _ = recording
    args = ["--model", str(STREAMING), str(path), "--response-format"]
    result = json.loads(_transcribe(capsys, *args, "json"))
    assert result["file"] == str(path) and result["duration"] == pytest.approx(seconds[3], abs=0.01)
    first, second = result["segments"]
    # the segments start where the speech does, to the VAD's 30 ms frame
    assert first["start"] == pytest.approx(seconds[0], abs=0.05)
    assert second["start"] == pytest.approx(seconds[1], abs=0.05)
    assert first["end"] < second["start"] < second["end"] <= result["duration"]
    assert result["text"] == f"{first['text']} {second['text']}"
    clock = r"(\d\d):(\d\d):(\d\d)[,.](\d\d\d)"
    for fmt, head in (("srt", ""), ("vtt", "WEBVTT\n\n")):
        out = _transcribe(capsys, *args, fmt)
        assert out.startswith(head)
        cues = re.findall(rf"{clock} --> {clock}\n(.+)\n", out)
        assert [c[-1] for c in cues] == [first["text"], second["text"]]
        starts = [int(c[2]) + int(c[3]) / 1000 for c in cues]  # under a minute
        assert starts == [first["start"], second["start"]]
    assert re.search(r"^1\n00:00:00,\d{3} --> ", _transcribe(capsys, *args, "srt"))


def test_stdin_pcm_at_any_rate_gives_the_file_transcript(recording, capsys):
    _, path, pcm = recording
    expected = _transcribe(capsys, "--model", str(STREAMING), str(path))
    args = ["--model", str(STREAMING), "--sample-rate", str(RATE), "-"]
    piped = subprocess.run([*CLI, "transcribe", *args], input=pcm, capture_output=True)
    assert piped.returncode == 0, piped.stderr.decode()[-2000:]
    assert piped.stdout.decode() == expected
    assert piped.stderr.decode().startswith("... ")  # partials, as the audio streamed in


def test_stdin_is_transcribed_as_it_arrives(recording, seconds):
    """A live microphone: the first sentence's final comes out before the audio ends."""
    _, _, pcm = recording
    args = ["--model", str(STREAMING), "--sample-rate", str(RATE), "-"]
    process = subprocess.Popen(
        [*CLI, "transcribe", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    first_part = 2 * int(seconds[2] * RATE)  # bytes: up to the second sentence
    process.stdin.write(pcm[:first_part])
    process.stdin.flush()
    ready, _, _ = select.select([process.stdout], [], [], 60)
    assert ready, "no final while the stream was still open"
    first = process.stdout.readline().decode()
    process.stdin.write(pcm[first_part:])
    rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    assert first.strip() and len(rest.decode().splitlines()) == 1


def test_ctrl_c_ends_a_live_stream_with_its_last_words(recording, seconds):
    _, _, pcm = recording
    args = ["--model", str(STREAMING), "--sample-rate", str(RATE), "-"]
    process = subprocess.Popen(
        [*CLI, "transcribe", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdin.write(pcm[: 2 * int((seconds[2] - PAUSE_S) * RATE)])  # no pause after it
    process.stdin.flush()
    assert select.select([process.stderr], [], [], 60)[0], "no partial"
    time.sleep(1.0)  # the rest of the audio decoded: it waits for more
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err.decode()[-2000:]
    assert len(out.decode().splitlines()) == 1


def test_the_edge_path_transcribes_44k_without_torch(recording):
    """torch and Ray made unimportable: both kinds of student still run."""
    _, path, _ = recording
    code = (
        "import sys\n"
        "for name in ('torch', 'ray', 'transformers'):\n"
        "    sys.modules[name] = None  # import fails, as on an [edge] install\n"
        "from audiodistill.cli import main\n"
        f"for model in ({str(STREAMING)!r}, {str(DISTIL)!r}):\n"
        f"    assert main(['transcribe', '--model', model, {str(path)!r}]) == 0\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(result.stdout.splitlines()) == 4


def test_which_way_a_transcribe_runs(recording, tmp_path, capsys):
    _, path, _ = recording
    file = (str(path),)
    assert TranscribeOptions(files=file, model=str(STREAMING)).in_process
    # a served model id, or any model with a server address, goes to the server
    assert not TranscribeOptions(files=file, model="teacher-ct2").in_process
    assert not TranscribeOptions(files=file, model=str(STREAMING), url="ws://h:1").in_process
    with pytest.raises(ValueError, match="in-process only"):
        TranscribeOptions(files=("-",), model="teacher-ct2")
    with pytest.raises(ValueError, match="in-process run writes"):
        TranscribeOptions(files=file, model=str(STREAMING), response_format="verbose_json")
    assert main(["transcribe", "--model", str(tmp_path), str(path)]) == 2
    assert "not an export directory" in capsys.readouterr().err


def test_a_bad_file_is_reported_and_the_others_still_run(recording, tmp_path, capsys):
    _, path, _ = recording
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    with pytest.raises(SystemExit) as exit_info:
        main(["transcribe", "--model", str(STREAMING), str(tmp_path / "bad.wav"), str(path)])
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert "bad.wav: not decodable" in captured.err
    assert captured.out.splitlines()[0] == f"==> {path} <=="  # several inputs: named


def test_a_file_is_required():
    with pytest.raises(ValueError, match="give an audio file"):
        TranscribeOptions(model=str(STREAMING))
    with pytest.raises(SystemExit):  # argparse: FILE is required
        main(["transcribe", "--model", str(STREAMING)])


def test_bench_measures_a_whisper_distil_export(recording, seconds):
    sentences, path, _ = recording
    report = run_bench(BenchOptions(model=str(DISTIL), int8=True, audio=str(path), runs=1))
    assert report["kind"] == "whisper-distil" and report["chunk_ms"] is None
    assert report["model_file"] == "encoder.int8.onnx + decoder.int8.onnx"
    graphs = ("encoder.int8.onnx", "decoder.int8.onnx")
    assert report["size_bytes"] == sum((DISTIL / g).stat().st_size for g in graphs)
    assert 0 < report["rtf"] < 1 and report["audio_seconds"] == pytest.approx(seconds[3], abs=0.01)
    # two utterances per pass: p50 is between them, end-of-audio to final is the second
    assert 0 < report["chunk_latency_p50_ms"] <= report["chunk_latency_p99_ms"]
    assert report["end_to_final_ms"] > 0
    assert wer(" ".join(sentences), report["text"]) < 0.5

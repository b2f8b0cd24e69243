import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from audiodistill.cli import main
from audiodistill.data.audio import SAMPLE_RATE, resample, save_wav
from audiodistill.decoding.ctc_decoder import LM_FILE, DecodingOptions, fit_char_lm
from audiodistill.edge.recognizer import load_onnx_model
from audiodistill.errors import ModelError
from audiodistill.evaluation.edge_bench import BenchOptions, bench_audio, run_bench
from audiodistill.evaluation.wer import wer
from audiodistill.export.exporter import export_onnx
from audiodistill.students.streaming import (
    StreamingConfig,
    StreamingEncoder,
    frames_per_chunk,
    load_student,
    save_student,
    set_decoding,
    streaming_xs,
)
from audiodistill.students.tokenizer import CharTokenizer
from audiodistill.testing.dummies import save_untrained_streaming_student

REPO = Path(__file__).resolve().parent.parent
TINY = StreamingConfig(
    d_model=32, n_layers=2, n_heads=2, ff_dim=64, conv_kernel=5, left_chunks=2, dropout=0.0
)
BENCH_FIELDS = {
    "model",
    "kind",
    "backend",
    "int8",
    "threads",
    "model_file",
    "size_bytes",
    "audio",
    "audio_seconds",
    "chunk_ms",
    "runs",
    "import_s",
    "load_s",
    "rtf",
    "chunk_latency_p50_ms",
    "chunk_latency_p95_ms",
    "chunk_latency_p99_ms",
    "end_to_final_ms",
    "peak_rss_mb",
    "text",
}


def _save(config: StreamingConfig, path: Path) -> Path:
    torch.manual_seed(0)
    model = StreamingEncoder(config).eval()
    # a random head is nearly constant; a large one makes argmax follow the hidden state,
    # so decoded texts are long and any mismatch between runtimes shows
    nn.init.normal_(model.head.weight, std=3.0)
    save_student(model, CharTokenizer(), path)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(student dir, export dir with fp32 and int8) of a small random streaming student."""
    root = tmp_path_factory.mktemp("export")
    student = _save(TINY, root / "student")
    export_onnx(student, root / "onnx", int8=True)
    return student, root / "onnx"


def test_export_dir_is_self_contained(exported):
    _, out = exported
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "model.int8.onnx",
        "model.onnx",
        "tokenizer.json",
    ]
    config = json.loads((out / "config.json").read_text())
    assert config["chunk_frames"] == frames_per_chunk(TINY) == 32
    keys = next(s for s in config["state"] if s["name"] == "keys")
    # [layers, batch, heads, left_chunks * encoder frames per chunk, head dim]
    assert keys["shape"] == [2, 1, 2, 2 * 8, 16]
    assert config["features"]["n_mels"] == TINY.n_mels


@pytest.fixture(scope="module", params=["conformer", "whisper"])
def each_export(request, tmp_path_factory):
    """(student dir, fp32 export dir) of a tiny random student of each encoder architecture."""
    root = tmp_path_factory.mktemp(request.param)
    student = save_untrained_streaming_student(root / "student", architecture=request.param)
    export_onnx(student, root / "onnx", int8=False)
    return Path(student), root / "onnx"


def test_onnx_step_matches_torch_with_carried_state(each_export):
    student_dir, out = each_export
    model = load_student(student_dir).model
    onnx_model = load_onnx_model(out)
    lookahead = model.config.lookahead_frames
    assert onnx_model.config["lookahead_frames"] == lookahead
    rng = np.random.default_rng(0)
    state, onnx_state = model.init_state(1, 32), onnx_model.init_state()
    for frames in (32, 32, 32, 32, 32, 12):  # past the 2-chunk cache, then a short last chunk
        features = rng.standard_normal((frames + lookahead, TINY.n_mels)).astype(np.float32)
        with torch.inference_mode():
            logits, state = model.step(torch.from_numpy(features)[None], state)
        onnx_logits, onnx_state = onnx_model.step(features, onnx_state)
        np.testing.assert_allclose(onnx_logits, logits[0].numpy(), atol=1e-4, rtol=1e-4)
        for name, tensor in state._asdict().items():
            np.testing.assert_allclose(onnx_state[name], tensor.numpy(), atol=1e-4, rtol=1e-4)
    s = model.config.subsampling
    assert onnx_state["offset"].tolist() == [5 * 32 // s + 12 // s]


def test_onnx_recognizer_gives_the_torch_transcript(each_export):
    _same_stream_text(*each_export)


def test_onnx_recognizer_restarts_long_streams_as_torch_does(each_export, tmp_path):
    """70 s: a causal Whisper encoder restarts its positions twice on the way (the
    conformer never does); both runtimes restart at the same steps."""
    student_dir, out = each_export
    _same_stream_text(student_dir, out, seconds=70.0, piece=16_000)


def test_an_export_with_an_lm_decodes_with_it_on_the_edge(tmp_path):
    student_dir = _save(TINY, tmp_path / "student")
    lm = fit_char_lm(["the cat sat on the mat", "a hat", "that is a cat"], order=4)
    set_decoding(student_dir, DecodingOptions(beam=8), lm)
    export_onnx(student_dir, tmp_path / "onnx", int8=False)
    assert (tmp_path / "onnx" / LM_FILE).is_file()
    edge = load_onnx_model(tmp_path / "onnx")
    assert edge.decoder.lm is not None and edge.decoder.options.beam == 8
    _same_stream_text(student_dir, tmp_path / "onnx")


def _same_stream_text(
    student_dir: Path, out: Path, seconds: float = 4.3, piece: int = 2_345
) -> None:
    """The ONNX recognizer's partial and final texts equal the torch recognizer's; pieces
    of 2,345 samples straddle chunk boundaries."""
    student = load_student(student_dir)
    audio = bench_audio(seconds, seed=1)
    expected = student.transcribe([audio])[0]
    assert len(expected) > 20  # a long text, so a divergence would show
    torch_stream = student.recognizer()
    onnx_stream = load_onnx_model(out).recognizer()
    for start in range(0, len(audio), piece):
        part = audio[start : start + piece]
        assert onnx_stream.accept(part) == torch_stream.accept(part)
    assert onnx_stream.finalize() == torch_stream.finalize() == expected
    assert onnx_stream.finalize() == ""  # finalize resets for the next stream


def test_int8_is_under_30_percent_of_fp32_and_still_decodes(tmp_path):
    student = _save(streaming_xs(), tmp_path / "student")
    export_onnx(student, tmp_path / "onnx", int8=True)
    fp32 = (tmp_path / "onnx" / "model.onnx").stat().st_size
    int8 = (tmp_path / "onnx" / "model.int8.onnx").stat().st_size
    assert int8 <= 0.30 * fp32, f"int8 {int8} bytes is {int8 / fp32:.1%} of fp32 {fp32}"
    audio = bench_audio(2.0, seed=2)
    texts = [load_onnx_model(tmp_path / "onnx", int8=q).transcribe([audio])[0] for q in (0, 1)]
    assert texts[0] and texts[1]


def test_bench_cli_writes_every_field(exported, tmp_path, capsys):
    student_dir, out = exported
    report_path = tmp_path / "bench.json"
    argv = ["bench", "--model", str(out), "--backend", "onnx", "--int8", "--threads", "1"]
    assert main([*argv, "--out", str(report_path), "runs=1"]) == 0
    report = json.loads(report_path.read_text())
    assert set(report) == BENCH_FIELDS
    assert report["model_file"] == "model.int8.onnx" and report["audio_seconds"] == 10.0
    assert 0 < report["rtf"] < 1 and report["chunk_ms"] == 320 and report["kind"] == "streaming"
    assert report["chunk_latency_p50_ms"] <= report["chunk_latency_p99_ms"]
    captured = capsys.readouterr()
    assert f"bench {out}: 1/1 timed passes" in captured.err  # progress on stderr
    printed = captured.out
    last_line = printed.rstrip().splitlines()[-1]
    assert last_line.startswith("onnx int8, 1 thread(s), streaming: RTF ")
    assert json.loads(printed[: printed.rindex("}") + 1]) == report
    torch_report = run_bench(BenchOptions(model=str(student_dir), backend="torch", runs=1))
    fp32_report = run_bench(BenchOptions(model=str(out), backend="onnx", runs=1))
    assert set(torch_report) == BENCH_FIELDS and torch_report["model_file"] == "model.safetensors"
    assert torch_report["text"] == fp32_report["text"] != ""


def test_bench_rejects_a_student_dir_for_onnx(exported):
    student_dir, _ = exported
    with pytest.raises(ModelError, match="audiodistill export"):
        run_bench(BenchOptions(model=str(student_dir), backend="onnx"))


def test_edge_path_imports_neither_torch_nor_ray(exported):
    _, out = exported
    code = (
        "import sys\n"
        "from audiodistill.cli import main\n"
        f"assert main(['bench', '--model', {str(out)!r}, '--backend', 'onnx', 'runs=1']) == 0\n"
        "import audiodistill.edge.ctc, audiodistill.edge.features\n"
        "import audiodistill.edge.recognizer, audiodistill.edge.whisper\n"
        "import audiodistill.edge.transcribe\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ray'))\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "RTF" in result.stdout


@pytest.mark.slow
def test_edge_install_benches_and_transcribes_44k_without_torch(exported, speech, tmp_path):
    """`pip install audiodistill[edge]` into a fresh venv, then bench the int8 export there
    and transcribe a 44.1 kHz recording with a released student (its resampler comes with
    the extra)."""
    _, out = exported
    source = tmp_path / "src"  # a copy: pip builds in the source tree
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for package in ("audiodistill", "pipelines", "serve"):
        shutil.copytree(
            REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    env_dir = tmp_path / "edge-venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    environ = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    subprocess.run(
        [python, "-m", "pip", "install", "-q", f"{source}[edge]"],
        check=True,
        timeout=900,
        env=environ,
    )
    no_torch = subprocess.run([python, "-c", "import torch"], capture_output=True, env=environ)
    assert no_torch.returncode != 0, "torch is importable in the edge venv"
    bench = subprocess.run(
        [env_dir / "bin" / "audiodistill", "bench", "--model", out, "--backend", "onnx"]
        + ["--int8", "--threads", "1", "runs=1", "--out", tmp_path / "bench.json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=environ,
        cwd=tmp_path,
    )
    assert bench.returncode == 0, bench.stderr[-2000:]
    assert set(json.loads((tmp_path / "bench.json").read_text())) == BENCH_FIELDS
    sentences, clips = speech
    save_wav(tmp_path / "44k.wav", resample(clips[0], SAMPLE_RATE, 44_100), 44_100)
    released = REPO / "models" / "whisper-tiny-en-streaming"
    transcribe = subprocess.run(
        [env_dir / "bin" / "audiodistill", "transcribe", "--model", released, "44k.wav"],
        capture_output=True,
        text=True,
        timeout=300,
        env=environ,
        cwd=tmp_path,
    )
    assert transcribe.returncode == 0, transcribe.stderr[-2000:]
    assert wer(sentences[0], transcribe.stdout) < 0.5


def _write_byte_tokenizer(path: Path, vocab_size: int) -> None:
    """A byte-level tokenizer.json of `vocab_size` single-byte tokens (the first few special)."""
    from audiodistill.edge.whisper import _bytes_to_unicode

    alphabet = list(_bytes_to_unicode().values())[:vocab_size]
    special = [{"id": i, "content": f"<|{i}|>", "special": True} for i in range(10)]
    payload = {"model": {"vocab": {c: i for i, c in enumerate(alphabet)}}, "added_tokens": special}
    path.write_text(json.dumps(payload))


@pytest.fixture(scope="module")
def whisper_export(tmp_path_factory):
    """(model, export dir) of a tiny random whisper-distil student, fp32 and int8."""
    from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(0)
    config = WhisperConfig(
        vocab_size=200,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_target_positions=64,
        decoder_start_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    model = WhisperForConditionalGeneration(config).eval()
    model.config.student = "whisper-distil"
    model.generation_config = GenerationConfig(
        decoder_start_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
        no_timestamps_token_id=3,
        suppress_tokens=[5, 7],
        begin_suppress_tokens=[2, 9],
    )
    root = tmp_path_factory.mktemp("whisper")
    model.save_pretrained(root / "student")
    _write_byte_tokenizer(root / "student" / "tokenizer.json", config.vocab_size)
    export_onnx(root / "student", root / "onnx", int8=True)
    return model, root / "onnx"


def test_whisper_encoder_and_cached_decoder_match_pytorch(whisper_export):
    from audiodistill.edge.whisper import OnnxWhisper
    from audiodistill.students.whisper_distil import encode

    model, out = whisper_export
    onnx_model = OnnxWhisper(out)
    features = torch.randn(1, 80, 300)  # 3 s: not Whisper's 30 s window
    states, cross_keys, cross_values = onnx_model.encoder.run(None, {"features": features.numpy()})
    tokens = torch.tensor([[1, 3, 17, 42, 99, 4, 150, 8]])
    with torch.inference_mode():
        expected_states = encode(model, features)
        out_full = model(encoder_outputs=(expected_states,), decoder_input_ids=tokens)
    np.testing.assert_allclose(states, expected_states.numpy(), atol=1e-4, rtol=1e-4)
    keys = values = np.zeros((2, 1, 2, 0, 16), dtype=np.float32)
    for start, end in ((0, 2), (2, 3), (3, 4), (4, 8)):  # a prompt, single tokens, a run
        feeds = {"input_ids": tokens[:, start:end].numpy(), "cross_keys": cross_keys}
        feeds.update(cross_values=cross_values, past_keys=keys, past_values=values)
        logits, keys, values, attention = onnx_model.decoder.run(None, feeds)
        expected = out_full.logits[:, start:end].numpy()  # every position of the run
        np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=1e-4)
    assert keys.shape == (2, 1, 2, 8, 16)
    # the cross-attention word times read: transformers' own weights of the last run
    model.set_attn_implementation("eager")
    with torch.inference_mode():
        eager = model(
            encoder_outputs=(expected_states,), decoder_input_ids=tokens, output_attentions=True
        )
    model.set_attn_implementation("sdpa")
    weights = torch.stack(eager.cross_attentions)[:, :, :, 4:8].numpy()  # [layers, 1, heads, 4, T]
    np.testing.assert_allclose(attention, weights, atol=1e-5)


def test_whisper_onnx_greedy_tokens_equal_pytorch(whisper_export):
    from audiodistill.decoding.whisper_greedy import greedy_decode, prompt_ids
    from audiodistill.edge.whisper import OnnxWhisper
    from audiodistill.students.whisper_distil import encode

    model, out = whisper_export
    generation = model.generation_config
    features = torch.randn(1, 80, 200)
    with torch.inference_mode():
        expected = greedy_decode(
            model,
            encode(model, features),
            prompt=prompt_ids(generation),
            eot=2,
            suppress=generation.suppress_tokens,
            suppress_begin=generation.begin_suppress_tokens,
        )[0].token_ids
    assert OnnxWhisper(out).greedy(features[0].numpy()) == expected
    assert sorted(p.name for p in out.glob("*.onnx")) == [
        "decoder.int8.onnx",
        "decoder.onnx",
        "encoder.int8.onnx",
        "encoder.onnx",
    ]
    assert OnnxWhisper(out, int8=True).greedy(features[0].numpy())  # int8 decodes too


def test_whisper_onnx_fills_the_window_like_pytorch(whisper_export, tmp_path):
    """With `fill_window` the runtime fills the cross-attention keys and values to the
    window; the tokens are those of the filled encoder output in PyTorch."""
    import json
    import shutil

    from transformers import WhisperFeatureExtractor

    from audiodistill.decoding.whisper_greedy import greedy_decode, prompt_ids
    from audiodistill.edge.whisper import OnnxWhisper
    from audiodistill.students.whisper_distil import encode, fill, silence_states

    model, out = whisper_export
    filled_dir = shutil.copytree(out, tmp_path / "filled")
    config = json.loads((filled_dir / "config.json").read_text())
    (filled_dir / "config.json").write_text(json.dumps(config | {"fill_window": True}))
    generation = model.generation_config
    features = torch.randn(1, 80, 200)
    silence = silence_states(model, WhisperFeatureExtractor())
    with torch.inference_mode():
        expected = greedy_decode(
            model,
            fill(encode(model, features), silence),
            prompt=prompt_ids(generation),
            eot=2,
            suppress=generation.suppress_tokens,
            suppress_begin=generation.begin_suppress_tokens,
        )[0].token_ids
    onnx_model = OnnxWhisper(filled_dir)
    assert onnx_model.silence[0].shape == (2, 1, 2, 1500, 16)
    assert onnx_model.greedy(features[0].numpy()) == expected


def test_export_cli_rejects_other_directories(exported, capsys):
    _, out = exported
    assert main(["export", "--model", str(out), "--out", str(out.parent / "again")]) == 2
    assert "ONNX export takes streaming, whisper-distil or whisper-causal" in (
        capsys.readouterr().err
    )


def test_whisper_log_mel_matches_transformers(speech):
    from transformers import WhisperFeatureExtractor

    from audiodistill.edge.whisper import whisper_log_mel
    from audiodistill.students.whisper_distil import log_mel

    extractor = WhisperFeatureExtractor()
    for audio in [speech[1][0], np.zeros(100, np.float32)]:
        for tail in (5.0, None):
            expected = log_mel(extractor, [audio], tail)[0].numpy()
            np.testing.assert_allclose(whisper_log_mel(audio, tail), expected, atol=1e-4)


def test_byte_bpe_decoder_matches_the_whisper_tokenizer():
    from transformers import WhisperTokenizerFast

    from audiodistill.edge.whisper import ByteBPEDecoder
    from audiodistill.teachers.bundled import bundled_ct2_dir

    path = bundled_ct2_dir() / "tokenizer.json"
    tokenizer, decoder = WhisperTokenizerFast(tokenizer_file=str(path)), ByteBPEDecoder(path)
    for text in ("Hello, world! It's 7:30 pm.", " café naïve 東京 — $42.50", ""):
        ids = tokenizer.encode(text, add_special_tokens=True)  # with <|startoftranscript|>...
        expected = tokenizer.decode(ids, skip_special_tokens=True).strip()
        assert decoder.decode(ids) == expected


@pytest.mark.slow
# a 2-layer copy of tiny.en, untrained, decodes 30 s windows on near-ties that the ONNX
# graph's float rounding can flip ("time"/"timer"; the features agree to 1e-5), so the
# padded window is checked with every layer and the layer mapping with the filled window
@pytest.mark.parametrize("fill_window, layers", [(False, 4), (True, 2)])
def test_whisper_distil_onnx_transcribes_like_pytorch(
    hf_teacher_dir, speech, tmp_path, fill_window, layers
):
    """A student built from the bundled tiny.en: the torch-free runtime gives the same text."""
    from audiodistill.edge.whisper import OnnxWhisper
    from audiodistill.students.whisper_distil import (
        WhisperDistilModel,
        WhisperDistilOptions,
        WhisperDistilTask,
    )

    options = WhisperDistilOptions(
        teacher=str(hf_teacher_dir), decoder_layers=layers, fill_window=fill_window
    )
    task = WhisperDistilTask(options)
    task.save(task.build(), tmp_path / "student")
    export_onnx(tmp_path / "student", tmp_path / "onnx", int8=False)
    clips = speech[1][:3]
    expected = WhisperDistilModel(tmp_path / "student").transcribe(clips)
    assert OnnxWhisper(tmp_path / "onnx").transcribe(clips) == expected


def test_eval_and_serving_load_an_export_directory(each_export):
    """A released student is its ONNX export: eval scores it through the edge runtime."""
    from audiodistill.evaluation.measurement import load_eval_model

    _, out = each_export
    model = load_eval_model(str(out))
    audio = bench_audio(3.0, seed=3)
    assert model.kind == "streaming" and model.parameters > 10_000 and model.size_bytes > 0
    assert model.transcribe([audio]) == load_onnx_model(out).transcribe([audio])
    stream = model.recognizer()
    stream.accept(audio)
    assert stream.finalize() == model.transcribe([audio])[0]


def test_an_int8_only_export_is_what_a_release_ships(tmp_path, capsys):
    from audiodistill.export.exporter import ExportOptions, run

    student = save_untrained_streaming_student(tmp_path / "student", architecture="whisper")
    summary = run(ExportOptions(student, int8=True, keep_fp32=False, out=str(tmp_path / "rel")))
    assert list(summary["bytes"]) == ["model.int8.onnx"]
    stages = capsys.readouterr().err.splitlines()
    assert stages[0].startswith("export: tracing the streaming student") and "int8" in stages[0]
    assert stages[-1].startswith(f"export: wrote {tmp_path / 'rel'}")
    with pytest.raises(FileNotFoundError, match="--int8 runs the int8 one"):
        load_onnx_model(tmp_path / "rel")
    assert load_onnx_model(tmp_path / "rel", int8=True).transcribe([bench_audio(1.0)])[0]
    with pytest.raises(ValueError, match="keep_fp32=false"):
        run(ExportOptions(student, keep_fp32=False, out=str(tmp_path / "none")))


def test_the_filled_teacher_exports_as_a_whisper_distil_student(speech, tmp_path):
    """`export --model teacher:hf-fill`: the teacher at the export runtime's speed, the
    baseline a student's speed-up is measured against; its fp32 graphs give eval's
    `teacher:hf-fill` text."""
    from audiodistill.edge.whisper import OnnxWhisper
    from audiodistill.evaluation.measurement import load_eval_model
    from audiodistill.export.exporter import ExportOptions, run

    summary = run(ExportOptions(model="teacher:hf-fill", int8=True, out=str(tmp_path / "t")))
    assert summary["student"] == "whisper-distil-onnx"
    assert set(summary["bytes"]) == {"encoder.onnx", "decoder.onnx",
                                     "encoder.int8.onnx", "decoder.int8.onnx"}  # fmt: skip
    clips = speech[1][:2]
    expected = load_eval_model("teacher:hf-fill").transcribe(clips)
    assert OnnxWhisper(tmp_path / "t").transcribe(clips) == expected
    assert all(OnnxWhisper(tmp_path / "t", int8=True).transcribe(clips))

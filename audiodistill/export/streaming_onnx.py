"""ONNX export of a streaming student: one chunk step of its encoder as a stateless graph.

The graph is one chunk step of the encoder's `step` (either architecture, streaming.py or
causal_whisper.py): features of one chunk (plus the lookahead frames it reads) and the
streaming state in, CTC logits and the next state out. The state tensors are explicit inputs
and outputs (names and shapes in the directory's config.json), so the runtime carries them
between calls and the graph itself is stateless.

The chunk size is fixed at export (the student's `chunk_ms`, 320 ms by default): it sets
the attention cache length (`left_chunks` chunks of encoder frames). The features input's
time axis is dynamic only so a stream's last, shorter chunk can run; every other chunk must
have exactly `chunk_frames` frames.

Output directory (everything the edge runtime reads, nothing else):
  model.onnx        fp32 step graph
  model.int8.onnx   with --int8: dynamic int8 quantization, per-channel weights
  tokenizer.json    the student's character table
  lm.arpa           the student's character n-gram, when it decodes with one
  config.json       chunk size, input/output names, state shapes, feature constants, decoding
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import torch
from torch import nn

from audiodistill.data.audio import HOP_LENGTH, N_FFT, SAMPLE_RATE
from audiodistill.decoding.ctc_decoder import LM_FILE
from audiodistill.edge.features import LOG_MEL_MEAN, LOG_MEL_STD, MEL_FLOOR, N_MELS
from audiodistill.edge.recognizer import EXPORT_KIND
from audiodistill.export.onnx_graphs import OPSET, quantize_int8, trace_to_onnx
from audiodistill.students.streaming import StreamingState, frames_per_chunk, load_student

FP32_FILE, INT8_FILE = "model.onnx", "model.int8.onnx"
CONFIG_FILE, TOKENIZER_FILE = "config.json", "tokenizer.json"
FEATURES_INPUT, LOGITS_OUTPUT = "features", "logits"
STATE_NAMES = ("keys", "values", "conv", "offset")  # StreamingState's fields, in order


def export_streaming_onnx(model_dir: str | Path, out_dir: str | Path, int8: bool) -> dict:
    """The streaming student's step graph, tokenizer and config.json in `out_dir`."""
    model = load_student(model_dir).model.eval()
    decoding = json.loads((Path(model_dir) / CONFIG_FILE).read_text()).get("decoding")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chunk_frames = frames_per_chunk(model.config)
    state = model.init_state(1, chunk_frames)
    step_frames = chunk_frames + model.config.lookahead_frames
    example = (torch.zeros(1, step_frames, model.config.n_mels), *state)
    # a new Module is in training mode, which export restores on the student afterwards
    trace_to_onnx(
        StepGraph(model).eval(),
        example,
        out / FP32_FILE,
        inputs=[FEATURES_INPUT, *STATE_NAMES],
        outputs=[LOGITS_OUTPUT, *(f"{n}_out" for n in STATE_NAMES)],
        dynamic={FEATURES_INPUT: {1: "frames"}, LOGITS_OUTPUT: {1: "encoder_frames"}},
    )
    models = {"fp32": FP32_FILE}
    if int8:
        quantize_int8(out / FP32_FILE, out / INT8_FILE)
        models["int8"] = INT8_FILE
    shutil.copyfile(Path(model_dir) / TOKENIZER_FILE, out / TOKENIZER_FILE)
    (out / LM_FILE).unlink(missing_ok=True)  # an earlier export's LM is not this model's
    if (Path(model_dir) / LM_FILE).exists():
        shutil.copyfile(Path(model_dir) / LM_FILE, out / LM_FILE)
    config = export_config(model.config, chunk_frames, state, models) | {"decoding": decoding}
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=1))
    return config


class StepGraph(nn.Module):
    """`model.step` with the state as separate tensors, the form an ONNX graph takes."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, features, keys, values, conv, offset):
        logits, state = self.model.step(features, StreamingState(keys, values, conv, offset))
        return (logits, *state)


def export_config(
    model_config, chunk_frames: int, state: StreamingState, models: dict
) -> dict:
    """config.json of an export: all the edge runtime needs besides the model and tokenizer."""
    return {
        "student": EXPORT_KIND,
        "format": "onnx",
        "models": models,
        "tokenizer": TOKENIZER_FILE,
        "chunk_ms": model_config.chunk_ms,
        "chunk_frames": chunk_frames,  # feature frames per step (the last may be shorter)
        "subsampling": model_config.subsampling,  # feature frames per output frame
        # feature frames a step reads past its chunk (it gets chunk + lookahead frames)
        "lookahead_frames": model_config.lookahead_frames,
        # zero samples before a stream's audio, ahead of the features
        "feature_pad_samples": model_config.feature_pad_samples,
        # encoder positions a stream may use before it restarts, primed with its last
        # context_frames feature frames (0: no limit); see edge.features.ChunkQueue
        "max_positions": model_config.max_positions,
        "context_frames": model_config.left_chunks * chunk_frames,
        "features_input": FEATURES_INPUT,  # [1, frames + lookahead, n_mels] float32
        "logits_output": LOGITS_OUTPUT,  # [1, frames // subsampling, vocab] float32
        "state": [
            {
                "name": name,
                "output": f"{name}_out",
                "shape": list(tensor.shape),
                "dtype": str(tensor.dtype).removeprefix("torch."),
            }
            for name, tensor in zip(STATE_NAMES, state, strict=True)
        ],
        "features": {
            "sample_rate": SAMPLE_RATE,
            "n_fft": N_FFT,
            "hop_length": HOP_LENGTH,
            "n_mels": N_MELS,
            "mel_scale": "slaney",
            "mel_floor": MEL_FLOOR,
            "log_mel_mean": LOG_MEL_MEAN,
            "log_mel_std": LOG_MEL_STD,
        },
        "architecture": model_config.architecture,
        "model_config": dataclasses.asdict(model_config),
        "opset": OPSET,
    }

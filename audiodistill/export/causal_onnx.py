"""ONNX export of a whisper-causal student: three graphs a stream runs with numpy around them.

encoder.onnx: one chunk step of the causal encoder (streaming_onnx's step graph, with the
  encoder states [1, n/2, D] as output instead of CTC logits; the streaming state in and out).
cross.onnx: encoder states [1, T, D] -> every decoder layer's cross-attention keys and
  values; the runtime runs it on a piece's states once per decode and keeps the keys and
  values of the silence that fills the rest of the 30 s window from load time.
decoder.onnx: whisper_onnx's decoder step graph (self-attention cache as plain tensors), its
  token embedding and logits cut before the timestamp tokens (`text_vocab`).

With --int8, an int8 copy of each (dynamic, per-channel weights). config.json holds the
step's state shapes and feature constants (streaming_onnx.export_config), what greedy
decoding needs (whisper_onnx.decoder_config) and the tail. `edge.causal.OnnxCausalWhisper`
runs them; the encoder's states for a silent window are computed there at load.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from audiodistill.decoding.whisper_greedy import prompt_ids
from audiodistill.edge.causal import EXPORT_KIND, WINDOW_POSITIONS
from audiodistill.export.onnx_graphs import trace_to_onnx
from audiodistill.export.streaming_onnx import FEATURES_INPUT, STATE_NAMES, export_config
from audiodistill.export.whisper_onnx import (
    TOKENIZER_FILE,
    copy_text_files,
    cross_keys_values,
    decoder_config,
    export_decoder,
    quantize_graphs,
)
from audiodistill.students.streaming import StreamingState
from audiodistill.students.whisper_causal import WhisperCausalModel, chunk_frames

FILES = {"encoder": "encoder.onnx", "cross": "cross.onnx", "decoder": "decoder.onnx"}
STATES_OUTPUT = "states"


class StatesStepGraph(nn.Module):
    """The encoder's `step_states` with the state as separate tensors."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, features, keys, values, conv, offset):
        states, state = self.encoder.step_states(
            features, StreamingState(keys, values, conv, offset)
        )
        return (states, *state)


class CrossGraph(nn.Module):
    """States [1, T, D] -> cross keys and values [layers, 1, heads, T, head_dim] (per position,
    so a window's are its pieces' side by side)."""

    def __init__(self, whisper: nn.Module):
        super().__init__()
        self.whisper = whisper

    def forward(self, states):
        return cross_keys_values(self.whisper, states)


def text_vocab(generation_config) -> int:
    """Whisper's first timestamp id, the one after <|notimestamps|> (as transformers reads
    it): the runtime decodes without timestamps, the prompt and end-of-text lie below it, and
    the tokenizer the export ships has no text for the ids from it on, so the decoder graph
    keeps the rows below it (1,501 x 384 of tiny.en's table, 0.58 MB int8)."""
    return generation_config.no_timestamps_token_id + 1


def export_causal_onnx(model_dir: str | Path, out_dir: str | Path, int8: bool = False) -> dict:
    """Export the whisper-causal student saved at `model_dir`; return the export config."""
    student = WhisperCausalModel(model_dir)
    encoder, whisper = student.model.encoder.eval(), student.model.whisper.float().eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chunk = chunk_frames(student.chunk_ms)
    state = encoder.init_state(1, chunk)
    features = torch.zeros(1, chunk + encoder.config.lookahead_frames, encoder.config.n_mels)
    trace_to_onnx(
        StatesStepGraph(encoder).eval(),
        (features, *state),
        out / FILES["encoder"],
        inputs=[FEATURES_INPUT, *STATE_NAMES],
        outputs=[STATES_OUTPUT, *(f"{n}_out" for n in STATE_NAMES)],
        dynamic={FEATURES_INPUT: {1: "frames"}, STATES_OUTPUT: {1: "encoder_frames"}},
    )
    states = torch.zeros(1, WINDOW_POSITIONS, encoder.config.d_model)
    cross = ["cross_keys", "cross_values"]
    dynamic = {"states": {1: "t"}, **{name: {3: "t"} for name in cross}}
    trace_to_onnx(CrossGraph(whisper).eval(), (states,), out / FILES["cross"], ["states"],
                  cross, dynamic)  # fmt: skip
    prompt = prompt_ids(whisper.generation_config)
    export_decoder(whisper, prompt, out / FILES["decoder"], text_vocab(whisper.generation_config))
    models = {"fp32": dict(FILES)}
    if int8:
        models["int8"] = quantize_graphs(out, models["fp32"])
    copy_text_files(Path(model_dir), out)
    config = export_config(encoder.config, chunk, state, models) | decoder_config(
        whisper, prompt, models
    )
    config |= {
        "student": EXPORT_KIND,
        "tokenizer": TOKENIZER_FILE,
        "states_output": STATES_OUTPUT,
        "tail_seconds": student.options.tail_seconds,
        "max_new_tokens": student.options.max_new_tokens,
    }
    for unused in ("logits_output", "fill_window", "max_positions", "context_frames"):
        config.pop(unused, None)
    (out / "config.json").write_text(json.dumps(config, indent=1))
    return config

"""ONNX export of a whisper-distil student: an encoder graph and a decoder step graph.

encoder.onnx: log-mel features [1, n_mels, F] (F even, any length up to 30 s) -> encoder
  states [1, F/2, D] and every decoder layer's cross-attention keys and values
  [layers, 1, heads, F/2, head_dim], computed once per utterance instead of at every token.
decoder.onnx: token ids [1, n] (the prompt first, then one token a step), the cross
  keys/values, and the self-attention cache [layers, 1, heads, P, head_dim] (P = tokens so
  far, 0 at the start) -> logits of the n positions [1, n, vocab], the cache grown by n, and
  the cross-attention weights [layers, 1, heads, n, T] of the n positions (word times:
  audiodistill.decoding.whisper_alignment; config.json names the alignment heads). An export
  may give logits of the ids below a bound only (whisper-causal's stop before the timestamp
  tokens); the runtime takes the vocabulary's width from the logits.

With --int8, encoder.int8.onnx and decoder.int8.onnx beside them (dynamic int8, per-channel
weights; large float tables that float16 holds exactly in float16). The student's
tokenizer, processor and generation files are copied; config.json holds the prompt,
end-of-text and suppressed ids, and the cache sizes.
`audiodistill.edge.whisper.OnnxWhisper` decodes with the two graphs.

The decoder step is written here over the student's own weights (same arithmetic as
transformers' WhisperDecoder, checked in tests) rather than traced through transformers'
cache objects, so the cache is two plain tensors a runtime can carry.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from audiodistill.decoding.whisper_alignment import alignment_heads
from audiodistill.decoding.whisper_greedy import prompt_ids
from audiodistill.edge.whisper import EXPORT_KIND
from audiodistill.export.onnx_graphs import OPSET, quantize_int8, trace_to_onnx

ENCODER_FILE, DECODER_FILE = "encoder.onnx", "decoder.onnx"
# float32 initializers of at least this many values are stored in float16 in an int8 graph
# when float16 holds them exactly (`store_exact_tables_in_half`)
HALF_TABLE_VALUES = 2**16
EXAMPLE_FRAMES = 400  # mel frames (4 s) of the tracing example; the time axes are dynamic
# copied from the student: the processor's mel settings, the decoding defaults (transformers 5
# writes processor_config.json where older versions wrote preprocessor_...); tokenizer.json
# is written by `decoding_tokenizer`
TOKENIZER_FILE = "tokenizer.json"
PROCESSOR_FILES = (
    "tokenizer_config.json",
    "processor_config.json",
    "preprocessor_config.json",
    "generation_config.json",
)


def _heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """[1, T, D] -> [1, H, T, D / H]."""
    b, t, d = x.shape
    return x.view(b, t, n_heads, d // n_heads).transpose(1, 2)


class EncoderGraph(nn.Module):
    """Features -> encoder states and the cross-attention keys/values of every decoder layer."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.n_heads = model.config.decoder_attention_heads

    def forward(self, features: torch.Tensor):
        from audiodistill.students.whisper_distil import encode

        states = encode(self.model, features)
        return states, *cross_keys_values(self.model, states)


def cross_keys_values(model: nn.Module, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every decoder layer's cross-attention keys and values [layers, 1, heads, T, head_dim]
    of encoder states [1, T, D]."""
    n_heads = model.config.decoder_attention_heads
    layers = model.model.decoder.layers
    keys = [_heads(layer.encoder_attn.k_proj(states), n_heads) for layer in layers]
    values = [_heads(layer.encoder_attn.v_proj(states), n_heads) for layer in layers]
    return torch.stack(keys), torch.stack(values)


class DecoderStepGraph(nn.Module):
    """One decoder call with an explicit self-attention cache (Whisper's decoder arithmetic:
    pre-norm self-attention, cross-attention and GELU feed-forward, queries scaled by
    head_dim^-0.5, learned positions, final LayerNorm, output tied to the token embedding).

    `vocab`: keep only the token ids below it, in the embedding and the logits (None: all).
    """

    def __init__(self, model: nn.Module, vocab: int | None = None):
        super().__init__()
        self.decoder = model.model.decoder
        self.n_heads = model.config.decoder_attention_heads
        # the output layer is tied to the token embedding: one table serves both, stored as
        # [D, vocab] so that the logits read it as a MatMul's weight, which int8 quantization
        # turns into an integer matmul on the int8 table (as [vocab, D] it was the MatMul's
        # first operand: quantized for storage only, run in float32 over the whole table
        # every step); the embedding gathers its columns
        # (a view: word timing builds this module on every call, and the table is 77 MB)
        kept = model.proj_out.weight[:vocab]
        self.tokens = nn.Parameter(kept.detach().T, requires_grad=False)

    def forward(self, input_ids, cross_keys, cross_values, past_keys, past_values):
        past, n = past_keys.shape[3], input_ids.shape[1]
        positions = self.decoder.embed_positions.weight[past : past + n]
        x = torch.index_select(self.tokens, 1, input_ids[0]).T[None] + positions  # [1, n, D]
        # query i sits at position past + i and sees keys up to there
        query_pos = past + torch.arange(n)[:, None]
        key_pos = torch.arange(past + n)[None, :]
        causal = torch.zeros(n, past + n).masked_fill(key_pos > query_pos, -math.inf)
        new_keys, new_values, cross_weights = [], [], []
        for i, layer in enumerate(self.decoder.layers):
            h = layer.self_attn_layer_norm(x)
            keys = torch.cat([past_keys[i], _heads(layer.self_attn.k_proj(h), self.n_heads)], 2)
            values = torch.cat([past_values[i], _heads(layer.self_attn.v_proj(h), self.n_heads)], 2)
            x = x + self._attend(layer.self_attn, h, keys, values, causal)
            new_keys.append(keys)
            new_values.append(values)
            h = layer.encoder_attn_layer_norm(x)
            y, weights = self._cross_attend(layer.encoder_attn, h, cross_keys[i], cross_values[i])
            x = x + y
            cross_weights.append(weights)
            h = layer.final_layer_norm(x)
            x = x + layer.fc2(layer.activation_fn(layer.fc1(h)))
        states = self.decoder.layer_norm(x)  # [1, n, D]
        # every position's logits, so a runtime can check a draft in one call (exports from
        # before 2026-12-07 give the last position's only, [1, V])
        logits = torch.matmul(states, self.tokens)  # [1, n, V]
        return logits, torch.stack(new_keys), torch.stack(new_values), torch.stack(cross_weights)

    def _attend(self, attention, h, keys, values, mask):
        q = _heads(attention.q_proj(h) * attention.scaling, self.n_heads)
        y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=1.0)
        return self._merge(attention, y)

    def _cross_attend(self, attention, h, keys, values):
        """Cross-attention written out, so its weights [1, heads, n, T] are an output too
        (the same arithmetic as scaled_dot_product_attention without a mask)."""
        q = _heads(attention.q_proj(h) * attention.scaling, self.n_heads)
        weights = torch.softmax(torch.matmul(q, keys.transpose(-1, -2)), dim=-1)
        return self._merge(attention, torch.matmul(weights, values)), weights

    def _merge(self, attention, y):
        b, _, t, _ = y.shape
        return attention.out_proj(y.transpose(1, 2).reshape(b, t, -1))


def export_whisper_onnx(model_dir: str | Path, out_dir: str | Path, int8: bool = False) -> dict:
    """Export the whisper-distil student saved at `model_dir`; return the export config."""
    from transformers import WhisperForConditionalGeneration

    model = WhisperForConditionalGeneration.from_pretrained(model_dir).float().eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prompt = prompt_ids(model.generation_config)
    _export_encoder(model, out / ENCODER_FILE)
    export_decoder(model, prompt, out / DECODER_FILE)
    models = {"fp32": {"encoder": ENCODER_FILE, "decoder": DECODER_FILE}}
    if int8:
        models["int8"] = quantize_graphs(out, models["fp32"])
    copy_text_files(Path(model_dir), out)
    config = decoder_config(model, prompt, models)
    (out / "config.json").write_text(json.dumps(config, indent=1))
    return config


def _export_encoder(model: nn.Module, path: Path) -> None:
    cross = ["cross_keys", "cross_values"]
    features = torch.zeros(1, model.config.num_mel_bins, EXAMPLE_FRAMES)
    dynamic = {"features": {2: "frames"}, "encoder_out": {1: "t"}, **{c: {3: "t"} for c in cross}}
    outputs = ["encoder_out", *cross]
    trace_to_onnx(EncoderGraph(model).eval(), (features,), path, ["features"], outputs, dynamic)


def export_decoder(
    model: nn.Module, prompt: list[int], path: Path, vocab: int | None = None
) -> None:
    """The decoder step graph; `vocab` as DecoderStepGraph's."""
    cfg = model.config
    head_dim = cfg.d_model // cfg.decoder_attention_heads
    cache_shape = (cfg.decoder_layers, 1, cfg.decoder_attention_heads)
    cross = torch.zeros(*cache_shape, EXAMPLE_FRAMES // 2, head_dim)
    past = torch.zeros(*cache_shape, 0, head_dim)
    inputs = ["input_ids", "cross_keys", "cross_values", "past_keys", "past_values"]
    dynamic = {
        "input_ids": {1: "n"},
        **{name: {3: "t"} for name in ("cross_keys", "cross_values")},
        **{name: {3: "past"} for name in ("past_keys", "past_values")},
        **{name: {3: "total"} for name in ("keys_out", "values_out")},
        "cross_attention": {3: "n", 4: "t"},
        "logits": {1: "n"},
    }
    example = (torch.tensor([prompt]), cross, cross, past, past)
    outputs = ["logits", "keys_out", "values_out", "cross_attention"]
    trace_to_onnx(DecoderStepGraph(model, vocab).eval(), example, path, inputs, outputs, dynamic)


def quantize_graphs(out: Path, fp32: dict[str, str]) -> dict[str, str]:
    int8 = {part: name.replace(".onnx", ".int8.onnx") for part, name in fp32.items()}
    for part, name in fp32.items():
        quantize_int8(out / name, out / int8[part])
        store_exact_tables_in_half(out / int8[part])
    return int8


def store_exact_tables_in_half(path: Path) -> None:
    """Store each large float32 initializer that float16 holds exactly (a table the quantizer
    left alone, such as the decoder's learned positions: the teacher's own, which Whisper's
    checkpoints keep in float16) as float16, cast back where the graph reads it: half the
    bytes, the same values. onnxruntime folds the cast into a constant when it loads."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    for init in list(graph.initializer):
        half = _exact_half(numpy_helper.to_array(init))
        if half is None:
            continue
        graph.initializer.remove(init)
        graph.initializer.append(numpy_helper.from_array(half, f"{init.name}_fp16"))
        cast = helper.make_node(
            "Cast", [f"{init.name}_fp16"], [init.name], to=onnx.TensorProto.FLOAT
        )
        graph.node.insert(0, cast)
    onnx.save(model, str(path))


def _exact_half(values: np.ndarray) -> np.ndarray | None:
    """`values` as float16 if they are a float32 table of at least HALF_TABLE_VALUES values
    that float16 holds exactly, else None."""
    if values.dtype != np.float32 or values.size < HALF_TABLE_VALUES:
        return None
    half = values.astype(np.float16)
    return half if np.array_equal(half.astype(np.float32), values) else None


def copy_text_files(model_dir: Path, out: Path) -> None:
    """The processor and generation files, and the tokenizer slimmed for decoding."""
    for name in PROCESSOR_FILES:
        if (model_dir / name).is_file():
            shutil.copyfile(model_dir / name, out / name)
    decoding_tokenizer(model_dir / TOKENIZER_FILE, out / TOKENIZER_FILE)


def decoding_tokenizer(src: Path, dst: Path) -> None:
    """The student's tokenizer.json with what decoding reads (edge.whisper.ByteBPEDecoder:
    the vocabulary and the added tokens): its merges, which only encoding text needs, were
    2.5 of Whisper's 3.6 MB."""
    payload = json.loads(src.read_text())
    slim = {"model": {"vocab": payload["model"]["vocab"]}, "added_tokens": payload["added_tokens"]}
    dst.write_text(json.dumps(slim, ensure_ascii=False))


def decoder_config(model: nn.Module, prompt: list[int], models: dict) -> dict:
    """config.json: the files, and what greedy decoding needs besides the graphs (the
    decoder's part is shared by whisper-causal exports, export/causal_onnx.py)."""
    cfg, generation = model.config, model.generation_config
    return {
        "student": EXPORT_KIND,
        "format": "onnx",
        "models": models,
        "prompt": prompt,
        "eot": generation.eos_token_id,
        "suppress": list(generation.suppress_tokens or ()),
        "suppress_begin": list(generation.begin_suppress_tokens or ()),
        "max_target_positions": cfg.max_target_positions,
        "n_mels": cfg.num_mel_bins,
        "tail_seconds": getattr(cfg, "tail_seconds", None),
        "fill_window": getattr(cfg, "fill_window", False),
        "cache": {"layers": cfg.decoder_layers, "heads": cfg.decoder_attention_heads},
        # (layer, head) pairs whose cross-attention times words (edge.whisper)
        "alignment_heads": alignment_heads(
            getattr(generation, "alignment_heads", None),
            cfg.decoder_layers,
            cfg.decoder_attention_heads,
        ),
        "head_dim": cfg.d_model // cfg.decoder_attention_heads,
        "opset": OPSET,
    }

"""CTranslate2 Whisper -> transformers Whisper, so the bundled teacher runs in PyTorch.

CTranslate2 keeps no logits or hidden states a trainer can use; transformers does. The
conversion reads `model.bin` directly (format: ctranslate2/specs/model_spec.py `_serialize`)
and maps each variable onto `WhisperForConditionalGeneration`. The two layouts differ only in
fused projections (CT2 fuses self-attention q/k/v and cross-attention k/v) and in the key
projection's bias, which Whisper never had (CT2 stores zeros).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from audiodistill.errors import ModelError
from audiodistill.teachers.bundled import BUNDLED_NAME, bundled_ct2_dir, cache_dir, revision_of

# CTranslate2's type ids, in the order of model_spec.py's dtype list
CT2_DTYPES = {
    0: np.float32,
    1: np.int8,
    2: np.int16,
    3: np.int32,
    4: np.float16,
    5: "bfloat16",  # numpy has none; widened to float32 on read
}
SOT, EOT, NO_TIMESTAMPS = "<|startoftranscript|>", "<|endoftext|>", "<|notimestamps|>"


@dataclass(frozen=True)
class ConvertOptions:
    # CTranslate2 Whisper directory (model.bin, config.json, tokenizer.json); None: bundled
    ct2_dir: str | None = None
    # transformers directory to write (replaced atomically)
    out: str = "runs/teachers/whisper-tiny.en-hf"


def _read_string(f: BinaryIO) -> str:
    (length,) = struct.unpack("<H", f.read(2))
    return f.read(length)[:-1].decode("utf-8")  # stored with a trailing NUL


def _read_array(f: BinaryIO) -> np.ndarray:
    (rank,) = struct.unpack("<B", f.read(1))
    shape = struct.unpack(f"<{rank}I", f.read(4 * rank))
    type_id, num_bytes = struct.unpack("<BI", f.read(5))
    raw = f.read(num_bytes)
    if CT2_DTYPES[type_id] == "bfloat16":
        as_int = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
        return as_int.view(np.float32).reshape(shape)
    return np.frombuffer(raw, dtype=CT2_DTYPES[type_id]).reshape(shape)


def read_ct2_model(path: str | Path) -> tuple[str, dict[str, np.ndarray]]:
    """(spec name, variables by name) of a CTranslate2 model.bin; aliases resolved."""
    with open(path, "rb") as f:
        (version,) = struct.unpack("<I", f.read(4))
        if not 5 <= version <= 6:  # 6: model_spec.py's CURRENT_BINARY_VERSION in ctranslate2 4.x
            raise ValueError(f"{path}: CTranslate2 binary version {version} is not supported")
        spec = _read_string(f)
        f.read(4)  # spec revision
        (count,) = struct.unpack("<I", f.read(4))
        variables = {}
        for _ in range(count):
            name = _read_string(f)
            variables[name] = _read_array(f)
        (aliases,) = struct.unpack("<I", f.read(4))
        for _ in range(aliases):
            alias, target = _read_string(f), _read_string(f)
            variables[alias] = variables[target]
    return spec, variables


def dequantize(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Quantized weights back to float32, using the `<name>_scale` CTranslate2 stores beside.

    CTranslate2 quantizes as q = round(w * scale): int8 with one scale per output row (conv
    kernels flattened to rows first), int16 with one scale per matrix.
    """
    out = dict(variables)
    for name, scale in variables.items():
        if not name.endswith("_scale"):
            continue
        base = name[: -len("_scale")]
        q = variables[base].astype(np.float32)
        scale = np.asarray(scale, dtype=np.float32)
        if scale.ndim:  # [out rows]
            out[base] = (q.reshape(q.shape[0], -1) / scale[:, None]).reshape(q.shape)
        else:
            out[base] = q / scale
        del out[name]
    return out


def _attention(prefix: str, src: str, v: dict, fused: str) -> dict[str, np.ndarray]:
    """q/k/v/out of one attention block; `fused` is "qkv" (self) or "kv" (cross)."""
    out = {}
    if fused == "qkv":
        w = np.split(v[f"{src}/linear_0/weight"], 3)
        b = np.split(v[f"{src}/linear_0/bias"], 3)
        names, out_linear = ("q", "k", "v"), 1
    else:
        w = [v[f"{src}/linear_0/weight"], *np.split(v[f"{src}/linear_1/weight"], 2)]
        b = [v[f"{src}/linear_0/bias"], *np.split(v[f"{src}/linear_1/bias"], 2)]
        names, out_linear = ("q", "k", "v"), 2
    for name, weight, bias in zip(names, w, b, strict=True):
        out[f"{prefix}.{name}_proj.weight"] = weight
        # Whisper's key projection has no bias (CT2 stores zeros; a key bias would not
        # change attention anyway, softmax ignores a shift shared by all keys)
        if name != "k":
            out[f"{prefix}.{name}_proj.bias"] = bias
    out[f"{prefix}.out_proj.weight"] = v[f"{src}/linear_{out_linear}/weight"]
    out[f"{prefix}.out_proj.bias"] = v[f"{src}/linear_{out_linear}/bias"]
    return out


def _norm(dst: str, src: str, v: dict) -> dict[str, np.ndarray]:
    return {f"{dst}.weight": v[f"{src}/gamma"], f"{dst}.bias": v[f"{src}/beta"]}


def _ffn(dst: str, src: str, v: dict) -> dict[str, np.ndarray]:
    return {
        f"{dst}.fc1.weight": v[f"{src}/linear_0/weight"],
        f"{dst}.fc1.bias": v[f"{src}/linear_0/bias"],
        f"{dst}.fc2.weight": v[f"{src}/linear_1/weight"],
        f"{dst}.fc2.bias": v[f"{src}/linear_1/bias"],
    }


class _ReadRecorder(dict):
    """A dict that remembers which keys were read, so no CT2 weight is silently dropped."""

    def __init__(self, *args):
        super().__init__(*args)
        self.read: set[str] = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


def whisper_state_dict(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """transformers parameter names -> float32 arrays, from (dequantized) CT2 Whisper variables.

    Every CT2 tensor must find a place: scalars are settings (head counts, flags) and the
    output projection must equal the token embedding, which transformers ties to it.
    """
    v = _ReadRecorder(variables)
    state = _map_whisper(v)
    projection = variables.get("decoder/projection/weight")
    if projection is not None and not np.array_equal(projection, v["decoder/embeddings/weight"]):
        raise ValueError("decoder projection differs from the token embedding; cannot tie them")
    unmapped = [
        name
        for name, array in variables.items()
        if name not in v.read and array.ndim and name != "decoder/projection/weight"
    ]
    if unmapped:
        raise ValueError(f"CT2 variables with no transformers counterpart: {unmapped}")
    return {k: np.asarray(a, dtype=np.float32) for k, a in state.items()}


def _map_whisper(v: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    state = {}
    for i in range(_count_layers(v, "encoder")):
        src, dst = f"encoder/layer_{i}", f"model.encoder.layers.{i}"
        state |= _attention(f"{dst}.self_attn", f"{src}/self_attention", v, "qkv")
        state |= _norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm", v)
        state |= _ffn(dst, f"{src}/ffn", v)
        state |= _norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm", v)
    for i in range(_count_layers(v, "decoder")):
        src, dst = f"decoder/layer_{i}", f"model.decoder.layers.{i}"
        state |= _attention(f"{dst}.self_attn", f"{src}/self_attention", v, "qkv")
        state |= _norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm", v)
        state |= _attention(f"{dst}.encoder_attn", f"{src}/attention", v, "kv")
        state |= _norm(f"{dst}.encoder_attn_layer_norm", f"{src}/attention/layer_norm", v)
        state |= _ffn(dst, f"{src}/ffn", v)
        state |= _norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm", v)
    for conv in ("conv1", "conv2"):
        state[f"model.encoder.{conv}.weight"] = v[f"encoder/{conv}/weight"]
        state[f"model.encoder.{conv}.bias"] = v[f"encoder/{conv}/bias"]
    state["model.encoder.embed_positions.weight"] = v["encoder/position_encodings/encodings"]
    state |= _norm("model.encoder.layer_norm", "encoder/layer_norm", v)
    state["model.decoder.embed_tokens.weight"] = v["decoder/embeddings/weight"]
    state["model.decoder.embed_positions.weight"] = v["decoder/position_encodings/encodings"]
    state |= _norm("model.decoder.layer_norm", "decoder/layer_norm", v)
    return state


def _count_layers(v: dict, side: str) -> int:
    return len({m.group(1) for name in v if (m := re.match(rf"{side}/layer_(\d+)/", name))})


def whisper_config(v: dict[str, np.ndarray], ct2_config: dict, tokenizer):
    """A WhisperConfig with the shapes of the CT2 variables and CT2's decoding settings."""
    from transformers import WhisperConfig

    vocab, d_model = v["decoder/embeddings/weight"].shape
    multilingual = vocab >= 51865  # English-only checkpoints have 51864 tokens
    return WhisperConfig(
        vocab_size=vocab,
        num_mel_bins=v["encoder/conv1/weight"].shape[1],
        d_model=d_model,
        encoder_layers=_count_layers(v, "encoder"),
        decoder_layers=_count_layers(v, "decoder"),
        encoder_attention_heads=int(v["encoder/num_heads"]),
        decoder_attention_heads=int(v["decoder/num_heads"]),
        encoder_ffn_dim=v["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=v["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=v["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=v["decoder/position_encodings/encodings"].shape[0],
        decoder_start_token_id=tokenizer.convert_tokens_to_ids(SOT),
        bos_token_id=tokenizer.convert_tokens_to_ids(EOT),
        eos_token_id=tokenizer.convert_tokens_to_ids(EOT),
        pad_token_id=tokenizer.convert_tokens_to_ids(EOT),
        suppress_tokens=list(ct2_config.get("suppress_ids", [])),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin", [])),
        tie_word_embeddings=True,
    ), multilingual


def generation_config(config, ct2_config: dict, tokenizer, multilingual: bool):
    """Greedy, no timestamps; language and task ids for multilingual models."""
    from transformers import GenerationConfig

    generation = GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        suppress_tokens=config.suppress_tokens,
        begin_suppress_tokens=config.begin_suppress_tokens,
        no_timestamps_token_id=tokenizer.convert_tokens_to_ids(NO_TIMESTAMPS),
        max_length=config.max_target_positions,
        is_multilingual=multilingual,
        alignment_heads=ct2_config.get("alignment_heads"),
    )
    if multilingual:
        lang_ids = ct2_config.get("lang_ids", [])
        generation.lang_to_id = {tokenizer.convert_ids_to_tokens(i): i for i in lang_ids}
        generation.task_to_id = {
            task: tokenizer.convert_tokens_to_ids(f"<|{task}|>")
            for task in ("transcribe", "translate")
        }
    return generation


def _tokenizer(ct2_dir: Path):
    from transformers import WhisperTokenizerFast

    return WhisperTokenizerFast(
        tokenizer_file=str(ct2_dir / "tokenizer.json"),
        unk_token=EOT,
        bos_token=EOT,
        eos_token=EOT,
    )


def _write_converted(ct2_dir: Path, parent: Path) -> Path:
    """Convert into a fresh temporary directory under `parent` (the caller publishes it)."""
    import torch
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    spec, variables = read_ct2_model(ct2_dir / "model.bin")
    if spec != "WhisperSpec":
        raise ValueError(f"{ct2_dir}: a {spec} model, not Whisper")
    variables = dequantize(variables)
    ct2_config = json.loads((ct2_dir / "config.json").read_text())
    tokenizer = _tokenizer(ct2_dir)
    config, multilingual = whisper_config(variables, ct2_config, tokenizer)
    model = WhisperForConditionalGeneration(config)
    state = {k: torch.from_numpy(a) for k, a in whisper_state_dict(variables).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if m != "proj_out.weight"]  # tied to the token embedding
    if missing or unexpected:
        raise RuntimeError(f"conversion mapping is wrong: missing {missing}, extra {unexpected}")
    model.generation_config = generation_config(config, ct2_config, tokenizer, multilingual)
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".converting-", dir=parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        WhisperFeatureExtractor(feature_size=config.num_mel_bins).save_pretrained(tmp)
        source = {"ct2_dir": str(ct2_dir), "revision": revision_of(ct2_dir)}
        (tmp / "source.json").write_text(json.dumps(source, indent=2))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def convert_ct2_whisper(ct2_dir: str | Path | None, out: str | Path) -> Path:
    """Write a transformers Whisper directory equivalent to a CTranslate2 one; returns `out`.

    `out` appears complete or not at all: the model is written beside it and renamed into
    place (an existing `out` is moved aside first, then deleted).
    """
    ct2_dir = Path(ct2_dir) if ct2_dir else bundled_ct2_dir()
    if not (ct2_dir / "model.bin").is_file():
        raise ModelError(f"{ct2_dir}: not a CTranslate2 Whisper directory (no model.bin)")
    out = Path(out)
    tmp = _write_converted(ct2_dir, out.parent)
    old = tmp.with_name(tmp.name + ".old")
    try:
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return out


def ensure_bundled_hf() -> Path:
    """The bundled teacher in transformers format, converted on first use and cached.

    Safe for several processes (Ray actors) at once: each converts into its own temporary
    directory and renames it into place; a rename that loses the race finds the target
    already there and uses it. A published directory is never deleted or rewritten.
    """
    ct2_dir = bundled_ct2_dir()
    target = cache_dir() / f"{BUNDLED_NAME}-hf-{revision_of(ct2_dir)}"
    if target.is_dir():
        return target
    tmp = _write_converted(ct2_dir, target.parent)
    try:
        os.rename(tmp, target)
    except OSError:
        if not target.is_dir():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target

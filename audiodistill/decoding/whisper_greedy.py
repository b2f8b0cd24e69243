"""Batched greedy decoding for Whisper-style decoders, with a KV cache and soft targets, and
the word times of what was decoded (`decoder_words`).

One decoder for the transformers teacher and the whisper-distil student, so both decode
the same way. It takes encoder output rather than audio because the student runs its
encoder on unpadded input. Suppression follows faster-whisper (the config's suppress ids
every step; blank and end-of-text at the first step) so greedy transcripts match the
CTranslate2 teacher token for token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from audiodistill.decoding.repetition import LOOP_REPEATS, loop_excess
from audiodistill.decoding.words import Word


@dataclass
class Decoded:
    token_ids: list[int]  # generated text tokens, prompt and end-of-text excluded
    no_speech_prob: float  # P(no_speech_id) right after start-of-transcript (nan if unused)
    # each generated token's log-prob, end-of-text included; no end-of-text row when cut off
    # at max_new_tokens or ended for looping (`repetition.loop_excess`)
    step_logprobs: list[float] = field(default_factory=list)  # [steps]
    topk_ids: list[list[int]] = field(default_factory=list)  # [steps, k]
    topk_logprobs: list[list[float]] = field(default_factory=list)  # [steps, k]

    @property
    def steps(self) -> int:
        return len(self.step_logprobs)

    @property
    def sum_logprob(self) -> float:
        return sum(self.step_logprobs)

    @property
    def avg_logprob(self) -> float:
        """faster-whisper's definition: end-of-text counts as a token."""
        return self.sum_logprob / max(self.steps, 1)


def previous_text_ids(tokenizer, text: str | None, max_target_positions: int) -> list[int]:
    """<|startofprev|> and `text`'s tokens: how Whisper conditions on earlier text (none for
    no text).

    An OpenAI-style `prompt` (names, spellings, style) goes here. Like Whisper, only the last
    half-context of tokens is kept, so the transcript always has room.
    """
    if not text:
        return []
    ids = tokenizer.encode(" " + text.strip(), add_special_tokens=False)
    keep = max_target_positions // 2 - 1
    return [tokenizer.convert_tokens_to_ids("<|startofprev|>")] + ids[-keep:]


def prompt_ids(
    generation_config, language: str | None = "en", previous: Sequence[int] = ()
) -> list[int]:
    """Previous text (if any), start of transcript, language and task (multilingual models),
    no timestamps."""
    prompt = [*previous, generation_config.decoder_start_token_id]
    lang_ids = getattr(generation_config, "lang_to_id", None) or {}
    if lang_ids:
        if not language:
            raise ValueError("a multilingual Whisper needs a language (no detection here)")
        prompt.append(lang_ids[f"<|{language}|>"])
        prompt.append(generation_config.task_to_id["transcribe"])
    prompt.append(generation_config.no_timestamps_token_id)
    return prompt


def _suppression_mask(vocab: int, ids: Sequence[int], device) -> torch.Tensor:
    mask = torch.zeros(vocab, dtype=torch.bool, device=device)
    ids = [i for i in ids if 0 <= i < vocab]
    if ids:
        mask[torch.tensor(ids, device=device)] = True
    return mask


@torch.inference_mode()
def greedy_decode(
    model: nn.Module,
    encoder_out: torch.Tensor,
    prompt: Sequence[int],
    eot: int,
    max_new_tokens: int = 224,
    top_k: int = 0,
    suppress: Sequence[int] = (),
    suppress_begin: Sequence[int] = (),
    no_speech_id: int | None = None,
    loop_repeats: int = LOOP_REPEATS,
) -> list[Decoded]:
    """Greedy transcripts of a WhisperForConditionalGeneration for encoder outputs [B, T, D].

    `prompt` is `prompt_ids`' output: optional previous text, then start-of-transcript and the
    task tokens. Log-probs and top-k
    soft targets are of the distribution after suppression: the one the greedy choice was
    made from, as CTranslate2 scores it. A sequence that ends in one block of tokens repeated
    `loop_repeats` times is ended there with one copy kept (`repetition.loop_excess`; 0: never).
    """
    batch = encoder_out.shape[0]
    device = encoder_out.device
    vocab = model.proj_out.out_features
    never = _suppression_mask(vocab, suppress, device)
    first = never | _suppression_mask(vocab, suppress_begin, device)
    results = [Decoded([], float("nan")) for _ in range(batch)]
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    cache, step_input = None, torch.tensor([list(prompt)] * batch, device=device)  # [B, P]
    limit = min(max_new_tokens, model.config.max_target_positions - len(prompt))
    for step in range(limit):
        out = model.model.decoder(
            input_ids=step_input, encoder_hidden_states=encoder_out, cache=cache, use_cache=True
        )
        cache = out.cache
        logits = model.proj_out(out.last_hidden_state[:, -1]).float()  # [B, V]
        if step == 0 and no_speech_id is not None:
            # read where Whisper was trained to predict it: right after start-of-transcript
            sot = list(prompt).index(model.config.decoder_start_token_id)
            at_sot = model.proj_out(out.last_hidden_state[:, sot]).float().softmax(-1)
            for b in range(batch):
                results[b].no_speech_prob = float(at_sot[b, no_speech_id])
        logits = logits.masked_fill(first if step == 0 else never, float("-inf"))
        logprobs = logits.log_softmax(-1)
        chosen = logprobs.argmax(-1)  # [B]
        _record(results, done, chosen, logprobs, eot, top_k)
        done |= chosen == eot
        done |= _end_loops(results, done, loop_repeats)
        if done.all():
            break
        # finished rows keep feeding end-of-text; their outputs are no longer recorded
        step_input = chosen.masked_fill(done, eot)[:, None]  # [B, 1]
    return results


def generation_greedy(
    model: nn.Module,
    encoder_out: torch.Tensor,
    prompt: Sequence[int],
    max_new_tokens: int,
    first: bool = True,
    loop_repeats: int = LOOP_REPEATS,
) -> list[Decoded]:
    """`greedy_decode` with the end-of-text and suppressed ids of the model's generation
    config. `first`: the prompt ends at the start of the transcript, where Whisper also
    suppresses blank and end-of-text (not after tokens a decode has already kept)."""
    generation = model.generation_config
    return greedy_decode(
        model,
        encoder_out,
        prompt=prompt,
        eot=generation.eos_token_id,
        max_new_tokens=max_new_tokens,
        suppress=generation.suppress_tokens or (),
        suppress_begin=(generation.begin_suppress_tokens or ()) if first else (),
        loop_repeats=loop_repeats,
    )


@torch.inference_mode()
def accepted_draft(
    model: nn.Module,
    encoder_out: torch.Tensor,
    prompt: Sequence[int],
    draft: Sequence[int],
    suppress: Sequence[int] = (),
    suppress_begin: Sequence[int] = (),
) -> int:
    """How many leading tokens of `draft` greedy decoding of encoder_out [1, T, D] would
    produce itself: one teacher-forced pass over prompt + draft checks them all at once
    (speculative decoding, the draft being an earlier hypothesis of the same stream), so a
    decode that starts from prompt + the accepted tokens gives greedy's own tokens."""
    if not draft:
        return 0
    ids = torch.tensor([[*prompt, *draft]], device=encoder_out.device)
    hidden = model.model.decoder(input_ids=ids, encoder_hidden_states=encoder_out)
    # position len(prompt) - 1 + i predicts draft token i
    rows = hidden.last_hidden_state[0, len(prompt) - 1 : len(prompt) - 1 + len(draft)]
    logits = model.proj_out(rows).float()  # [len(draft), V]
    vocab = logits.shape[-1]
    never = _suppression_mask(vocab, suppress, logits.device)
    logits = logits.masked_fill(never, float("-inf"))
    first = _suppression_mask(vocab, suppress_begin, logits.device)
    logits[0] = logits[0].masked_fill(first, float("-inf"))
    agree = (logits.argmax(-1) == torch.tensor(list(draft), device=logits.device)).long()
    return int(agree.cumprod(0).sum())


def _record(results, done, chosen, logprobs, eot: int, top_k: int) -> None:
    """Append this step's choice, its log-prob and soft targets to every unfinished sequence."""
    picked = logprobs.gather(-1, chosen[:, None])[:, 0]
    if top_k:
        top_values, top_ids = logprobs.topk(top_k, dim=-1)
    for b, result in enumerate(results):
        if done[b]:
            continue
        token = int(chosen[b])
        result.step_logprobs.append(float(picked[b]))
        if token != eot:
            result.token_ids.append(token)
        if top_k:
            result.topk_ids.append(top_ids[b].tolist())
            result.topk_logprobs.append(top_values[b].tolist())


def _end_loops(results: list[Decoded], done: torch.Tensor, repeats: int) -> torch.Tensor:
    """[B] bool: sequences that just started looping, cut back to their first copy as if
    generation had stopped there (no end-of-text row, like a max_new_tokens cut-off)."""
    ended = torch.zeros_like(done)
    for b, result in enumerate(results):
        excess = 0 if done[b] else loop_excess(result.token_ids, repeats)
        if not excess:
            continue
        keep = len(result.token_ids) - excess
        del result.token_ids[keep:], result.step_logprobs[keep:]
        del result.topk_ids[keep:], result.topk_logprobs[keep:]
        ended[b] = True
    return ended


def model_alignment_heads(model: nn.Module) -> list[tuple[int, int]]:
    """The (layer, head) pairs that time words: the generation config's alignment heads, or
    the fallback of `whisper_alignment.alignment_heads`. A whisper-distil student saved
    before its heads were renumbered to its kept layers (no `teacher_layers` in its config)
    holds the teacher's numbering, which would pick the wrong heads: it gets the fallback."""
    from audiodistill.decoding.whisper_alignment import alignment_heads

    config = model.config
    heads = getattr(model.generation_config, "alignment_heads", None)
    if getattr(config, "student", None) == "whisper-distil" and not getattr(
        config, "teacher_layers", None
    ):
        heads = None
    return alignment_heads(heads, config.decoder_layers, config.decoder_attention_heads)


@torch.inference_mode()
def decoder_words(
    model: nn.Module,
    encoder_out: torch.Tensor,
    prompt: Sequence[int],
    tokens: Sequence[int],
    positions: int,
    decode,
) -> list[Word]:
    """Words of one window's greedy `tokens`, timed from the cross-attention of a
    teacher-forced pass of `prompt` + `tokens` over `encoder_out` [1, T, D], whose first
    `positions` encoder positions hold the audio (`whisper_alignment.timed_words`).
    `decode`: token ids -> text, not stripped."""
    from audiodistill.decoding.whisper_alignment import timed_words
    from audiodistill.export.whisper_onnx import DecoderStepGraph, cross_keys_values

    if not tokens:
        return []
    keys, values = cross_keys_values(model, encoder_out)
    cfg = model.config
    head_dim = cfg.d_model // cfg.decoder_attention_heads
    empty = keys.new_zeros(cfg.decoder_layers, 1, cfg.decoder_attention_heads, 0, head_dim)
    ids = torch.tensor([[*prompt, *tokens]], device=encoder_out.device)
    *_, weights = DecoderStepGraph(model)(ids, keys, values, empty, empty)
    # row i of the rows from the prompt's last on predicted token i (the last, end-of-text)
    rows = weights[:, 0, :, len(prompt) - 1 :].float().cpu().numpy()  # [L, H, tokens + 1, T]
    chosen = np.stack([rows[layer, head] for layer, head in model_alignment_heads(model)])
    return timed_words(list(tokens), decode, chosen, positions)

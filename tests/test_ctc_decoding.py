import math

import numpy as np
import pytest

from audiodistill.config import ConfigError
from audiodistill.decoding.ctc_decoder import (
    LM_FILE,
    BeamDecoder,
    DecodingOptions,
    GreedyDecoder,
    decode,
    fit_char_lm,
    greedy_text,
    load_decoder,
    log_softmax,
)
from audiodistill.students.tokenizer import SYMBOLS

SYMS = tuple(SYMBOLS)


def _frames(*rows: dict[str, float]) -> np.ndarray:
    """Log-probs [T, V] from per-frame {symbol: probability}; the rest share what is left."""
    out = np.empty((len(rows), len(SYMS)))
    for t, row in enumerate(rows):
        rest = (1.0 - sum(row.values())) / (len(SYMS) - len(row))
        out[t] = [row.get(s, rest) for s in SYMS]
    return np.log(out)


def test_beam_sums_over_paths_where_greedy_takes_the_best_one():
    # two frames of {blank 0.55, a 0.44}: the best path is blank blank (""), but the three
    # paths that spell "a" (a a, a -, - a) together outweigh it: 0.44^2 + 2 * 0.44 * 0.55
    frames = _frames(*[{"": 0.55, "a": 0.44}] * 2)
    assert decode(GreedyDecoder(SYMS), frames) == ""
    assert decode(BeamDecoder(SYMS), frames) == "a"


def test_repeats_need_a_blank_between_them():
    frames = _frames({"l": 0.99}, {"l": 0.99}, {"": 0.99}, {"l": 0.99})
    assert decode(BeamDecoder(SYMS), frames) == decode(GreedyDecoder(SYMS), frames) == "ll"


def test_the_lm_picks_the_spelling_its_text_knows():
    lm = fit_char_lm(["the cat sat", "a cat", "my cat ran"], order=4)
    # acoustics prefer "cot" a little; the LM has never seen "o" after "c"
    frames = _frames({"c": 0.9}, {"": 0.9}, {"o": 0.5, "a": 0.4}, {"": 0.9}, {"t": 0.9})
    assert decode(GreedyDecoder(SYMS), frames) == "cot"
    assert decode(BeamDecoder(SYMS), frames) == "cot"
    assert decode(BeamDecoder(SYMS, lm=lm), frames) == "cat"
    muted = DecodingOptions(lm_weight=0.0, char_bonus=0.0)
    assert decode(BeamDecoder(SYMS, options=muted, lm=lm), frames) == "cot"


def test_chunk_by_chunk_equals_all_frames_at_once():
    lm = fit_char_lm(["hello world", "hold the door", "well done"], order=5)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(60, len(SYMS))) * 3
    logits[:, 0] += 2.0  # mostly blank, as CTC output is
    frames = log_softmax(logits)
    for decoder in (GreedyDecoder(SYMS), BeamDecoder(SYMS), BeamDecoder(SYMS, lm=lm)):
        whole = decode(decoder, frames)
        stream = decoder.stream()
        for start in range(0, 60, 7):
            stream.accept(frames[start : start + 7])
        assert stream.finalize() == whole and whole


def test_a_prune_threshold_above_every_symbol_still_decodes():
    frames = _frames({"h": 0.6}, {"": 0.6}, {"i": 0.6})
    strict = DecodingOptions(prune_logprob=-0.1)  # no symbol has probability over 0.9
    assert decode(BeamDecoder(SYMS, options=strict), frames) == "hi"


def test_greedy_stream_is_the_best_path():
    rng = np.random.default_rng(1)
    frames = log_softmax(rng.normal(size=(40, len(SYMS))) * 4)
    expected = greedy_text(frames.argmax(-1).tolist(), SYMS)
    stream = GreedyDecoder(SYMS).stream()
    assert stream.accept(frames[:20]) == greedy_text(frames[:20].argmax(-1).tolist(), SYMS)
    stream.accept(frames[20:])
    assert stream.finalize() == expected


def test_log_softmax_matches_the_definition():
    x = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]])
    out = log_softmax(x)
    assert np.allclose(np.exp(out).sum(-1), 1.0)
    assert out[0, 2] == pytest.approx(3.0 - math.log(math.exp(1) + math.exp(2) + math.exp(3)))


def test_load_decoder_reads_an_exports_choice(tmp_path):
    assert isinstance(load_decoder(None, SYMS, 0, tmp_path / LM_FILE), GreedyDecoder)
    no_lm = load_decoder({"method": "beam", "beam": 4}, SYMS, 0, tmp_path / LM_FILE)
    assert isinstance(no_lm, BeamDecoder) and no_lm.lm is None and no_lm.options.beam == 4
    fit_char_lm(["a cat"], 3).save_arpa(tmp_path / LM_FILE)
    with_lm = load_decoder({"method": "beam"}, SYMS, 0, tmp_path / LM_FILE)
    assert with_lm.lm is not None and with_lm.lm.order == 3
    with pytest.raises(ConfigError, match="decoding.beams"):
        load_decoder({"beams": 4}, SYMS, 0, tmp_path / LM_FILE)
    with pytest.raises(ValueError, match="method"):
        DecodingOptions(method="sampling")

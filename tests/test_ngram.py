import math

import pytest

from audiodistill.decoding.ngram_lm import BOS, EOS, UNK, NgramLM, fit_kneser_ney

SENTENCES = [list("the|cat"), list("the|dog"), list("a|cat|sat")]


def _vocab(sentences) -> list[str]:
    return sorted({t for s in sentences for t in s}) + [EOS, UNK]


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_every_history_gives_a_distribution(order):
    lm = fit_kneser_ney(SENTENCES, order)
    for history in [(), (BOS,), ("t", "h"), ("x", "y"), ("c", "a"), (BOS, "a", "|")]:
        total = sum(math.exp(lm.logp(history, w)) for w in _vocab(SENTENCES))
        assert total == pytest.approx(1.0, abs=1e-9), history


def test_unigram_kneser_ney_by_hand():
    # order 1 keeps raw counts: a 1, b 1, </s> 2 (total 4, 3 types); the discounted mass
    # 0.75 * 3 / 4 is shared uniformly by a, b, </s> and <unk>
    lm = fit_kneser_ney([["a"], ["b"]], order=1)
    spread = 0.75 * 3 / 4 / 4
    assert math.exp(lm.logp((), "a")) == pytest.approx(0.25 / 4 + spread)
    assert math.exp(lm.logp((), EOS)) == pytest.approx(1.25 / 4 + spread)
    assert math.exp(lm.logp((), "zebra")) == pytest.approx(spread)  # unknown: <unk>


def test_bigram_kneser_ney_by_hand():
    # "a" and "a b": bigrams <s> a (2), a </s> (1), a b (1), b </s> (1); unigram
    # continuation counts a 1, b 1, </s> 2
    lm = fit_kneser_ney([["a"], ["a", "b"]], order=2)
    p_b = 0.25 / 4 + 0.75 * 3 / 4 / 4
    # seen: (c(a b) - D) / c(a .) + D * types(a .) / c(a .) * P1(b)
    assert math.exp(lm.logp(("a",), "b")) == pytest.approx(0.25 / 2 + 0.75 * 2 / 2 * p_b)
    # unseen after a: all of it backs off, weighted by gamma(a)
    p_a = p_b
    assert math.exp(lm.logp(("a",), "a")) == pytest.approx(0.75 * 2 / 2 * p_a)
    # only the last order - 1 tokens of a history count
    assert lm.logp(("b", "b", "a"), "b") == lm.logp(("a",), "b")


def test_arpa_round_trip(tmp_path):
    lm = fit_kneser_ney(SENTENCES, 3)
    lm.save_arpa(tmp_path / "lm.arpa")
    text = (tmp_path / "lm.arpa").read_text()
    assert "\\data\\" in text and "\\3-grams:" in text and text.rstrip().endswith("\\end\\")
    loaded = NgramLM.load_arpa(tmp_path / "lm.arpa")
    assert loaded.order == 3
    for history in [(), (BOS,), (BOS, "t"), ("a", "|"), ("q", "q")]:
        for w in [*_vocab(SENTENCES), "zebra"]:
            assert loaded.logp(history, w) == pytest.approx(lm.logp(history, w), abs=1e-5)


def test_bad_input_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="whitespace"):
        fit_kneser_ney([["a b"]], 2)  # ARPA could not store the token
    with pytest.raises(ValueError, match="no text"):
        fit_kneser_ney([], 2)
    with pytest.raises(ValueError, match="order"):
        fit_kneser_ney(SENTENCES, 0)
    fit_kneser_ney(SENTENCES, 2).save_arpa(tmp_path / "lm.arpa")
    lines = (tmp_path / "lm.arpa").read_text().splitlines()
    (tmp_path / "cut.arpa").write_text("\n".join(lines[:-6]))  # bigram lines lost
    with pytest.raises(ValueError, match="counts"):
        NgramLM.load_arpa(tmp_path / "cut.arpa")

import pytest

from audiodistill.evaluation.wer import (
    cer,
    corpus_wer,
    normalize_text,
    paired_wer_difference,
    wer,
    word_errors,
)


@pytest.mark.parametrize(
    "raw, normalized",
    [
        ("Hello, World!", "hello world"),
        ("Forty-two dollars.", "$42"),
        ("$42", "$42"),
        ("The colour of the harbour", "the color of the harbor"),
        ("Um, I think   so.", "i think so"),
        ("Mr. Smith's car", "mister smith is car"),  # Whisper's rule: 's -> is
        ("At 5:30 PM in the U.S.", "at 5 30 pm in the us"),
        ("twenty twenty-six", "2026"),
        ("It's 5:30 p.m.", "it is 5 30 pm"),
        ("One hundred and five people.", "105 people"),
        ("It costs $1,250.", "it costs $1250"),
        ("twenty-five percent", "25%"),
        ("I won't go, they're late.", "i will not go they are late"),
        ("I've been there", "i have been there"),
        ("We can't organise the programme.", "we can not organize the program"),
        ("3.5 kilometres", "3.5 kilometers"),
        ("Wait... what?!", "wait what"),
        ("Uh, hmm, yes.", "yes"),
        ("Dr. Jones", "doctor jones"),
        ("(laughs) okay [noise] go", "okay go"),  # bracketed annotations are not speech
        ("", ""),
    ],
)
def test_normalization_table(raw, normalized):
    assert normalize_text(raw) == normalized


def test_wer_ignores_formatting_and_counts_edits():
    assert wer("Set a timer for forty-two minutes.", "set a timer for 42 minutes") == 0.0
    counts = word_errors("a b c d", "a x c d e")
    assert (counts.substitutions, counts.deletions, counts.insertions) == (1, 0, 1)
    assert counts.wer == pytest.approx(0.5)


def test_empty_sides():
    assert wer("", "") == 0.0
    assert wer("", "something") == 1.0
    assert wer("two words", "") == 1.0


def test_corpus_wer_weights_by_reference_length():
    total = corpus_wer(["a b c d", "e"], ["a b c d", "x"])
    assert total.wer == pytest.approx(1 / 5)
    with pytest.raises(ValueError):
        corpus_wer(["a"], [])


def test_cer():
    assert cer("abcd", "abxd") == pytest.approx(0.25)


def test_paired_wer_difference_and_its_bootstrap_interval():
    references = ["a b", "c d"]
    assert paired_wer_difference(references, references, references) == (0.0, 0.0, 0.0)
    # one more error in 4 words; a resample holds the damaged utterance 0, 1 or 2 times
    delta, low, high = paired_wer_difference(references, references, ["a b", "c x"])
    assert delta == 0.25 and 0.0 <= low < delta < high <= 0.5
    assert paired_wer_difference(references, references, ["a b", "c x"]) == (delta, low, high)
    # errors both make cancel: only the difference counts
    better, *_ = paired_wer_difference(references, ["a x", "c x"], ["a x", "c d"])
    assert better == -0.25


def test_paired_wer_difference_refuses_unpaired_outputs():
    with pytest.raises(ValueError, match="equally many"):
        paired_wer_difference(["a b"], ["a b"], [])
    with pytest.raises(ValueError, match="equally many"):
        paired_wer_difference([], [], [])

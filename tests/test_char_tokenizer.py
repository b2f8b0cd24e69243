import json

import pytest

from audiodistill.evaluation.wer import normalize_text
from audiodistill.students.tokenizer import BLANK, CharTokenizer, spoken_form

SPOKEN = [
    ("Holly paid $268.", "holly paid two hundred and sixty eight dollars"),
    ("75%", "seventy five percent"),
    ("7.5 %", "seven point five percent"),
    ("the 3rd time, the 21st day", "the third time the twenty first day"),
    ("In 1999 and 2005.", "in nineteen ninety nine and two thousand and five"),
    ("$247.45", "two hundred and forty seven dollars and forty five cents"),
    ("$0.50 or $1", "fifty cents or one dollar"),
    ("£5.99", "five pounds and ninety nine pence"),
    ("$1.5 million", "one point five million dollars"),
    ("7:30am", "seven thirty am"),
    ("10:00 a.m.", "ten am"),
    ("Meet at 2:00.", "meet at two o'clock"),
    ("4:05 PM", "four oh five pm"),
    ("Call 945-682-4173.", "call nine four five six eight two four one seven three"),
    ("Order 518536 or 007", "order five one eight five three six or zero zero seven"),
    ("1,000 people", "one thousand people"),
    ("pi is 3.14", "pi is three point one four"),
    ("rock & roll", "rock and roll"),
    ("A well-known fact", "a well known fact"),
    ('He said "don\u2019t!"', "he said don't"),
    ("'quoted' dogs' toys", "quoted dogs toys"),
    ("Caf\u00e9 na\u00efve", "cafe naive"),
    ("Hello, WORLD!?", "hello world"),
    ("   ", ""),
]  # fmt: skip


@pytest.mark.parametrize(("written", "spoken"), SPOKEN)
def test_spoken_form(written, spoken):
    assert spoken_form(written) == spoken


@pytest.mark.parametrize(
    "written",
    ["$268", "75%", "7.5%", "3rd", "1999", "2031", "$247.45", "1,000 people", "November 17th"],
)
def test_evaluation_normalizer_maps_spoken_form_back(written):
    assert normalize_text(spoken_form(written)) == normalize_text(written)


def test_vocabulary_layout():
    tok = CharTokenizer()
    assert tok.vocab_size == 29
    assert tok.symbols[BLANK] == "" and BLANK == 0
    assert tok.encode("a b'z") == [2, 1, 3, 28, 27]


def test_encode_decode_round_trip_is_the_spoken_form():
    tok = CharTokenizer()
    text = "Set a timer for 75 minutes & call Wayne at 945-682-4173."
    ids = tok.encode(text)
    assert BLANK not in ids
    assert tok.decode(ids) == spoken_form(text)


def test_greedy_merges_repeats_and_drops_blanks():
    tok = CharTokenizer()
    a, b, space = tok.encode("a")[0], tok.encode("b")[0], tok.encode("a b")[1]
    frames = [0, space, a, a, 0, a, space, space, b, b, 0, space]
    assert tok.greedy(frames) == "aa b"
    assert tok.greedy([]) == ""
    assert tok.decode([a, 0, a]) == "aa"


def test_save_load_round_trip(tmp_path):
    tok = CharTokenizer()
    tok.save(tmp_path / "tokenizer.json")
    assert json.loads((tmp_path / "tokenizer.json").read_text())["type"] == "char"
    loaded = CharTokenizer.load(tmp_path / "tokenizer.json")
    assert loaded.symbols == tok.symbols
    (tmp_path / "other.json").write_text(json.dumps({"type": "bpe"}))
    with pytest.raises(ValueError, match="not a char tokenizer"):
        CharTokenizer.load(tmp_path / "other.json")

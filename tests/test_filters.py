import pandas as pd

from audiodistill.data.label_filters import FilterOptions, apply_filters, drop_reasons


def _labels():
    return pd.DataFrame(
        [  # reference rows: only WER decides
            dict(
                reference="a b",
                text="a b",
                wer=0.0,
                avg_logprob=-3.0,
                compression_ratio=9.0,
                no_speech_prob=0.9,
                error=None,
            ),
            dict(
                reference="a b",
                text="a c",
                wer=0.5,
                avg_logprob=-0.1,
                compression_ratio=1.0,
                no_speech_prob=0.0,
                error=None,
            ),
            # no reference: confidence decides
            dict(
                reference=None,
                text="ok",
                wer=None,
                avg_logprob=-0.2,
                compression_ratio=1.2,
                no_speech_prob=0.1,
                error=None,
            ),
            dict(
                reference=None,
                text="unsure",
                wer=None,
                avg_logprob=-1.5,
                compression_ratio=1.2,
                no_speech_prob=0.1,
                error=None,
            ),
            dict(
                reference=None,
                text="la la la",
                wer=None,
                avg_logprob=-0.2,
                compression_ratio=3.0,
                no_speech_prob=0.1,
                error=None,
            ),
            dict(
                reference="",
                text="hm",
                wer=None,
                avg_logprob=-0.2,
                compression_ratio=1.0,
                no_speech_prob=0.9,
                error=None,
            ),
            dict(
                reference=None,
                text=" ",
                wer=None,
                avg_logprob=-0.2,
                compression_ratio=1.0,
                no_speech_prob=0.1,
                error=None,
            ),
            dict(
                reference="x",
                text=None,
                wer=None,
                avg_logprob=None,
                compression_ratio=None,
                no_speech_prob=None,
                error="broken file",
            ),
        ]
    )


def test_each_row_dropped_for_its_first_reason():
    reasons = list(drop_reasons(_labels(), FilterOptions()))
    assert reasons == [
        "",
        "wer",
        "",
        "avg_logprob",
        "compression_ratio",
        "no_speech_prob",
        "empty",
        "failed",
    ]


def test_counts_and_kept_rows():
    kept, counts = apply_filters(_labels(), FilterOptions(max_wer=0.6))
    assert list(kept["text"]) == ["a b", "a c", "ok"]
    assert counts["failed"] == 1 and counts["wer"] == 0 and counts["empty"] == 1
    assert sum(counts.values()) + len(kept) == len(_labels())

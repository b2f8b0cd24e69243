"""Word timestamps: their error against known word boundaries, and what unknown heads cost."""

from __future__ import annotations

from sections.common import code, eval_command, eval_report, load, ms, pct, sources, table


def words() -> list[str]:
    report = eval_report("word_timing")
    rows = []
    for m in report["models"]:
        w = m["word_timing"]
        s, a = w["served"], w["alignment"]
        rows.append(
            [
                m["name"],
                f"{w['matched']} of {w['words']}",
                f"{ms(s['start_mae_s'])} / {ms(s['end_mae_s'])} / {ms(s['joined_mae_s'])}",
                f"{ms(a['start_mae_s'])} / {ms(a['end_mae_s'])} / {ms(a['joined_mae_s'])}",
                f"{w['rtf']:.3f}",
                pct(m["wer"]),
            ]
        )
    heads = load("word_heads.json")
    head_rows = [
        [
            name,
            f"{ms(v['served']['start_mae_s'])} / {ms(v['served']['end_mae_s'])} / "
            f"{ms(v['served']['joined_mae_s'])}",
            f"{ms(v['alignment']['start_mae_s'])} / {ms(v['alignment']['end_mae_s'])} / "
            f"{ms(v['alignment']['joined_mae_s'])}",
        ]
        for name, v in heads.items()
    ]
    return [
        "## Word timestamps (issue 19)",
        "",
        "Mean absolute error (ms) of word starts and ends against single-word TTS clips joined "
        'with known gaps (53 words, 36 s), words the model wrote as read only; "joined" is at '
        'boundaries with no gap; "alignment alone" is before the snap to speech '
        "(docs/protocol.md, Word timestamps). Targets: <= 80 ms for the teacher, <= 120 ms for "
        "the students. The WER column is the same eval on "
        f"{report['models'][0]['utterances']} synthetic test utterances.",
        "",
        *table(
            [
                "model",
                "words scored",
                "served start / end / joined",
                "alignment alone start / end / joined",
                "RTF with word times",
                "WER (synthetic)",
            ],
            ["---", "---:", "---:", "---:", "---:", "---:"],
            rows,
        ),
        "What unknown alignment heads cost (a student whose kept layers hold none of the "
        "teacher's heads uses every head of its upper half of layers):",
        "",
        *table(
            ["model, heads", "served start / end / joined", "alignment alone start / end / joined"],
            ["---", "---:", "---:"],
            head_rows,
        ),
        sources(
            "eval/word_timing/report.json",
            "word_heads.json",
            taken='2026-12-06, "Word timestamps" (word_timing rerun with whisper-causal '
            '2026-12-07, "An integer output layer")',
        )
        + " Re-measure:",
        "",
        *code(
            [
                eval_command(report),
                "python benchmarks/word_heads.py --out benchmarks/results/word_heads.json",
            ]
        ),
    ]

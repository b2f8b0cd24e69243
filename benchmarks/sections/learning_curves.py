"""Dev agreement while training, read from the committed runs' `metrics.jsonl`."""

from __future__ import annotations

import json
from pathlib import Path

from sections.common import RESULTS, code, pct, sources, table

# run -> (how it was trained, as written in the lab notebook)
RUNS = {
    "streaming_long": "audiodistill distill --config configs/distill/streaming_long.yaml",
    "streaming_long_sa": "audiodistill distill --config configs/distill/streaming_long.yaml "
    "streaming.spec_augment.freq_masks=2 streaming.spec_augment.time_masks_per_s=1.0 "
    "streaming.dropout=0.1 out=runs/distill/streaming_long_sa",
    "whisper_distil_long": "audiodistill distill --config configs/distill/whisper_distil_long.yaml",
    "whisper_causal": "audiodistill distill --config configs/distill/whisper_causal.yaml",
}


def dev_curve(run: Path) -> tuple[dict[int, tuple[float, float]], dict]:
    """step -> (dev score, training seconds up to it), and the last logged record.

    The same reading as benchmarks/learning_curve.py: the elapsed meter restarts after
    each checkpoint, and a resumed run logs a step twice (the last counts).
    """
    curve, wall, last_elapsed, last = {}, 0.0, 0.0, {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        elapsed = record.get("elapsed_s")
        if elapsed is not None:
            wall += elapsed - last_elapsed if elapsed >= last_elapsed else elapsed
            last_elapsed = elapsed
        if "loss" in record:
            last = {**record, "wall": wall}
        if "dev_score" in record:
            curve[int(record["step"])] = (float(record["dev_score"]), wall)
    return curve, last


def learning_curves() -> list[str]:
    curves, summary = {}, []
    for name in RUNS:
        curve, last = dev_curve(RESULTS / "runs" / name)
        curves[name] = curve
        best = min(curve, key=lambda s: (curve[s][0], s))
        final = max(curve)
        summary.append(
            [
                name,
                str(last["step"]),
                f"{last['loss']:.3g}",
                f"{pct(curve[final][0])} (step {final})",
                f"{pct(curve[best][0])} (step {best})",
                f"{last['wall'] / 60:.0f}",
            ]
        )
    lines = [
        "## Learning curves",
        "",
        "Dev agreement (21 dev recordings, greedy decoding) while training, from the runs' "
        "`metrics.jsonl`; every run was stopped or early-stopped where its last row says.",
        "",
    ]
    lines += table(
        [
            "run",
            "last logged step",
            "training loss there",
            "last dev agreement",
            "best dev agreement",
            "training minutes (`elapsed_s`)",
        ],
        ["---", "---:", "---:", "---:", "---:", "---:"],
        summary,
    )
    names = list(curves)
    streaming = [n for n in names if n.startswith("streaming")]
    steps = sorted({s for n in streaming for s in curves[n]})
    rows = []
    for step in steps:
        cells = [pct(curves[n][step][0]) if step in curves[n] else "" for n in streaming]
        first = curves[streaming[0]].get(step)
        rows.append([str(step), *cells, f"{first[1] / 60:.0f}" if first else ""])
    lines += table(
        ["step", *(f"dev, {n}" for n in streaming), f"minutes ({streaming[0]})"],
        ["---:"] * (len(streaming) + 2),
        rows,
    )
    for n in names:
        if n not in streaming:
            curve = curves[n]
            lines += [
                f"{n}, dev agreement at steps {', '.join(str(s) for s in sorted(curve))}: "
                + ", ".join(pct(curve[s][0]) for s in sorted(curve))
                + ".",
                "",
            ]
    lines += [
        sources(
            *(f"runs/{n}/metrics.jsonl" for n in names),
            taken='2026-12-06, "On real recordings" (whisper_causal: 2026-12-07, "whisper-causal")',
        )
        + " Each run directory also holds the options it ran with (`config.yaml`; the "
        "configs have changed since, e.g. the LM order). Trained by:",
        "",
        *code([RUNS[n] for n in names]),
        "The curve as a table and a PNG (`benchmarks/results/learning_curve_streaming_long.png`): "
        "`python benchmarks/learning_curve.py benchmarks/results/runs/streaming_long "
        "benchmarks/results/runs/streaming_long_sa --out "
        "benchmarks/results/learning_curve_streaming_long.png`.",
        "",
    ]
    return lines

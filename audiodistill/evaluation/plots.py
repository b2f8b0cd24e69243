"""PNG figures of an eval report: WER vs RTF, WER vs size, and the streaming latency CDF.

Every title names the data the figures were measured on (synthetic speech vs recordings), so
a figure copied out of its report still says what it shows. Drawn on the Agg canvas: no
display, no pyplot global state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

CDF_FILE = "streaming_latency_cdf.png"


def _figure(n_axes: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4 * n_axes, 4.8), layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.subplots(1, n_axes, squeeze=False)[0]


def _title(figure, what: str, data_label: str) -> None:
    figure.suptitle(f"{what}\ndata: {data_label}", fontsize=10)


def _scatter(models: list[dict], x_key: str, x_label: str, data_label: str, path: Path) -> Path:
    """One labelled point per model: WER against a cost."""
    figure, (ax,) = _figure()
    xs = [m[x_key] for m in models]
    wers = [m["wer"] * 100 for m in models]
    ax.scatter(xs, wers)
    for m, x, y in zip(models, xs, wers, strict=True):
        ax.annotate(m["name"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if min(xs) > 0 and max(xs) / min(xs) > 20:  # teacher and students differ by orders
        ax.set_xscale("log")
    ax.margins(0.2)  # room for the labels of the outermost points
    ax.set_xlabel(x_label)
    ax.set_ylabel("WER (%)")
    ax.grid(alpha=0.3)
    _title(figure, f"WER vs {x_label.split(' (')[0]}", data_label)
    figure.savefig(path, dpi=100)
    return path


def _latency_cdf(models: list[dict], data_label: str, path: Path) -> Path:
    """Cumulative share of chunk calls and of finals under each latency, a line per model."""
    figure, axes = _figure(2)
    panels = (
        ("chunk_latencies_s", "per-chunk latency (ms)"),
        ("final_latencies_s", "end of audio to final (ms)"),
    )
    for ax, (key, label) in zip(axes, panels, strict=True):
        for m in models:
            samples = np.sort(np.asarray(m[key]) * 1000)
            share = np.arange(1, len(samples) + 1) / len(samples)
            ax.step(samples, share, where="post", label=m["name"])
        ax.set_xlabel(label)
        ax.set_ylabel("share of calls")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    _title(figure, "Streaming latency CDF (one stream, 1 thread)", data_label)
    figure.savefig(path, dpi=100)
    return path


def write_plots(report: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """The figures of a report.json payload as PNG files under `out_dir`; their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    models, label = report["models"], report["data"]
    paths = [
        _scatter(models, "rtf", "RTF (s per audio s, one stream)", label, out / "wer_vs_rtf.png"),
        _scatter(models, "size_mb", "size on disk (MB)", label, out / "wer_vs_size.png"),
    ]
    streaming = [m for m in models if m.get("final_latencies_s")]
    (out / CDF_FILE).unlink(missing_ok=True)  # a previous run's streaming models are gone
    if streaming:
        paths.append(_latency_cdf(streaming, label, out / CDF_FILE))
    return paths

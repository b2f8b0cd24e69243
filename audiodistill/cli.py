"""The `audiodistill` command: parse, load the stage's options, dispatch. Nothing else here.

Every command takes `--config FILE.yaml` and dotted overrides, written `key.sub=value` or
`--key.sub value` (e.g. `--n 400`, `teacher.threads=2`). Unknown keys and wrong types are
rejected before any work starts, naming the field.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import re
import sys
import typing
from pathlib import Path

from audiodistill.config import ConfigError, load_config
from audiodistill.errors import UserError


def _synth(options) -> None:
    from audiodistill.data.synth.corpus import build_corpus

    utterances = build_corpus(options)
    print(f"wrote {len(utterances)} utterances to {options.out}/manifest.jsonl")


def _manifest(options) -> None:
    from audiodistill.data.manifest import split_manifest

    counts = split_manifest(options)
    print(f"wrote {options.out}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


def _pseudo_label(options) -> None:
    from pipelines.pseudo_label import run

    print(json.dumps(run(options), indent=2))


def _distill(options) -> None:
    from pipelines.distill import run

    print(json.dumps(run(options), indent=2))


def _eval(options) -> None:
    from pipelines.evaluate import run  # workers > 1: Ray; 1: a fresh process per model

    reports = run(options)
    print((Path(options.out) / "report.md").read_text())
    plots = " and plots/" if isinstance(reports, list) else ""  # codec reports have none
    print(f"wrote {options.out}/report.json, report.md{plots}")


def _results(options) -> None:
    from audiodistill.evaluation.results_page import run

    print(f"wrote {run(options)}")


def _export(options) -> None:
    from audiodistill.export.exporter import run

    print(json.dumps(run(options), indent=2))


def _bench(options) -> None:
    from audiodistill.evaluation.edge_bench import run, summary_line

    report = run(options)
    print(json.dumps(report, indent=2))
    print(summary_line(report))


def _quickstart(options) -> None:
    from pipelines.quickstart import run

    run(options)


def _convert_teacher(options) -> None:
    from audiodistill.teachers.convert import convert_ct2_whisper

    print(convert_ct2_whisper(options.ct2_dir, options.out))


def _train_codec_teacher(options) -> None:
    from audiodistill.codec.teacher_training import train

    model = train(options)
    print(f"wrote {model} (metrics in {options.out}/metrics.jsonl)")


def _serve(options) -> None:
    import time

    from serve.app import start

    url = start(options)
    ws = url.replace("http", "ws", 1)
    print(f"serving {', '.join(options.models)}: {url}/v1/audio/transcriptions, {ws}/v1/stream")
    while options.blocking:
        time.sleep(3600)  # Serve runs in Ray's processes; Ctrl-C ends it with this driver


def _transcribe(options) -> None:
    if not options.in_process:
        from audiodistill.online.client import run

        run(options)
        return
    from audiodistill.edge.transcribe import run  # no torch: runs on an [edge] install

    run(options)


def _options_class(command: str) -> type:
    """A command's options dataclass, imported only when that command runs (bench and
    transcribe run on an [edge] install: their modules import no torch)."""
    module, name = OPTIONS[command]
    return getattr(importlib.import_module(module), name)


COMMANDS = {
    "synth": (_synth, "build the embedded synthetic speech corpus"),
    "manifest": (_manifest, "list a corpus (e.g. a folder of recordings) with held-out splits"),
    "pseudo-label": (_pseudo_label, "label a corpus with a teacher on Ray (resumable)"),
    "distill": (_distill, "distill a student from pseudo-labels on Ray Train (resumable)"),
    "eval": (_eval, "score teacher and students on one manifest: WER, CER, RTF, size"),
    "results": (_results, "generate docs/results.md from eval report.json files"),
    "export": (_export, "export a student to ONNX (fp32, optionally int8)"),
    "bench": (_bench, "edge benchmark of one model: RTF, latency, memory, size"),
    "quickstart": (_quickstart, "the main job on embedded defaults: synth, label, report"),
    "convert-teacher": (_convert_teacher, "convert a CTranslate2 Whisper dir to transformers"),
    "train-codec-teacher": (_train_codec_teacher, "train the embedded codec teacher (EnCodec)"),
    "serve": (_serve, "serve models on Ray Serve: WebSocket streaming and OpenAI-style HTTP"),
    "transcribe": (_transcribe, "transcribe audio with an export here, or on a running server"),
}
# each command's options: (module, dataclass)
OPTIONS = {
    "synth": ("audiodistill.data.synth.corpus", "SynthOptions"),
    "manifest": ("audiodistill.data.manifest", "ManifestOptions"),
    "pseudo-label": ("audiodistill.teachers.shard_labelling", "PseudoLabelOptions"),
    "distill": ("audiodistill.training.distill_options", "DistillOptions"),
    "eval": ("audiodistill.evaluation.measurement", "EvalOptions"),
    "results": ("audiodistill.evaluation.results_page", "ResultsOptions"),
    "export": ("audiodistill.export.exporter", "ExportOptions"),
    "bench": ("audiodistill.evaluation.edge_bench", "BenchOptions"),
    "quickstart": ("pipelines.quickstart", "QuickstartOptions"),
    "convert-teacher": ("audiodistill.teachers.convert", "ConvertOptions"),
    "train-codec-teacher": ("audiodistill.codec.teacher_training", "CodecTeacherOptions"),
    "serve": ("serve.options", "ServeOptions"),
    "transcribe": ("audiodistill.online.client", "TranscribeOptions"),
}
DESCRIPTION = (
    "Distill large speech models into small ones on Ray: synthesize or list a corpus, "
    "pseudo-label it with a teacher, distill students, evaluate, export, serve. Every "
    "command takes --config FILE.yaml and key=value overrides."
)


# what a light (`audiodistill[edge]`) install lacks: a command that needs them says so
FULL_INSTALL_ONLY = {
    "torch",
    "torchaudio",
    "ray",
    "transformers",
    "ctranslate2",
    "faster_whisper",
    "fastapi",
    "pandas",
    "pyarrow",
    "librosa",
    "jiwer",
    "matplotlib",
    "onnx",
}


def _is_option(token: str) -> bool:
    """`--key ...` or `key.sub=value`: the start of the next option, not a value."""
    return token.startswith("--") or re.match(r"[A-Za-z_][\w.]*=", token) is not None


def overrides_from_args(extra: list[str]) -> list[str]:
    """`--a.b v`, `--a.b=v` and `a.b=v` all become `a.b=v`; a bare `--flag` is `flag=true`."""
    out, i = [], 0
    while i < len(extra):
        token = extra[i]
        if token.startswith("--"):
            key = token[2:].replace("-", "_")
            if "=" in key:
                out.append(key)
            elif i + 1 < len(extra) and not _is_option(extra[i + 1]):
                out.append(f"{key}={extra[i + 1]}")
                i += 1
            else:
                out.append(f"{key}=true")
        elif "=" in token:
            out.append(token)
        else:
            raise ConfigError(f"unexpected argument {token!r} (use key=value or --key value)")
        i += 1
    return out


SET = "set_"  # argparse dest prefix of the options `_declare_options` declares


def _declare_options(cmd: argparse.ArgumentParser, options_class: type) -> None:
    """Declare every option of a command that takes FILE arguments, so in `--model DIR FILE`
    DIR is read as the option's value and in `--int8 FILE` FILE is a file, not a value."""
    for name, hint in typing.get_type_hints(options_class).items():
        flags = dict.fromkeys([f"--{name.replace('_', '-')}", f"--{name}"])
        if hint is bool:
            cmd.add_argument(*flags, dest=SET + name, action="store_const", const="true")
        elif name != "files":
            cmd.add_argument(*flags, dest=SET + name, metavar=name.upper())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="audiodistill", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--config", help="YAML options file (overrides apply on top)")
        if name in ("eval", "serve"):
            cmd.add_argument("--model", action="append", help="a model (repeatable)")
        if name == "results":
            cmd.add_argument("--report", action="append", help="an eval report.json (repeatable)")
        if name == "transcribe":
            cmd.add_argument("files", nargs="+", metavar="FILE", help="audio; - is PCM on stdin")
            _declare_options(cmd, _options_class(name))
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "model", None):
        extra = [*extra, f"models={json.dumps(args.model)}"]  # JSON is a YAML list
    if getattr(args, "report", None):
        extra = [*extra, f"reports={json.dumps(args.report)}"]
    if getattr(args, "files", None):
        extra = [*extra, f"files={json.dumps(args.files)}"]
    declared = {k[len(SET) :]: v for k, v in vars(args).items() if k.startswith(SET)}
    extra += [f"{k}={v}" for k, v in declared.items() if v is not None]
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # a line per utterance
    try:
        options = load_config(_options_class(args.command), args.config, overrides_from_args(extra))
    except (ConfigError, OSError) as err:
        print(f"audiodistill {args.command}: config error: {err}", file=sys.stderr)
        return 2
    try:
        COMMANDS[args.command][0](options)
    except UserError as err:  # the user can fix it: one line; anything else is a bug
        print(f"audiodistill {args.command}: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:
        if err.name and err.name.split(".")[0] in FULL_INSTALL_ONLY:
            print(
                f"audiodistill {args.command}: needs the full install "
                f"(pip install 'audiodistill[all]'); missing module {err.name!r}",
                file=sys.stderr,
            )
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())

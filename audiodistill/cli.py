"""The `audiodistill` command: parse, load the stage's options, dispatch. Nothing else here.

Every command takes `--config FILE.yaml` and dotted overrides, written `key.sub=value` or
`--key.sub value` (e.g. `--n 400`, `teacher.threads=2`). Unknown keys and wrong types are
rejected before any work starts, naming the field.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from audiodistill.config import ConfigError, load_config


def _synth(options) -> None:
    from audiodistill.synth.corpus import build_corpus

    utterances = build_corpus(options)
    print(f"wrote {len(utterances)} utterances to {options.out}/manifest.jsonl")


def _pseudo_label(options) -> None:
    from pipelines.pseudo_label import run

    print(json.dumps(run(options), indent=2))


def _distill(options) -> None:
    from audiodistill.distill import DataError
    from pipelines.distill import run

    try:
        summary = run(options)
    except (ConfigError, DataError) as err:  # bad options or labels: nothing has started
        print(f"audiodistill distill: {err}", file=sys.stderr)
        raise SystemExit(2) from err
    print(json.dumps(summary, indent=2))


def _eval(options) -> None:
    from audiodistill.evaluation import run

    run(options)
    print((Path(options.out) / "report.md").read_text())
    print(f"wrote {options.out}/report.json and report.md")


def _quickstart(options) -> None:
    from pipelines.quickstart import run

    run(options)


def _convert_teacher(options) -> None:
    from audiodistill.teachers.convert import convert_ct2_whisper

    print(convert_ct2_whisper(options.ct2_dir, options.out))


def _options_class(command: str):
    """Each command's options dataclass, imported only when that command runs."""
    if command == "synth":
        from audiodistill.synth.corpus import SynthOptions

        return SynthOptions
    if command == "pseudo-label":
        from audiodistill.labelling import PseudoLabelOptions

        return PseudoLabelOptions
    if command == "distill":
        from audiodistill.distill import DistillOptions

        return DistillOptions
    if command == "eval":
        from audiodistill.evaluation import EvalOptions

        return EvalOptions
    if command == "quickstart":
        from pipelines.quickstart import QuickstartOptions

        return QuickstartOptions
    from audiodistill.teachers.convert import ConvertOptions

    return ConvertOptions


COMMANDS = {
    "synth": (_synth, "build the embedded synthetic speech corpus"),
    "pseudo-label": (_pseudo_label, "label a corpus with a teacher on Ray (resumable)"),
    "distill": (_distill, "distill a student from pseudo-labels on Ray Train (resumable)"),
    "eval": (_eval, "score teacher and students on one manifest: WER, CER, RTF, size"),
    "quickstart": (_quickstart, "the main job on embedded defaults: synth, label, report"),
    "convert-teacher": (_convert_teacher, "convert a CTranslate2 Whisper dir to transformers"),
}


def overrides_from_args(extra: list[str]) -> list[str]:
    """`--a.b v`, `--a.b=v` and `a.b=v` all become `a.b=v`."""
    out, i = [], 0
    while i < len(extra):
        token = extra[i]
        if token.startswith("--"):
            key = token[2:].replace("-", "_")
            if "=" in key:
                out.append(key)
            elif i + 1 < len(extra) and not extra[i + 1].startswith("--"):
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="audiodistill", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("--config", help="YAML options file (overrides apply on top)")
        if name == "eval":
            cmd.add_argument("--model", action="append", help="a model to score (repeatable)")
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "model", None):
        extra = [*extra, f"models={json.dumps(args.model)}"]  # JSON is a YAML list
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # a line per utterance
    try:
        options = load_config(_options_class(args.command), args.config, overrides_from_args(extra))
    except (ConfigError, OSError) as err:
        print(f"audiodistill {args.command}: config error: {err}", file=sys.stderr)
        return 2
    COMMANDS[args.command][0](options)
    return 0


if __name__ == "__main__":
    sys.exit(main())

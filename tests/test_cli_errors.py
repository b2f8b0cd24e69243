"""Every command refuses bad input with one line on stderr and exit status 2 (issue 21):
the user's mistakes are UserErrors, caught once in the CLI; bugs keep their traceback."""

import pytest

from audiodistill.cli import COMMANDS, OPTIONS, main

MISSING = "/nonexistent/audiodistill"


def _cases(tmp) -> dict[str, list[str]]:
    """One bad invocation per command: missing inputs, wrong kinds of model, bad values."""
    not_a_model = tmp / "not-a-model"
    not_a_model.mkdir(exist_ok=True)
    wav = tmp / "a.wav"
    wav.write_bytes(b"RIFF")
    return {
        "synth": ["n=many"],
        "manifest": [f"source={MISSING}", f"out={tmp}/m.jsonl"],
        "pseudo-label": [f"manifest={MISSING}.jsonl", f"out={tmp}/pl"],
        "distill": [f"data.labels={MISSING}", f"out={tmp}/d"],
        "eval": ["--model", "teacher:ct2", "--data", f"{MISSING}.jsonl", f"out={tmp}/e"],
        "results": ["--report", f"{MISSING}/report.json", f"out={tmp}/r.md"],
        "export": [f"model={not_a_model}", f"out={tmp}/x"],
        "bench": [f"model={not_a_model}", "backend=onnx"],
        "quickstart": ["synth.n=many"],
        "convert-teacher": [f"ct2_dir={MISSING}", f"out={tmp}/c"],
        "train-codec-teacher": [f"manifest={MISSING}.jsonl", f"out={tmp}/t"],
        "serve": ["limits.max_streams=0"],
        "transcribe": ["--model", str(not_a_model), str(wav)],
    }


def test_every_command_has_a_case_and_options():
    assert set(OPTIONS) == set(COMMANDS)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_bad_input_is_one_line_and_exit_2(command, tmp_path, capsys):
    assert main([command, *_cases(tmp_path)[command]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"audiodistill {command}: "), err
    assert "Traceback" not in err[0]


def test_a_bug_keeps_its_traceback(monkeypatch):
    def broken(options):
        raise KeyError("a bug, not a user error")

    monkeypatch.setitem(COMMANDS, "synth", (broken, "synth"))
    with pytest.raises(KeyError, match="a bug"):
        main(["synth"])

"""Every YAML under configs/ loads into its stage's options (unknown keys, wrong types fail)."""

from pathlib import Path

import pytest

from audiodistill.cli import COMMANDS
from audiodistill.cli import _options_class as options_class
from audiodistill.config import load_config

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _options_class(path: Path):
    """configs/<stage>/x.yaml (or configs/<stage>.yaml) holds options of command <stage>."""
    stage = (path.parent.name if path.parent != CONFIGS else path.stem).replace("_", "-")
    assert stage in COMMANDS, f"{path}: no command {stage!r} takes this config"
    return options_class(stage)


@pytest.mark.parametrize(
    "path", sorted(CONFIGS.rglob("*.yaml")), ids=lambda p: str(p.relative_to(CONFIGS))
)
def test_config_loads(path):
    options = load_config(_options_class(path), path)
    assert options is not None


def test_quickstart_trains_both_students_on_its_own_labels():
    from pipelines.quickstart import QuickstartOptions

    options = load_config(QuickstartOptions, CONFIGS / "quickstart.yaml")
    assert options.whisper_distil is not None and options.streaming is not None
    assert options.pseudo_label.teacher.backend == "hf"  # whisper-distil needs soft targets
    assert options.pseudo_label.manifest.startswith(options.synth.out)

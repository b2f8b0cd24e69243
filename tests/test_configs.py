"""Every YAML under configs/ loads into its stage's options (unknown keys, wrong types fail)."""

from pathlib import Path

import pytest

from audiodistill.config import load_config

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _options_class(path: Path):
    stage = path.parent.name if path.parent != CONFIGS else path.stem
    if stage == "synth":
        from audiodistill.synth.corpus import SynthOptions

        return SynthOptions
    if stage == "pseudo_label":
        from audiodistill.labelling import PseudoLabelOptions

        return PseudoLabelOptions
    if stage == "distill":
        from audiodistill.distill import DistillOptions

        return DistillOptions
    if stage == "quickstart":
        from pipelines.quickstart import QuickstartOptions

        return QuickstartOptions
    raise AssertionError(f"{path}: no options class known for configs/{stage}; add it here")


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

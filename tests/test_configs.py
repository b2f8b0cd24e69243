"""Every YAML under configs/ loads into its stage's options (unknown keys, wrong types fail)."""

from pathlib import Path

import pytest
import yaml

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
    if "applications" in yaml.safe_load(path.read_text()):
        return _check_ray_serve_config(path)
    options = load_config(_options_class(path), path)
    assert options is not None


def _check_ray_serve_config(path: Path) -> None:
    """A Ray Serve config file: valid for Ray, and each app's args are valid ServeOptions."""
    from ray.serve.schema import ServeDeploySchema

    from audiodistill.config import from_dict
    from serve.options import ServeOptions

    schema = ServeDeploySchema.model_validate(yaml.safe_load(path.read_text()))
    for app in schema.applications:
        assert app.import_path == "serve.app:app_builder"
        assert from_dict(ServeOptions, app.args).models


def test_quickstart_trains_both_students_on_its_own_labels():
    from pipelines.quickstart import QuickstartOptions

    options = load_config(QuickstartOptions, CONFIGS / "quickstart.yaml")
    assert options.whisper_distil is not None and options.streaming is not None
    assert options.pseudo_label.teacher.backend == "hf"  # whisper-distil needs soft targets
    assert options.pseudo_label.manifest.startswith(options.synth.out)

from dataclasses import dataclass, field
from typing import Literal

import pytest

from audiodistill.cli import overrides_from_args
from audiodistill.config import ConfigError, load_config, save_config


@dataclass(frozen=True)
class Inner:
    threads: int = 1
    backend: Literal["ct2", "hf"] = "ct2"


@dataclass(frozen=True)
class Outer:
    out: str = "x"
    rate: float = 0.5
    limit: int | None = None
    inner: Inner = field(default_factory=Inner)


def test_yaml_and_dotted_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("out: runs/a\ninner:\n  threads: 2\n")
    opts = load_config(Outer, path, ["inner.backend=hf", "rate=1", "limit=null"])
    assert opts == Outer(out="runs/a", rate=1.0, limit=None, inner=Inner(threads=2, backend="hf"))
    assert load_config(Outer, None, ["rate=1e-4"]).rate == 1e-4  # YAML 1.1 reads it as text


@pytest.mark.parametrize(
    "override, message",
    [
        ("inner.thread=2", "unknown key inner.thread"),
        ("inner.threads=two", "inner.threads must be int"),
        ("inner.backend=onnx", "inner.backend must be one of"),
        ("rate=true", "rate must be float"),
        ("rate=fast", "rate must be float"),
        ("inner=3", "inner: expected a mapping"),
        ("nonsense", "must look like key.sub=value"),
    ],
)
def test_bad_values_name_the_field(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(Outer, None, [override])


def test_saved_config_round_trips(tmp_path):
    opts = Outer(out="o", limit=3, inner=Inner(threads=4))
    save_config(opts, tmp_path / "config.yaml")
    assert load_config(Outer, tmp_path / "config.yaml") == opts


def test_cli_override_spellings():
    assert overrides_from_args(["--n", "400", "--a.b=3", "c.d=x", "--flag"]) == [
        "n=400",
        "a.b=3",
        "c.d=x",
        "flag=true",
    ]
    # a bare flag before a key=value override stays a flag; a URL is a value
    assert overrides_from_args(["--http", "model=m", "--url", "ws://h:1"]) == [
        "http=true",
        "model=m",
        "url=ws://h:1",
    ]

"""Student sizes against the published codecs' architectures: parameters and speed.

    python benchmarks/codec_sizes.py                  # encodec, dac, mimi; 2 clips of 4 s
    python benchmarks/codec_sizes.py --families mimi --clips 3 --seconds 6

No pretrained codec can be downloaded here, so this builds each family's published
architecture from its transformers config defaults (facebook/encodec_24khz,
descript/dac_16khz, kyutai/mimi) and each named student size (audiodistill/codec/families.py)
with random weights, and times encode+decode on 1 CPU thread in steady state, taking turns
(quality.roundtrip_rtfs, as `audiodistill eval` does). Parameters and speed depend on
the architecture, not on the weights; quality does, so none is reported here.
"""

from __future__ import annotations

import argparse
import os

from audiodistill.codec.quality import ONEDNN_CACHE

os.environ.setdefault(*ONEDNN_CACHE)  # before torch runs any convolution

import numpy as np  # noqa: E402
import torch  # noqa: E402

from audiodistill.codec import quality  # noqa: E402
from audiodistill.codec.families import FAMILIES  # noqa: E402
from audiodistill.data.audio import SAMPLE_RATE  # noqa: E402
from audiodistill.students.codec_student import CodecModel, without_weight_norm  # noqa: E402

# family -> (published checkpoint whose config the defaults are, config class name)
PUBLISHED = {
    "encodec": ("facebook/encodec_24khz", "EncodecConfig"),
    "dac": ("descript/dac_16khz", "DacConfig"),
    "mimi": ("kyutai/mimi", "MimiConfig"),
}


def build(family, config) -> CodecModel:
    torch.manual_seed(0)
    codec = without_weight_norm(family.model(config).eval())
    return CodecModel(codec, int(config.sampling_rate))


def compare(name: str, audios: list[np.ndarray]) -> list[str]:
    """Table rows: the published architecture, then each student size but `tiny`."""
    import transformers

    family = next(f for f in FAMILIES.values() if f.name == name)
    checkpoint, config_class = PUBLISHED[name]
    config = getattr(transformers, config_class)()
    sizes = [size for size in family.sizes if size != "tiny"]
    models = [build(family, config)]
    models += [build(family, family.student_config(config, size, None)) for size in sizes]
    rtfs = quality.roundtrip_rtfs([m.roundtrip for m in models], audios)
    teacher_params = quality.parameters(models[0].model)
    rows = []
    for label, model, rtf in zip([checkpoint, *sizes], models, rtfs, strict=True):
        params = quality.parameters(model.model)
        rows.append(
            f"| {name} | {label} | {params / 1e6:.1f}M | {params / teacher_params:.1%} "
            f"| {rtf:.3f} | {rtfs[0] / rtf:.2f}x |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=list(PUBLISHED), choices=PUBLISHED)
    parser.add_argument("--clips", type=int, default=2, help="clips of noise-like audio")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per clip")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    audios = [
        (0.1 * rng.standard_normal(int(args.seconds * SAMPLE_RATE))).astype(np.float32)
        for _ in range(args.clips)
    ]
    print(f"{args.clips} clips of {args.seconds:g} s, encode+decode on 1 thread, random weights")
    print("| family | model | parameters | of the published | RTF | speed-up |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in args.families:
        for row in compare(name, audios):
            print(row, flush=True)


if __name__ == "__main__":
    main()

"""Stage document: the dataset card and its Croissant metadata, inside the artifact.

data/fused/README.md is the dataset card (Hugging Face front matter, then what the release holds,
how it was made, the evidence, intended use and limitations, rebalance/registry/card.py);
data/fused/croissant.json describes the same files and records in Croissant 1.1 with its
Responsible-AI fields (rebalance/registry/croissant.py). Both go wherever data/fused goes
(`dvc get`, `dvc import`, `rebalance.open_release`), so a consumer always receives them. A release
adds its tag, remote and notes in releases/<tag>.md.
"""

from __future__ import annotations

from pathlib import Path

from rebalance import config
from rebalance.core import atomic, manifest, paths
from rebalance.core.errors import run_main
from rebalance.registry import card, croissant


def rai(build: card.Build) -> croissant.RAI:
    """The Responsible-AI texts of the Croissant metadata, from params and the build."""
    params, fused = build.params, build.fused
    text = params.release.card
    methods = sorted(set(fused.origin) - set(manifest.NOT_SYNTHETIC))
    share = card.synthetic_share(fused, params.dataset.classes)
    failed = [r["check"] for r in build.gate_rows if not r["ok"]]
    made = f"synthetic train images made by {', '.join(methods)} from train images only; " if methods else ""
    limits = [
        "Synthetic share of each class's train files: " + ", ".join(f"{c} {v:.0%}" for c, v in share.items()),
        "Val and test hold real images only.",
        *(f"Release gate check failing: {c}." for c in failed),
        *(v["sentence"].replace("**", "") for v in build.summary.get("verdict") or []),
    ]
    return croissant.RAI(
        data_collection=(
            f"Real images from the source `{params.raw.source}`, split by content (duplicates and "
            "groups kept in one split); "
            + made
            + ("horizontal flips of train images." if params.flip.enabled else "no flips.")
        ),
        data_collection_type=["Secondary Data analysis", *(["Software Collection"] if methods else [])],
        data_limitations=limits,
        data_biases=[
            "The class balance is made, not observed: minority classes are filled with synthetic images, "
            "which reproduce the features (and any bias) of the few real train images they derive from.",
            "Patient demographics are not recorded.",
        ],
        personal_sensitive_information=[text.personal_information],
        data_use_cases=[text.intended_use, "Out of scope: " + text.out_of_scope],
        has_synthetic_data=bool(methods),
        data_manipulation_protocol=(
            "Synthetic images and flips are made from train-split real images only; val and test hold "
            "real images only. Each record's `root` is the real image it derives from."
        ),
    )


def main() -> None:
    params = config.load()
    build = card.Build.read(Path("."), params)
    meta = croissant.croissant(
        paths.FUSED,
        build.fused,
        name=params.release.card.pretty_name or params.dataset.name,
        description=f"Balanced release of the image dataset {params.dataset.name}: real and synthetic.",
        license=params.release.card.license,
        url=params.release.card.url,
        version=None,
        citation=params.release.card.citation,
        classes=params.dataset.classes,
        rai=rai(build),
    )
    croissant.write(paths.CROISSANT, meta)
    atomic.write_text(paths.DATASET_CARD, card.dataset_card(build))
    print(f"document: {paths.DATASET_CARD} and {paths.CROISSANT} ({len(build.fused)} files described)")


if __name__ == "__main__":
    run_main(main)

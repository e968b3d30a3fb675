"""The release's Croissant metadata: MLCommons Croissant 1.1 with the Responsible-AI vocabulary.

`croissant` describes a release folder (data/fused) as a JSON-LD dict and `write` stores it, as
`croissant.json` beside `manifest.csv`. Every file is named by its path relative to that folder,
so the description holds wherever the folder is copied (Croissant readers such as mlcroissant
resolve relative `contentUrl`s and `includes` against the folder of the JSON file).

- distribution: `manifest.csv`, a `cr:FileObject` with its sha256; in the files format one
  `cr:FileSet` per split (`<split>/*/*.<ext>`); in the sharded format one `cr:FileObject` per
  tar with its sha256, and per split a `cr:FileSet` of the images inside its tars.
- recordSet `images`: a record per manifest row, every field a `manifest.csv` column. The label
  references the `classes` enumeration (the categorical), the split the `splits` one (`cr:Split`),
  the origin the `origins` one, which says which origins are synthesis methods. `root`, the real
  image a record derives from, is mapped to `prov:wasDerivedFrom` (`equivalentProperty`).
- dataset-level provenance (`prov:wasDerivedFrom` the source datasets, `prov:wasGeneratedBy` the
  rebalancing) and the `rai:` texts, with `rai:hasSyntheticData` checked against the manifest.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from rebalance.core import atomic, manifest
from rebalance.core.hashing import sha256_file
from rebalance.core.manifest import COLUMNS, FILENAME as MANIFEST, SHARD_COLUMNS
from rebalance.dataset.shards import extension, is_sharded

FILENAME = "croissant.json"
CROISSANT = "http://mlcommons.org/croissant/1.1"
CONFORMS_TO = [CROISSANT, "http://mlcommons.org/croissant/RAI/1.0"]
# The JSON-LD context of Croissant 1.1 (the spec's Appendix 1) plus the PROV-O prefix its
# provenance section asks to declare. schema.org as https://schema.org/, as mlcroissant and the
# published 1.1 datasets have it (mlcroissant rejects a document on http://schema.org/).
CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "sc": "https://schema.org/",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "dct": "http://purl.org/dc/terms/",
    "prov": "http://www.w3.org/ns/prov#",
    "annotation": "cr:annotation",
    "arrayShape": "cr:arrayShape",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "containedIn": "cr:containedIn",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "excludes": "cr:excludes",
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isArray": "cr:isArray",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "readLines": "cr:readLines",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sdVersion": "cr:sdVersion",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
    "unArchive": "cr:unArchive",
    "value": "cr:value",
}
MEDIA_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "bmp": "image/bmp",
    "webp": "image/webp",
    "dcm": "application/dicom",
}
SPLIT_URLS = {"train": "cr:TrainingSplit", "val": "cr:ValidationSplit", "test": "cr:TestSplit"}
SEMVER = re.compile(r"v?(\d+\.\d+\.\d+\S*)")


@dataclass(frozen=True)
class RAI:
    """The Responsible-AI texts of a release: the `rai:` properties (Croissant RAI 1.0, and
    `rai:hasSyntheticData`). Sequences are the properties of cardinality MANY; None or empty
    leaves a property out. `has_synthetic_data` None takes it from the manifest (an origin that
    is a synthesis method: neither real nor flip); a value the manifest contradicts is an error."""

    data_collection: str  # rai:dataCollection: how the source images were collected
    data_collection_type: Sequence[str]  # rai:dataCollectionType, e.g. "Secondary Data analysis"
    data_limitations: Sequence[str]  # rai:dataLimitations
    data_biases: Sequence[str]  # rai:dataBiases
    personal_sensitive_information: Sequence[str]  # rai:personalSensitiveInformation
    data_use_cases: Sequence[str]  # rai:dataUseCases
    has_synthetic_data: bool | None = None  # rai:hasSyntheticData
    data_collection_raw_data: str | None = None  # rai:dataCollectionRawData: the source dataset
    data_preprocessing_protocol: Sequence[str] = ()  # rai:dataPreprocessingProtocol
    data_manipulation_protocol: str | None = None  # rai:dataManipulationProtocol: flips, synthesis
    data_annotation_protocol: str | None = None  # rai:dataAnnotationProtocol: where labels come from
    data_social_impact: str | None = None  # rai:dataSocialImpact
    data_release_maintenance_plan: str | None = None  # rai:dataReleaseMaintenancePlan

    def jsonld(self, synthetic: bool) -> dict[str, Any]:
        """The `rai:` properties; `synthetic`: whether the manifest holds synthetic images."""
        if self.has_synthetic_data is not None and self.has_synthetic_data != synthetic:
            raise ValueError(
                f"rai.has_synthetic_data is {self.has_synthetic_data}, but the manifest "
                f"{'has' if synthetic else 'has no'} synthetic images"
            )
        values: dict[str, Any] = {
            "rai:dataCollection": self.data_collection,
            "rai:dataCollectionType": _many(self.data_collection_type),
            "rai:dataCollectionRawData": self.data_collection_raw_data,
            "rai:dataPreprocessingProtocol": _many(self.data_preprocessing_protocol),
            "rai:dataManipulationProtocol": self.data_manipulation_protocol,
            "rai:dataAnnotationProtocol": self.data_annotation_protocol,
            "rai:dataLimitations": _many(self.data_limitations),
            "rai:dataBiases": _many(self.data_biases),
            "rai:personalSensitiveInformation": _many(self.personal_sensitive_information),
            "rai:dataUseCases": _many(self.data_use_cases),
            "rai:dataSocialImpact": self.data_social_impact,
            "rai:dataReleaseMaintenancePlan": self.data_release_maintenance_plan,
            "rai:hasSyntheticData": synthetic,
        }
        return {k: v for k, v in values.items() if v is not None and v != "" and v != []}


def _many(values: Sequence[str] | str | None) -> list[str]:
    if values is None:
        return []
    return [values] if isinstance(values, str) else [v for v in values if v]


def _ref(id_: str) -> dict[str, str]:
    return {"@id": id_}


def _field(name: str, data_type: str | list[str], description: str, **extra: Any) -> dict[str, Any]:
    """A field of `images`: the manifest column `name`."""
    return {
        "@type": "cr:Field",
        "@id": f"images/{name}",
        "name": name,
        "description": description,
        "dataType": data_type,
        "source": {"fileObject": _ref(MANIFEST), "extract": {"column": name}},
        **extra,
    }


def _enum_field(record_set: str, name: str, data_type: str | list[str], description: str) -> dict[str, Any]:
    return {
        "@type": "cr:Field",
        "@id": f"{record_set}/{name}",
        "name": name,
        "description": description,
        "dataType": data_type,
    }


def _extensions(paths: pd.Series) -> list[str]:
    return sorted({Path(p).suffix.lstrip(".") for p in paths} - {""})


def _media_types(extensions: list[str]) -> str | list[str]:
    types = sorted({MEDIA_TYPES.get(e.lower(), "application/octet-stream") for e in extensions})
    return types[0] if len(types) == 1 else types


def _file_object(folder: Path, path: str, description: str, media_type: str) -> dict[str, Any]:
    return {
        "@type": "cr:FileObject",
        "@id": path,
        "name": path,
        "description": description,
        "contentUrl": path,
        "contentSize": f"{(folder / path).stat().st_size} B",
        "encodingFormat": media_type,
        "sha256": sha256_file(folder / path),
    }


def _splits(fused: pd.DataFrame) -> list[str]:
    unknown = sorted(set(fused.split) - set(SPLIT_URLS))
    if unknown:
        raise ValueError(f"splits {unknown} are none of {list(SPLIT_URLS)}")
    return [s for s in SPLIT_URLS if s in set(fused.split)]


def distribution(folder: Path, fused: pd.DataFrame) -> list[dict[str, Any]]:
    """manifest.csv, then the images: per split a FileSet of its files (files format), or its
    tars and a FileSet of the images inside them (sharded format). Hashes manifest.csv and the tars."""
    folder = Path(folder)
    out = [
        _file_object(
            folder,
            MANIFEST,
            "One row per image: where it is, its split, label, origin, derivation and sha256.",
            "text/csv",
        )
    ]
    sharded = is_sharded(fused)
    for split in _splits(fused):
        rows = fused[fused.split == split]
        extensions = _extensions(rows.path)
        name = f"{split}-images"
        file_set: dict[str, Any] = {"@type": "cr:FileSet", "@id": name, "name": name}
        if sharded:
            tars = sorted(set(rows.shard))
            out += [
                _file_object(
                    folder,
                    tar,
                    f"A WebDataset shard of the {split} split: per sample <key>.<ext>, the image's bytes, "
                    "and <key>.json, its manifest row.",
                    "application/x-tar",
                )
                for tar in tars
            ]
            file_set["description"] = f"The {split} images in the split's shards, as <key>.<ext>."
            file_set["containedIn"] = [_ref(t) for t in tars]
            file_set["includes"] = sorted({f"*.{extension(p)}" for p in rows.path})  # member names
        else:
            file_set["description"] = f"The {split} images, as {split}/<class>/<file>."
            file_set["includes"] = [f"{split}/*/*.{e}" for e in extensions]
        file_set["encodingFormat"] = _media_types(extensions)
        out.append(file_set)
    return out


def record_sets(fused: pd.DataFrame, classes: list[str]) -> list[dict[str, Any]]:
    """`images` (a record per manifest row), then the enumerations `classes`, `origins`, `splits`."""
    fields = [
        _field("path", "sc:Text", "The image file, relative to the release folder: <split>/<class>/<file>."),
        _field("split", "sc:Text", "train, val or test.", references={"field": _ref("splits/name")}),
        _field("label", ["sc:Text", "cr:Label"], "The class.", references={"field": _ref("classes/name")}),
        _field(
            "origin",
            "sc:Text",
            "real (a real image), flip (the horizontal flip of another image) or the name of the synthesis "
            "method that made the image (the origins whose synthetic is true).",
            references={"field": _ref("origins/name")},
        ),
        _field(
            "source",
            "sc:Text",
            "The image it was made from: a raw image by its path in the source dataset, a derived image "
            "by its path in the release; empty when made from noise.",
        ),
        _field(
            "root",
            "sc:Text",
            "What the image derives from (prov:wasDerivedFrom): the raw image by its path in the source "
            "dataset; for a real image the one it is a copy of, for a flip or a synthetic image the real "
            "training image at the start of its chain; empty when made from noise.",
            equivalentProperty="prov:wasDerivedFrom",
        ),
        _field("sha256", "sc:Text", "The sha256 of the image file's bytes (hex)."),
        _field("seed", "sc:Integer", "The random seed that made the image; empty for real images and flips."),
        _field(
            "cluster", "sc:Integer", "The source cluster used to spread synthesis; empty when not applicable."
        ),
        _field("detail", "sc:Text", "JSON: the method's parameters (checkpoint, steps, judge scores, ...)."),
    ]
    if is_sharded(fused):
        fields += [
            _field("shard", "sc:Text", "The tar holding the image, relative to the release folder."),
            _field("key", "sc:Text", "The sample's key in its tar: members <key>.<ext> and <key>.json."),
            _field("offset", "sc:Integer", "The byte offset of the image's bytes in the tar."),
            _field("size", "sc:Integer", "The size of the image in bytes."),
        ]
    origins = list(manifest.NOT_SYNTHETIC) + sorted(set(fused.origin) - set(manifest.NOT_SYNTHETIC))
    return [
        {
            "@type": "cr:RecordSet",
            "@id": "images",
            "name": "images",
            "description": "One record per image of the release (a manifest.csv row).",
            "key": _ref("images/path"),
            "field": fields,
        },
        {
            "@type": "cr:RecordSet",
            "@id": "classes",
            "name": "classes",
            "description": "The classes (the label's categories), in label order.",
            "dataType": "sc:Enumeration",
            "key": _ref("classes/name"),
            "field": [_enum_field("classes", "name", "sc:Text", "The class name.")],
            "data": [{"classes/name": c} for c in classes],
        },
        {
            "@type": "cr:RecordSet",
            "@id": "origins",
            "name": "origins",
            "description": (
                "Where an image comes from: real, flip (an augmentation of another image) or a synthesis "
                "method, which makes the image synthetic data."
            ),
            "dataType": "sc:Enumeration",
            "key": _ref("origins/name"),
            "field": [
                _enum_field("origins", "name", "sc:Text", "real, flip or the name of a synthesis method."),
                _enum_field("origins", "synthetic", "sc:Boolean", "Whether it is a synthesis method."),
            ],
            "data": [
                {"origins/name": o, "origins/synthetic": o not in manifest.NOT_SYNTHETIC} for o in origins
            ],
        },
        {
            "@type": "cr:RecordSet",
            "@id": "splits",
            "name": "splits",
            "description": "The data splits.",
            "dataType": "cr:Split",
            "key": _ref("splits/name"),
            "field": [
                _enum_field("splits", "name", "sc:Text", "The split's name in the manifest."),
                _enum_field("splits", "url", ["cr:Split", "sc:URL"], "The Croissant split it is."),
            ],
            "data": [{"splits/name": s, "splits/url": SPLIT_URLS[s]} for s in _splits(fused)],
        },
    ]


def _check(folder: Path, fused: pd.DataFrame, classes: list[str]) -> None:
    """The manifest frame agrees with manifest.csv, and `classes` covers its labels."""
    unknown = sorted(set(fused.label) - set(classes))
    if unknown:
        raise ValueError(f"labels {unknown} are not among the classes {classes}")
    with open(folder / MANIFEST, newline="", encoding="utf-8") as f:
        header = next(csv.reader(f), [])
        rows = sum(1 for _ in csv.reader(f))
    needed = COLUMNS + (SHARD_COLUMNS if is_sharded(fused) else [])
    missing = [c for c in needed if c not in header]
    if missing:
        raise ValueError(f"{folder / MANIFEST} lacks the columns {missing}")
    if rows != len(fused):
        raise ValueError(f"{folder / MANIFEST} has {rows} rows, the manifest given {len(fused)}")


def _version(version: str | None) -> str | None:
    """MAJOR.MINOR.PATCH (Croissant's versioning scheme): a release tag's `v` prefix dropped."""
    match = SEMVER.fullmatch(version) if version else None
    return match.group(1) if match else version


def croissant(
    folder: Path,
    fused: pd.DataFrame,
    *,
    name: str,
    description: str,
    license: str,
    url: str | None,
    version: str | None,
    citation: str | None,
    classes: list[str],
    rai: RAI,
    date_published: str | dt.date | None = None,
    creator: str | None = None,
    keywords: Sequence[str] = (),
    derived_from: Sequence[str] = (),
) -> dict[str, Any]:
    """The Croissant JSON-LD of the release at `folder` (data/fused), whose manifest (manifest.csv,
    read) is `fused`; hashes manifest.csv and, sharded, the tars.

    `license`: a URL, preferably SPDX (https://spdx.org/licenses/CC-BY-4.0.html); `version`:
    MAJOR.MINOR.PATCH (a leading `v` is dropped); `citation`: BibTeX or text (citeAs);
    `date_published`: ISO date; `creator`: an organisation's name; `derived_from`: IRIs of the
    source datasets (the dataset's prov:wasDerivedFrom). None leaves a property out."""
    folder = Path(folder)
    _check(folder, fused, classes)
    counts = fused.origin.value_counts()
    methods = sorted(set(counts.index) - set(manifest.NOT_SYNTHETIC))
    added = ", ".join(f"{counts[o]} {o}" for o in sorted(counts.index) if o != "real")
    activity = f"Rebalancing: {counts.get('real', 0)} real images" + (f"; added {added}" if added else "")
    if isinstance(date_published, dt.date):
        date_published = date_published.isoformat()
    metadata: dict[str, Any] = {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": CONFORMS_TO,
        "name": name,
        "description": description,
        "license": license,
        "url": url,
        "version": _version(version),
        "datePublished": date_published,
        "citeAs": citation,
        "creator": {"@type": "sc:Organization", "name": creator} if creator else None,
        "keywords": list(keywords) or None,
        "prov:wasDerivedFrom": [_ref(iri) for iri in derived_from] or None,
        "prov:wasGeneratedBy": {"@type": "prov:Activity", "prov:label": activity},
        **rai.jsonld(synthetic=bool(methods)),
        "distribution": distribution(folder, fused),
        "recordSet": record_sets(fused, classes),
    }
    return {k: v for k, v in metadata.items() if v is not None}


def write(path: str | Path, metadata: dict[str, Any]) -> None:
    """Store `metadata` as JSON at `path` (the release's `croissant.json`), atomically: a temporary
    file in the same folder, then a rename."""
    atomic.write_json(path, metadata)

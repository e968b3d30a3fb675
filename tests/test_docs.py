"""The documentation site (mkdocs.yml, docs/): its generated pages are current, the params reference
names every key of the schema, `mkdocs build --strict` passes (and fails on a broken link), and no
page speaks of how the project was built rather than of what it does."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from conftest import REPO
from pydantic import BaseModel

from rebalance import docsgen
from rebalance.config import Params


def _copy_site(dest: Path) -> None:
    """mkdocs.yml, docs/ and benchmarks/ (what the generator reads) into dest."""
    shutil.copy(REPO / "mkdocs.yml", dest / "mkdocs.yml")
    shutil.copytree(REPO / "docs", dest / "docs")
    shutil.copytree(REPO / "benchmarks", dest / "benchmarks", ignore=shutil.ignore_patterns("__pycache__"))


def test_the_generated_pages_are_current():
    assert docsgen.check(REPO) == [], "stale documentation: run `python -m rebalance.docsgen`"


def test_the_contract_copy_is_current():
    if not docsgen.contract_source(REPO).is_file():
        pytest.skip(f"{docsgen.contract_source(REPO)} is not beside the repository")
    page = REPO / docsgen.CONTRACT_PAGE
    assert page.read_text(encoding="utf-8") == docsgen.contract_page(REPO)


def test_a_stale_page_is_reported(tmp_path):
    _copy_site(tmp_path)
    assert docsgen.check(tmp_path) == []  # no ../shared beside tmp_path: the contract copy is kept as is
    params = tmp_path / docsgen.PARAMS_PAGE
    params.write_text(params.read_text().replace("`count.seed`", "`count.sead`", 1))
    assert docsgen.check(tmp_path) == [docsgen.PARAMS_PAGE.as_posix()]
    (tmp_path / docsgen.BENCHMARKS_PAGE).unlink()
    assert docsgen.check(tmp_path) == [docsgen.PARAMS_PAGE.as_posix(), docsgen.BENCHMARKS_PAGE.as_posix()]
    docsgen.write(tmp_path)
    assert docsgen.check(tmp_path) == []


def _models(annotation) -> list[type[BaseModel]]:
    args = typing.get_args(annotation)
    found = [a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
    return found + [m for a in args for m in _models(a) if m not in found]


def _schema_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted key whose value is not a group; a mapping of groups (train.variants) is a key,
    and its groups' keys are written `<mapping>.<name>.<key>`."""
    keys = []
    for name, field in model.model_fields.items():
        key = prefix + name
        inner = _models(field.annotation)
        if typing.get_origin(field.annotation) is dict:
            keys.append(key)
            keys += [k for m in inner for k in _schema_keys(m, key + ".<name>.")]
        elif inner:
            keys += [k for m in inner for k in _schema_keys(m, key + ".")]
        else:
            keys.append(key)
    return keys


def test_the_params_reference_names_every_key_of_the_schema():
    keys = _schema_keys(Params)
    assert len(keys) > 100 and "synthesize.diffusion.sd.model_dir" in keys and "train.variants" in keys
    page = (REPO / docsgen.PARAMS_PAGE).read_text(encoding="utf-8")
    missing = [k for k in keys if f"`{k}`" not in page]
    assert missing == []
    for group in Params.model_fields:
        assert f"\n## `{group}`" in page


def _mkdocs(cwd: Path, site: Path) -> subprocess.CompletedProcess:
    """`mkdocs build --strict`, without `-q`: mkdocs 1.6 counts only the warnings it logs, so a quiet
    build passes with broken links."""
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )


def test_the_site_builds_strictly(tmp_path):
    done = _mkdocs(REPO, tmp_path / "site")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    assert (tmp_path / "site" / "reference" / "params" / "index.html").is_file()


def test_a_broken_link_fails_the_strict_build(tmp_path):
    _copy_site(tmp_path)
    with open(tmp_path / "docs" / "index.md", "a", encoding="utf-8") as f:
        f.write("\nSee [a page that is not there](no-such-page.md).\n")
    done = _mkdocs(tmp_path, tmp_path / "site")
    assert done.returncode != 0
    assert "no-such-page.md" in done.stdout + done.stderr


# Words that speak of how the project was developed, not of what it does.
DEVELOPMENT_WORDS = re.compile(r"\b(sessions?|issues?|seed 00\d*|the bar|the guide)\b", re.IGNORECASE)


def test_no_page_speaks_of_how_the_project_was_built():
    pages = sorted((REPO / "docs").rglob("*.md"))
    assert len(pages) >= 13
    found = []
    for path in [REPO / "mkdocs.yml", *pages]:
        rel = path.relative_to(REPO / "docs").as_posix() if path.suffix == ".md" else path.name
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for m in DEVELOPMENT_WORDS.finditer(line):
                found.append(f"{rel}:{n}: {m.group(0)}")
    assert found == []

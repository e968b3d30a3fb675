"""The registry: release gates, data cards, tags, remotes, consumers, comparison.

Fast tests use the unbuilt `repo` fixture. The slow ones share one build per run (`builds`: main,
the tiny params; branch `next`, a grown source and a changed count.target.n; branch `reseed`, a new
test set), copied per test, and run the whole round trip against the default local-folder remote
and against S3 on moto.
Every DVC/git/CLI call runs with HOME set to a temporary folder, so the default remote
(`~/.cache/rebalance/dvc-remote`) is a fresh, private folder, as on a fresh machine.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import FEW_VARIANTS, TINY, commit_all, copy_built, run, set_params, shared_build

from rebalance import registry
from rebalance.core.errors import RebalanceError

NAME = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())["dataset"]["name"]
TAG1, TAG2 = f"{NAME}@v1.0.0", f"{NAME}@v1.1.0"
LENIENT = {"release": {"gate": {"min_metrics": {"balanced_accuracy": 0.0}, "max_imbalance": 3.0}}}
N1 = TINY["count"]["target"]["n"]
N2 = max(1, N1 - 4)  # lowering the target is always feasible (no class needs images it cannot get)
GROWN_SCALE = TINY["raw"]["demo"]["scale"] * 1.25  # the demo source with more images (the old ones kept)
# The later builds train fewer models (FEW_VARIANTS: what the release notes and compare read is all
# there) and make their images without a trained generator.
NO_MODEL = {"synthesize": {"methods": {"lesion_edit": 1.0}}, "generators": {}}
# Made at run time: this source file itself is committed in the registry copies.
KEY_ID, SECRET = f"local-key-{uuid.uuid4().hex}", f"local-secret-{uuid.uuid4().hex}"


def rebalance(args: list[str], cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    """The CLI as a user runs it, importing `stages` from `cwd` (the copy), as `dvc repro` does."""
    code = "import sys; sys.argv[0] = 'rebalance'; from rebalance.cli import main; main()"
    return run([sys.executable, "-c", code, *args], cwd, check=check, env=env)


def dvc(args: list[str], cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], cwd, check=check, env=env)


def home_env(tmp: Path) -> dict:
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    return {
        "HOME": str(home),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }


def verify_fused(folder: Path) -> pd.DataFrame:
    """Every file of a copy of data/fused matches its manifest sha256, and nothing else is there
    but the listing, the dataset card and the Croissant metadata (and git's ignore file of DVC's
    outputs); the card's front matter has the dataset-card metadata."""
    df = pd.read_csv(folder / "manifest.csv", dtype=str, keep_default_na=False)
    for path, sha in zip(df.path, df.sha256):
        assert hashlib.sha256((folder / path).read_bytes()).hexdigest() == sha, path
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert files - {".gitignore"} == set(df.path) | {"manifest.csv", "README.md", "croissant.json"}
    front = yaml.safe_load((folder / "README.md").read_text().split("---\n")[1])
    assert front["license"] and front["task_categories"] == ["image-classification"]
    assert "machine-generated" in front["annotations_creators"]
    return df


def croissant_records_are_the_manifest(folder: Path) -> None:
    """mlcroissant validates the release's croissant.json and loads records whose paths, labels
    and checksums are the manifest's (read here with pandas)."""
    mlc = pytest.importorskip("mlcroissant")
    expected = pd.read_csv(folder / "manifest.csv", dtype=str, keep_default_na=False)
    dataset = mlc.Dataset(jsonld=folder / "croissant.json")

    def text(v) -> str:
        return v.decode() if isinstance(v, bytes) else str(v)

    got = {
        text(r["images/path"]): (text(r["images/label"]), text(r["images/sha256"]))
        for r in dataset.records("images")
    }
    assert got == {p: (label, sha) for p, label, sha in zip(expected.path, expected.label, expected.sha256)}
    meta = json.loads((folder / "croissant.json").read_text())
    assert meta["rai:hasSyntheticData"] is True and meta["rai:dataLimitations"]


def tags(repo: Path) -> list[str]:
    return run(["git", "tag", "--list"], repo).stdout.split()


# --------------------------------------------------------------------------- fast


def test_versions_tags_and_secrets():
    assert registry.parse_version("v1.2.3") == "1.2.3"
    assert registry.tag_name("acne04-demo", "1.0.0") == "acne04-demo@v1.0.0"
    for bad in ("1.0", "1.0.0.0", "01.0.0", "1.0.0-rc1", "latest"):
        with pytest.raises(RebalanceError, match="not semver"):
            registry.parse_version(bad)
    with pytest.raises(RebalanceError, match="cannot name a release"):
        registry.tag_name("Acne 04", "1.0.0")
    assert registry.TAG_RE.match(TAG1)["version"] == "1.0.0"
    config = {
        "remote": {
            "s3": {"url": "s3://b/p", "endpointurl": "http://h", "secret_access_key": "x"},
            "web": {"url": "https://user:pw@example.com/store"},
            "ok": {"url": "/srv/r"},
        }
    }
    assert registry.tracked_secrets(config) == ["s3.secret_access_key", "web.url"]
    assert registry.safe_url("https://user:pw@example.com:8443/s") == "https://user@example.com:8443/s"


def test_release_refusals_before_any_build(repo: Path):
    def refused(version: str, match: str):
        with pytest.raises(RebalanceError, match=match):
            registry.release(version, root=repo, echo=lambda _: None)

    refused("1.0", "not semver")
    run(["git", "tag", "-a", TAG1, "-m", "x"], repo)
    refused("1.0.0", "already exists")
    (repo / "stray.txt").write_text("x")
    refused("1.1.0", "dirty")
    (repo / "stray.txt").unlink()
    refused("1.1.0", "pipeline not up to date")
    assert tags(repo) == [TAG1]


def test_default_remote_is_a_local_folder_outside_the_repo():
    config = (Path(__file__).resolve().parents[1] / ".dvc" / "config").read_text()
    assert "remote = local" in config and "url = ~/.cache/rebalance/dvc-remote" in config
    assert not registry.tracked_secrets({"remote": {"local": {"url": "~/.cache/rebalance/dvc-remote"}}})


def test_cli_help_and_one_line_errors(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from click.testing import CliRunner

    from rebalance.cli import main

    monkeypatch.chdir(repo)
    runner = CliRunner()
    for cmd in ("release", "releases", "compare"):
        assert "Usage" in runner.invoke(main, [cmd, "--help"]).output
    assert "no releases yet" in runner.invoke(main, ["releases"]).output
    result = runner.invoke(main, ["compare", "nope", "HEAD"])
    assert result.exit_code == 1 and "unknown revision 'nope'" in result.stderr
    proc = rebalance(["release", "1.0"], repo, home_env(tmp_path), check=False)
    assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0 and "semver" in proc.stderr


# --------------------------------------------------------------------------- slow: one build


def keep_test_set_of(repo: Path, tag: str) -> None:
    """releases/test_set.json as `rebalance release` writes it after releasing `tag` (the branches
    below are built after that release, so a merge brings no change to it)."""
    from rebalance.core import atomic, paths
    from rebalance.registry import testset

    atomic.write_json(repo / paths.FROZEN_TEST_SET, testset.frozen_record(repo, tag))


@pytest.fixture(scope="session")
def builds(built_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """main = the shared tiny build (lenient gate: the stages read only release.gate and .card, and
    this build's card says so), built after v1.0.0 of main was released: branch `next` = the source
    grown by GROWN new images and count.target.n lowered, branch `reseed` = a new test set drawn
    with another split seed, fused as shards. Made once per run (tests/test_open_release.py uses it
    too); copy it to change it."""

    def make(repo: Path) -> None:
        copy_built(built_repo, repo)
        set_params(repo, LENIENT)
        run([sys.executable, "-m", "dvc", "repro"], repo)  # only stage document: the gate it reports
        commit_all(repo, "build 1")
        run(["git", "checkout", "-q", "-b", "next"], repo)
        keep_test_set_of(repo, TAG1)
        set_params(
            repo, {"count": {"target": {"n": N2}}, "raw": {"demo": {"scale": GROWN_SCALE}}, **NO_MODEL}
        )
        set_params(repo, {"train": {"variants": FEW_VARIANTS}})
        run([sys.executable, "-m", "dvc", "repro"], repo)
        commit_all(repo, "build 2: a grown source, a lower count.target.n")
        run(["git", "checkout", "-q", "main"], repo)
        run([sys.executable, "-m", "dvc", "checkout", "-q"], repo)
        run(["git", "checkout", "-q", "-b", "reseed"], repo)  # a new test set, drawn with another seed
        keep_test_set_of(repo, TAG1)
        set_params(repo, {"count": {"seed": 7, "new_test_set": True}, **NO_MODEL})
        set_params(
            repo, {"train": {"variants": FEW_VARIANTS}, "fuse": {"format": "shards", "shard_mb": 0.05}}
        )
        run([sys.executable, "-m", "dvc", "repro"], repo)
        commit_all(repo, "build 3: count.seed 7, shards")
        run(["git", "checkout", "-q", "main"], repo)
        run([sys.executable, "-m", "dvc", "checkout", "-q"], repo)

    return {"repo": shared_build(tmp_path_factory, "registry", make)}


def registry_copy(builds: dict, dst: Path) -> Path:
    src = builds["repo"]
    shutil.copytree(
        src, dst, symlinks=True, ignore=lambda d, names: ["tmp"] if Path(d) == src / ".dvc" else []
    )
    return dst


def next_build(reg: Path, env: dict) -> None:
    """What a maintainer does between releases: bring in the pipeline rebuilt on the grown source
    (stage scan lists the source again on this machine; nothing else re-runs)."""
    run(["git", "merge", "-q", "--no-edit", "next"], reg, env=env)
    dvc(["checkout", "-q"], reg, env)
    ran = dvc(["repro"], reg, env).stdout
    assert "Running stage 'scan'" in ran and ran.count("Running stage") == 1, ran
    assert json.loads(dvc(["status", "--json"], reg, env).stdout) == {"scan": ["always changed"]}


@pytest.mark.slow
def test_gate_dry_run_and_tracked_credentials(builds: dict, tmp_path: Path):
    reg, env = registry_copy(builds, tmp_path / "reg"), home_env(tmp_path)
    head = run(["git", "rev-parse", "HEAD"], reg).stdout

    card = rebalance(["release", "1.0.0", "--dry-run"], reg, env).stdout
    for needle in (
        "| class ",
        "to generate",
        "| split ",
        "max:min",
        "## Methods",
        "balanced_accuracy",
        "## Provenance",
        "| origin ",
        "## Release gate",
        "### Verdict",
        "## Synthetic images kept",
        "(`release.gate.synthetic: null`)",  # a gate switched off is said, not hidden
        "ImageOps.exif_transpose",  # how to read the real photos the release ships byte for byte
    ):
        assert needle in card
    assert card.index("## Evidence") < card.index("## Methods")  # the generated verdict leads
    assert tags(reg) == [] and run(["git", "rev-parse", "HEAD"], reg).stdout == head
    assert not (tmp_path / "home" / ".cache" / "rebalance").exists()  # dry run pushes nothing

    set_params(reg, {"release": {"gate": {"min_metrics": {"balanced_accuracy": 1.01}}}})
    dvc(["repro", "-q"], reg, env)  # stage document only: the artifact's card reports the gate
    commit_all(reg, "impossible gate")
    proc = rebalance(["release", "1.0.0"], reg, env, check=False)
    assert proc.returncode == 1 and "release gate failed: balanced_accuracy >= 1.01" in proc.stderr
    proc = rebalance(["release", "1.0.0", "--dry-run"], reg, env, check=False)
    assert proc.returncode == 1 and "| balanced_accuracy >= 1.01 |" in proc.stdout and "FAIL" in proc.stdout
    run(["git", "revert", "--no-edit", "HEAD"], reg, env=env)

    with open(reg / ".dvc" / "config", "a") as f:  # a credential in the tracked config: refused
        f.write("['remote \"leaky\"']\n    url = s3://bucket/path\n    secret_access_key = hunter2\n")
    commit_all(reg, "oops, a credential")
    proc = rebalance(["release", "1.0.0"], reg, env, check=False)
    assert proc.returncode == 1
    assert "credentials in tracked .dvc/config (leaky.secret_access_key)" in proc.stderr
    assert tags(reg) == []


@pytest.mark.slow
def test_test_set_is_frozen_across_releases(builds: dict, tmp_path: Path):
    reg, env = registry_copy(builds, tmp_path / "reg"), home_env(tmp_path)
    rebalance(["release", "1.0.0"], reg, env)
    assert "## Test set" in (reg / "releases" / f"{TAG1}.md").read_text()
    run(["git", "merge", "-q", "--no-edit", "-X", "theirs", "reseed"], reg, env=env)
    dvc(["checkout", "-q"], reg, env)
    proc = rebalance(["release", "1.1.0"], reg, env, check=False)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert f"the test set changed since {TAG1}" in proc.stderr and "--new-test-set" in proc.stderr
    assert tags(reg) == [TAG1]
    rebalance(["release", "1.1.0", "--new-test-set"], reg, env)
    card = (reg / "releases" / f"{TAG2}.md").read_text()
    assert "a NEW test set" in card and TAG1 in card

    cmp = json.loads(rebalance(["compare", TAG1, TAG2, "--format", "json"], reg, env).stdout)
    assert cmp["test_set"]["same"] is False and cmp["test_set"]["metric_deltas"] is False
    assert cmp["test_set"]["only_a"] > 0 and cmp["test_set"]["shared"] >= 0
    assert cmp["metrics"] and all(r["delta"] is None for r in cmp["metrics"] + cmp["variants"])
    md = rebalance(["compare", TAG1, TAG2], reg, env).stdout
    assert "**Different test sets**" in md and "withheld" in md
    cmp = json.loads(
        rebalance(["compare", TAG1, TAG2, "--allow-different-test-sets", "--format", "json"], reg, env).stdout
    )
    assert any(r["delta"] is not None for r in cmp["metrics"])


def round_trip(reg: Path, tmp: Path, env: dict, consumer_env: dict | None = None) -> None:
    """Release v1.0.0, rebuild, v1.1.0; then every consumer of the README against the remote."""
    registry_env, env = env, consumer_env or env
    rebalance(["release", "1.0.0", "-m", "first release"], reg, registry_env)
    assert (reg / "releases" / f"{TAG1}.md").is_file()
    assert run(["git", "cat-file", "-t", TAG1], reg).stdout.strip() == "tag"  # annotated
    assert rebalance(["release", "1.0.0"], reg, registry_env, check=False).returncode == 1  # immutable
    next_build(reg, registry_env)
    rebalance(["release", "v1.1.0"], reg, registry_env)  # a grown source keeps the released test set
    assert set(tags(reg)) == {TAG1, TAG2}
    assert run(["git", "status", "--porcelain"], reg).stdout == ""
    notes = (reg / "releases" / f"{TAG2}.md").read_text()
    assert f"## Changes since {TAG1}" in notes and "real images added" in notes and "count.target.n" in notes
    assert f"the same test set as {TAG1}" in notes

    listed = json.loads(rebalance(["releases", "--format", "json"], reg, env).stdout)
    assert [r["tag"] for r in listed] == [TAG1, TAG2]
    assert all(isinstance(r["balanced_accuracy"], float) and r["annotated"] for r in listed)

    # Consumers see only git (a bare clone: no DVC cache) and the remote.
    origin = tmp / "registry.git"
    run(["git", "clone", "-q", "--bare", str(reg), str(origin)], tmp, env=env)

    clone = tmp / "clone"  # 1. clone + checkout + pull
    run(["git", "clone", "-q", str(origin), str(clone)], tmp, env=env)
    run(["git", "checkout", "-q", TAG1], clone, env=env)
    dvc(["pull", "-q"], clone, env)
    v1 = verify_fused(clone / "data" / "fused")

    dvc(["get", str(origin), "data/fused", "--rev", TAG2, "-o", str(tmp / "got")], tmp, env)  # 2. get
    v2 = verify_fused(tmp / "got")
    assert len(v2) != len(v1)
    croissant_records_are_the_manifest(tmp / "got")
    real1, real2 = v1[v1.origin == "real"], v2[v2.origin == "real"]
    new = real2[~real2.source.isin(set(real1.source))]
    assert len(new) > 0 and set(new.split) <= {"train", "val"}  # no new image entered the test set
    assert sorted(real2[real2.split == "test"].sha256) == sorted(real1[real1.split == "test"].sha256)
    dvc(["artifacts", "get", str(origin), NAME, "--rev", "v1.0.0", "-o", str(tmp / "art")], tmp, env)
    assert verify_fused(tmp / "art").sha256.tolist() == v1.sha256.tolist()

    consumer = tmp / "consumer"  # 3. import, then update to the newer release
    consumer.mkdir()
    run(["git", "init", "-q"], consumer, env=env)
    dvc(["init", "-q"], consumer, env)
    dvc(["import", "-q", str(origin), "data/fused", "--rev", TAG1, "-o", "fused"], consumer, env)
    assert verify_fused(consumer / "fused").sha256.tolist() == v1.sha256.tolist()
    assert yaml.safe_load((consumer / "fused.dvc").read_text())["deps"][0]["repo"]["rev"] == TAG1
    dvc(["update", "-q", "--rev", TAG2, "fused.dvc"], consumer, env)
    assert verify_fused(consumer / "fused").sha256.tolist() == v2.sha256.tolist()

    diff = json.loads(dvc(["metrics", "diff", TAG1, TAG2, "--json"], clone, env).stdout)  # 4. diff
    assert any(k.startswith("target.") for k in diff["metrics/counts.json"])
    plots = json.loads(dvc(["plots", "diff", TAG1, TAG2, "--json", "--split"], clone, env).stdout)["data"]
    both = [f"metrics/plots/confusion/{name}.csv" for name in ("real", "balanced")]  # trained by both
    confusion = [p for k in both for p in plots[k]]
    assert confusion and all(sorted(p["revisions"]) == [TAG1, TAG2] for p in confusion)  # side by side

    cmp = json.loads(rebalance(["compare", TAG1, TAG2, "--format", "json"], reg, env).stdout)
    counts = {r["key"]: r for r in cmp["counts"]}
    minority = [k for k, r in counts.items() if k.startswith("target.") and r["delta"]]
    # the lowered target shows in the minority classes (the grown source may raise the others')
    assert minority and any(counts[k]["delta"] == N2 - N1 for k in minority)
    assert {"key": "count.target.n", "a": N1, "b": N2, "delta": N2 - N1} in cmp["params"]
    assert {r["key"] for r in cmp["metrics"]} >= {"accuracy", "balanced_accuracy", "macro_f1"}
    assert all(r["delta"] == pytest.approx(r["b"] - r["a"], abs=1e-6) for r in cmp["metrics"])
    assert any(r["key"].endswith(".recall") for r in cmp["per_class"]) and cmp["variants"]
    assert cmp["test_set"]["same"] and cmp["test_set"]["metric_deltas"]  # count.target.n kept the split
    md = rebalance(["compare", TAG1, TAG2], reg, env).stdout
    assert "Same test set in both" in md and "## Files (release notes)" in md and "real images added" in md
    assert "| target." in md and "| count.target.n | " in md and "| balanced_accuracy |" in md


@pytest.mark.slow
def test_round_trip_local_folder_remote(builds: dict, tmp_path: Path):
    reg, env = registry_copy(builds, tmp_path / "reg"), home_env(tmp_path)
    round_trip(reg, tmp_path, env)
    assert (tmp_path / "home" / ".cache" / "rebalance" / "dvc-remote" / "files" / "md5").is_dir()
    assert (tmp_path / "home" / ".cache" / "rebalance" / "dvc-remote" / "runs").is_dir()  # run cache


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def moto_s3(tmp_path: Path):
    """A real S3 protocol server on 127.0.0.1 (moto), with a bucket; stopped at the end."""
    pytest.importorskip("moto.server")
    import boto3
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    creds = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket="registry")
    state = {"server": server, "endpoint": endpoint, "env": creds, "running": True}
    yield state
    if state["running"]:
        server.stop()


@pytest.mark.slow
def test_round_trip_s3_on_moto(builds: dict, tmp_path: Path, moto_s3: dict):
    reg = registry_copy(builds, tmp_path / "reg")
    # The registry's credentials come from .dvc/config.local only, the consumers' from the environment.
    env = home_env(tmp_path) | {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    # The README's S3 set-up, verbatim: location in .dvc/config, credentials never tracked.
    dvc(["remote", "add", "-d", "s3", "s3://registry/acne"], reg, env)
    dvc(["remote", "modify", "s3", "endpointurl", moto_s3["endpoint"]], reg, env)
    dvc(["remote", "modify", "s3", "region", "us-east-1"], reg, env)
    dvc(["remote", "modify", "--local", "s3", "access_key_id", KEY_ID], reg, env)
    dvc(["remote", "modify", "--local", "s3", "secret_access_key", SECRET], reg, env)
    commit_all(reg, "remote: S3")
    # config.local wins for the registry; moto accepts any secret, consumers use the environment
    assert SECRET not in (reg / ".dvc" / "config").read_text()

    round_trip(reg, tmp_path, env, consumer_env=home_env(tmp_path) | moto_s3["env"])
    assert not (tmp_path / "home" / ".cache" / "rebalance").exists()  # nothing went to the folder

    history = run(["git", "log", "--all", "-p", "--format=%H"], reg).stdout
    assert SECRET not in history
    assert KEY_ID not in history
    assert SECRET not in run(["git", "grep", "-I", "-e", SECRET, "--", "."], reg, check=False).stdout

    # A push that fails leaves no commit and no tag.
    moto_s3["server"].stop()
    moto_s3["running"] = False
    head = run(["git", "rev-parse", "HEAD"], reg).stdout
    proc = rebalance(["release", "1.2.0"], reg, env | {"AWS_MAX_ATTEMPTS": "1"}, check=False)
    assert proc.returncode == 1, proc.stdout
    assert "push to DVC remote 's3' failed" in proc.stderr and "no tag" in proc.stderr
    assert proc.stderr.startswith("error: push") and "failed to transfer" not in proc.stderr, proc.stderr
    assert set(tags(reg)) == {TAG1, TAG2}
    assert run(["git", "rev-parse", "HEAD"], reg).stdout == head
    assert not (reg / "releases" / f"{NAME}@v1.2.0.md").exists()
    assert run(["git", "status", "--porcelain"], reg).stdout == ""

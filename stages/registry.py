"""The registry: gated releases with data cards, the list of releases, comparison of two revisions.

A release is an annotated git tag `<dataset.name>@vX.Y.Z` (the GTO format; `dataset.name` is also
the name of the `data/fused` artifact in dvc.yaml) on a commit whose data is in the DVC remote.
Order of `release`: every check first, then push (data and run cache) and verify the remote,
then commit the data card, then tag. A failed push therefore leaves neither commit nor tag.

Everything here reads revisions through git and DVC's Python API; nothing pulls data.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import subprocess
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from stages import manifest, params as params_mod, plan
from stages.errors import RebalanceError

NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-/]*[a-z0-9])?$")  # GTO artifact names
VERSION_RE = re.compile(r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
TAG_RE = re.compile(r"^(?P<name>[a-z0-9]([a-z0-9-/]*[a-z0-9])?)@v(?P<version>\d+\.\d+\.\d+)$")

COUNTS = "metrics/counts.json"
EVAL = "metrics/eval.json"
FUSED_COUNTS = "metrics/fused.json"
SUMMARY = "metrics/summary.json"
SUMMARY_MD = "metrics/summary.md"
REQUIRED_METRICS = (COUNTS, EVAL)
FUSED = "data/fused"
CARDS = "releases"
HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1")
# Remote options that hold secrets; they belong in the environment or .dvc/config.local.
SECRET_KEYS = {
    "access_key_id",
    "secret_access_key",
    "session_token",
    "password",
    "account_key",
    "sas_token",
    "connection_string",
    "client_secret",
    "gdrive_client_secret",
    "token",
    "key_secret",
    "key_id",
    "passphrase",
    "oss_key_secret",
    "oss_key_id",
}


# --------------------------------------------------------------------------- small helpers


def _one_line(err: BaseException | str, limit: int = 240) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _git(root: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RebalanceError(f"git {args[0]} failed: {_one_line(proc.stderr or proc.stdout)}")
    return proc.stdout


def _open_repo(root: Path):
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        return Repo(str(root))
    except NotDvcRepoError:
        raise RebalanceError(f"{root}: not a DVC repository; run from the registry's root") from None


def md_table(header: list[str], rows: list[list[Any]]) -> str:
    """A GitHub markdown table (numbers right as given; floats to 3 decimals)."""

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3f}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def parse_version(version: str) -> str:
    """`1.2.3` or `v1.2.3` -> `1.2.3`; anything else is refused."""
    if not VERSION_RE.match(version):
        raise RebalanceError(f"version {version!r} is not semver MAJOR.MINOR.PATCH (e.g. 1.0.0)")
    return version.lstrip("v")


def tag_name(name: str, version: str) -> str:
    """The CONTRACT's release tag: `<dataset.name>@vX.Y.Z`."""
    if not NAME_RE.match(name):
        raise RebalanceError(
            f"dataset.name {name!r} cannot name a release: use lowercase letters, digits and dashes"
        )
    return f"{name}@v{parse_version(version)}"


def safe_url(url: str) -> str:
    """A remote URL without any password in it."""
    parts = urlsplit(str(url))
    if parts.password is None:
        return str(url)
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


# --------------------------------------------------------------------------- checks


def check_tag_free(root: Path, tag: str) -> None:
    if _git(root, "tag", "--list", tag).strip():
        raise RebalanceError(f"tag {tag} already exists; releases are immutable, pick a new version")


def check_clean(root: Path) -> None:
    dirty = _git(root, "status", "--porcelain", "--untracked-files=normal").splitlines()
    if dirty:
        raise RebalanceError(
            f"git tree is dirty ({len(dirty)} path(s), first: {dirty[0][3:]}); commit or stash first"
        )


def tracked_secrets(repo_config: dict[str, Any]) -> list[str]:
    """`remote.option` names in the repository's tracked config that hold credentials."""
    found = []
    for name, opts in (repo_config.get("remote") or {}).items():
        for key, value in opts.items():
            if value in (None, "", False):
                continue
            if key in SECRET_KEYS or (key == "url" and urlsplit(str(value)).password):
                found.append(f"{name}.{key}")
    return found


def check_no_tracked_secrets(repo) -> None:
    found = tracked_secrets(repo.config.load_one("repo"))
    if found:
        raise RebalanceError(
            f"credentials in tracked .dvc/config ({', '.join(found)}); move them to the "
            "environment or `dvc remote modify --local`, and out of git history"
        )


def check_up_to_date(repo) -> None:
    status = repo.status()
    if status:
        names = ", ".join(list(status)[:3]) + (", ..." if len(status) > 3 else "")
        raise RebalanceError(f"pipeline not up to date ({len(status)} changed: {names}); run `dvc repro`")


def check_metrics(root: Path) -> None:
    missing = [m for m in REQUIRED_METRICS if not (root / m).is_file()]
    untracked = [
        m for m in REQUIRED_METRICS if m not in missing and not _git(root, "ls-files", "--", m).strip()
    ]
    if missing or untracked:
        what = ", ".join([f"{m} missing" for m in missing] + [f"{m} not in git" for m in untracked])
        raise RebalanceError(f"metrics incomplete ({what}); run `dvc repro` and commit")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def gate(root: Path, params: dict[str, Any], evalm: dict[str, Any], fused) -> list[dict[str, Any]]:
    """The release quality gate (`release.gate` in params): one row per check, `ok` True/False."""
    cfg = params_mod.release_settings(params)["gate"]
    rows = []
    for metric, minimum in (cfg.get("min_metrics") or {}).items():
        value = evalm.get(metric)
        ok = isinstance(value, (int, float)) and value >= minimum
        rows.append({"check": f"{metric} >= {minimum}", "value": value, "ok": ok})
    if cfg.get("max_imbalance") is not None:
        train = fused[fused.split == "train"].label.value_counts()
        per = [int(train.get(c, 0)) for c in params["dataset"]["classes"]]
        ratio = max(per) / min(per) if min(per) else float("inf")
        rows.append(
            {
                "check": f"train max:min class ratio <= {cfg['max_imbalance']}",
                "value": round(ratio, 3),
                "ok": ratio <= cfg["max_imbalance"],
            }
        )
    if cfg.get("invariants", True):
        problems = manifest.check_invariants(fused, params["fuse"].get("synthetic_in_eval", False))
        rows.append(
            {
                "check": "CONTRACT invariants (leakage, splits, flips)",
                "value": problems[0] if problems else "hold",
                "ok": not problems,
            }
        )
    if cfg.get("checksums", True):
        bad = [
            p
            for p, s in zip(fused.path, fused.sha256)
            if not (root / FUSED / p).is_file() or _sha256(root / FUSED / p) != s
        ]
        rows.append(
            {
                "check": "files match manifest sha256",
                "value": f"{len(fused) - len(bad)}/{len(fused)}",
                "ok": not bad,
            }
        )
    return rows


# --------------------------------------------------------------------------- data card


def _lock_out(root: Path, path: str) -> dict[str, Any]:
    lock = yaml.safe_load((root / "dvc.lock").read_text()) or {}
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if out.get("path") == path:
                return out
    return {}


def _fused_table(fused, classes: list[str]) -> str:
    rows = []
    for s in (*params_mod.SPLITS, "total"):
        part = fused if s == "total" else fused[fused.split == s]
        n = [int((part.label == c).sum()) for c in classes]
        ratio = f"1:{max(n) / min(n):.2f}" if min(n) > 0 else "n/a"
        rows.append([s, sum(n), *n, ratio])
    return md_table(["split", "files", *classes, "max:min"], rows)


def _origin_table(fused) -> str:
    origins = ["real"] + sorted(set(fused.origin) - {"real"})
    rows = []
    for o in origins:
        part = fused[fused.origin == o]
        rows.append([o, *[int((part.split == s).sum()) for s in params_mod.SPLITS], len(part)])
    rows.append(["total", *[int((fused.split == s).sum()) for s in params_mod.SPLITS], len(fused)])
    return md_table(["origin", *params_mod.SPLITS, "total"], rows)


def _metric_with_ci(evalm: dict[str, Any], key: str) -> str:
    value = evalm.get(key)
    if not isinstance(value, (int, float)):
        return "n/a"
    ci = (evalm.get("ci95") or {}).get(key)
    return f"{value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def data_card(
    *,
    tag: str,
    message: str | None,
    params: dict[str, Any],
    counts: dict[str, Any],
    evalm: dict[str, Any],
    fused,
    gate_rows: list[dict[str, Any]],
    summary_md: str | None,
    commit: str,
    remote: str,
    remote_url: str,
    artifacts: dict[str, tuple[str, str]],
    fused_out: dict[str, Any],
) -> str:
    """The release's data card (markdown): what is in it, how it was made, how good it is."""
    name, version = tag.split("@", 1)
    classes = params["dataset"]["classes"]
    out = fused_out
    synth = params["synthesize"]["methods"]
    flip = params["flip"]
    derived = fused[fused.origin != "real"]
    lines = [
        f"# {name} {version}",
        "",
        message or f"Release {version} of the balanced dataset `{name}`.",
        "",
        md_table(
            ["", ""],
            [
                ["release tag", f"`{tag}`"],
                ["date (UTC)", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")],
                ["built from commit", f"`{commit}`"],
                [
                    "dataset artifact",
                    f"`{name}` = `{FUSED}` (md5 `{out.get('md5', '?')}`, "
                    f"{out.get('nfiles', len(fused) + 1)} files, {out.get('size', '?')} bytes)",
                ],
                *[[f"{kind} artifact", f"`{n}` = `{p}`"] for n, (kind, p) in artifacts.items() if p != FUSED],
                ["DVC remote", f"`{remote}` ({safe_url(remote_url)})"],
            ],
        ),
        "",
        "## Class balance (train split)",
        "",
        "Original: real train images. Generated: images the synthesis methods add to reach the target. "
        "Total: the target per class (horizontal flips, if enabled, then double the train split). "
        "Val and test hold real images only.",
        "",
        plan.balance_table(counts),
        "",
        "## Real images per split",
        "",
        plan.split_table(counts),
        "",
        "## Published files per split (`data/fused`)",
        "",
        _fused_table(fused, classes),
        "",
        "## Methods",
        "",
        "- synthesis: "
        + ", ".join(f"`{m}` {share:.0%} of each class's deficit" for m, share in synth.items()),
        "- horizontal flips: "
        + ("on, splits " + ", ".join(flip.get("splits", [])) if flip["enabled"] else "off"),
        f"- synthetic files in val/test: {'yes' if params['fuse'].get('synthetic_in_eval') else 'no'}",
        f"- split: {', '.join(f'{s} {f:g}' for s, f in params['count']['split'].items())}, "
        f"seed {params['count']['seed']}; target strategy `{params['count']['target']['strategy']}`"
        + (f" (n = {params['count']['target']['n']})" if params["count"]["target"].get("n") else ""),
        "",
        "## Headline metrics (test split, real images)",
        "",
        f"Model `{evalm.get('variant', params['train'].get('headline'))}` seed {evalm.get('seed', '?')}, "
        f"{evalm.get('n_test', '?')} test images; values with 95% bootstrap intervals where computed.",
        "",
        md_table(["metric", "value"], [[k, _metric_with_ci(evalm, k)] for k in HEADLINE]),
        "",
        md_table(
            ["class", "precision", "recall", "f1", "support"],
            [
                [
                    c,
                    *[
                        (evalm.get("per_class") or {}).get(c, {}).get(k)
                        for k in ("precision", "recall", "f1", "support")
                    ],
                ]
                for c in classes
            ],
        ),
    ]
    if summary_md:
        lines += ["", "## Variants", "", summary_md.strip()]
    lines += [
        "",
        "## Provenance",
        "",
        f"{int((fused.origin == 'real').sum())} real files from "
        f"{fused[fused.origin == 'real'].root.nunique()} raw images; {len(derived)} derived files from "
        f"{derived[derived.root != ''].root.nunique()} train images. Every file's origin, source, root "
        "and sha256 are in `data/fused/manifest.csv`.",
        "",
        _origin_table(fused),
        "",
        "## Release gate",
        "",
        md_table(
            ["check", "value", "result"],
            [[r["check"], r["value"], "pass" if r["ok"] else "FAIL"] for r in gate_rows],
        ),
        "",
        "## Use it",
        "",
        "```",
        f"dvc get <registry-url> {FUSED} --rev {tag}",
        f"dvc import <registry-url> {FUSED} --rev {tag}",
        "```",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- release


def card_path(tag: str) -> str:
    return f"{CARDS}/{tag}.md"


def release(
    version: str,
    message: str | None = None,
    dry_run: bool = False,
    remote: str | None = None,
    root: str | Path = ".",
    echo: Callable[[str], None] = print,
) -> str:
    """Check, push, verify, document and tag one release; returns the tag."""
    root = Path(root).resolve()
    params = params_mod.load(root / "params.yaml")
    settings = params_mod.release_settings(params)
    tag = tag_name(params["dataset"]["name"], version)
    check_tag_free(root, tag)
    check_clean(root)
    repo = _open_repo(root)
    with repo:
        remote = remote or settings["remote"] or repo.config["core"].get("remote")
        if not remote:
            raise RebalanceError("no DVC remote configured; `dvc remote add -d NAME URL` (see README)")
        if remote not in repo.config["remote"]:
            raise RebalanceError(f"DVC remote {remote!r} is not configured; see `dvc remote list`")
        check_no_tracked_secrets(repo)
        check_up_to_date(repo)
        check_metrics(root)
        counts = json.loads((root / COUNTS).read_text())
        evalm = json.loads((root / EVAL).read_text())
        fused = manifest.read(root / FUSED / manifest.FILENAME)
        rows = gate(root, params, evalm, fused)
        artifacts = {
            n: (a.type or "artifact", a.path)
            for arts in repo.artifacts.read().values()
            for n, a in arts.items()
        }
        summary_md = (root / SUMMARY_MD).read_text() if (root / SUMMARY_MD).is_file() else None
        card = data_card(
            tag=tag,
            message=message,
            params=params,
            counts=counts,
            evalm=evalm,
            fused=fused,
            gate_rows=rows,
            summary_md=summary_md,
            commit=_git(root, "rev-parse", "HEAD").strip(),
            remote=remote,
            remote_url=repo.config["remote"][remote].get("url", ""),
            artifacts=artifacts,
            fused_out=_lock_out(root, FUSED),
        )
        if dry_run:
            echo(card)
        failed = [r for r in rows if not r["ok"]]
        if failed:
            raise RebalanceError(
                f"release gate failed: {failed[0]['check']} (got {failed[0]['value']})"
                + (f" and {len(failed) - 1} more" if len(failed) > 1 else "")
                + "; see `release.gate` in params.yaml"
            )
        if dry_run:
            echo(
                f"dry run: checks pass; would push to DVC remote {remote!r}, "
                f"commit {card_path(tag)} and tag {tag}"
            )
            return tag
        pushed = push_and_verify(repo, remote, tag)
    path = root / card_path(tag)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(card)
    try:
        _git(root, "add", "--", card_path(tag))
        _git(root, "commit", "-q", "-m", f"Release {tag}: data card", "--", card_path(tag))
    except RebalanceError:
        _git(root, "reset", "-q", "--", card_path(tag), check=False)
        path.unlink(missing_ok=True)
        raise
    try:
        name, v = tag.split("@", 1)
        _git(root, "tag", "-a", tag, "-m", message or f"Registering artifact {name} version {v}")
    except RebalanceError:
        _git(root, "reset", "-q", "--keep", "HEAD~1", check=False)
        raise
    echo(f"released {tag}: {pushed} file(s) pushed to DVC remote {remote!r}, data card {card_path(tag)}")
    echo(f"publish it: git push origin HEAD {tag}")
    return tag


@contextlib.contextmanager
def _quiet_dvc() -> Iterator[None]:
    """DVC (dvc, dvc_data, dvc_objects) logs each failed transfer; the release reports one line."""
    before = logging.root.manager.disable
    logging.disable(logging.ERROR)
    try:
        yield
    finally:
        logging.disable(before)


def push_and_verify(repo, remote: str, tag: str) -> int:
    """Push every output of the workspace and the run cache; then the remote must hold them all."""
    try:
        with _quiet_dvc():
            pushed = repo.push(remote=remote, run_cache=True)
    except Exception as err:  # noqa: BLE001 - any failure of the push refuses the release
        # s3fs leaves coroutines behind when its endpoint is unreachable; Python warns at exit.
        warnings.filterwarnings("ignore", message="coroutine .* was never awaited", category=RuntimeWarning)
        raise RebalanceError(
            f"push to DVC remote {remote!r} failed ({_one_line(err)}); no commit, no tag {tag}"
        ) from None
    try:
        with _quiet_dvc():
            missing = repo.status(cloud=True, remote=remote)
    except Exception as err:  # noqa: BLE001
        raise RebalanceError(
            f"cannot verify DVC remote {remote!r} ({_one_line(err)}); no tag {tag}"
        ) from None
    if missing:
        first = next(iter(missing))
        raise RebalanceError(
            f"DVC remote {remote!r} lacks {len(missing)} output(s) after push (first: {first}); no tag {tag}"
        )
    return int(pushed or 0)


# --------------------------------------------------------------------------- releases


def list_releases(root: str | Path = ".") -> list[dict[str, Any]]:
    """Release tags (oldest first) with date, commit and headline metrics read from git."""
    root = Path(root).resolve()
    out = _git(
        root,
        "for-each-ref",
        "--sort=creatordate",
        "--format=%(refname:short)%09%(creatordate:iso-strict)%09%(objecttype)",
        "refs/tags",
    )
    releases = []
    for line in out.splitlines():
        tag, date, kind = line.split("\t")
        m = TAG_RE.match(tag)
        if not m:
            continue
        shown = subprocess.run(["git", "show", f"{tag}:{EVAL}"], cwd=root, capture_output=True, text=True)
        evalm = json.loads(shown.stdout) if shown.returncode == 0 else {}
        releases.append(
            {
                "tag": tag,
                "name": m["name"],
                "version": m["version"],
                "date": date,
                "annotated": kind == "tag",
                "commit": _git(root, "rev-list", "-n", "1", tag).strip(),
                **{k: evalm.get(k) for k in HEADLINE},
            }
        )
    return releases


def releases_table(releases: list[dict[str, Any]]) -> str:
    if not releases:
        return "no releases yet (`rebalance release VERSION`)"
    return md_table(
        ["tag", "date", "commit", *HEADLINE],
        [[r["tag"], r["date"], r["commit"][:8], *[r[k] for k in HEADLINE]] for r in releases],
    )


# --------------------------------------------------------------------------- compare


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def _delta(a: Any, b: Any) -> Any:
    num = (int, float)
    if isinstance(a, num) and isinstance(b, num) and not isinstance(a, bool) and not isinstance(b, bool):
        d = b - a
        return round(d, 6) if isinstance(d, float) else d
    return None


def _rows(a: dict[str, Any], b: dict[str, Any], changed_only: bool = False) -> list[dict[str, Any]]:
    keys = list(a) + [k for k in b if k not in a]
    rows = [{"key": k, "a": a.get(k), "b": b.get(k), "delta": _delta(a.get(k), b.get(k))} for k in keys]
    return [r for r in rows if r["a"] != r["b"]] if changed_only else rows


def _resolve(root: Path, rev: str) -> str:
    proc = subprocess.run(
        ["git", "rev-parse", "--verify", "-q", f"{rev}^{{commit}}"], cwd=root, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RebalanceError(f"unknown revision {rev!r}; see `git tag` or `rebalance releases`")
    return proc.stdout.strip()


def _at(shown: dict[str, Any], rev: str) -> dict[str, Any]:
    """One revision's entry of a DVC show result (DVC joins names of one commit: "tag,sha")."""
    for key, value in shown.items():
        if rev in [k.strip() for k in key.split(",")]:
            return (value or {}).get("data") or {}
    return {}


def _metrics_at(repo, revs: list[str], targets: list[str]) -> dict[str, dict[str, Any]]:
    """{rev: {file: data}} through DVC's metrics API (reads git, pulls nothing)."""
    shown = repo.metrics.show(targets=targets, revs=revs, on_error="return")
    out = {}
    for rev in revs:
        files = _at(shown, rev)
        out[rev] = {f: (files.get(f) or {}).get("data") or {} for f in targets}
    return out


def compare(rev_a: str, rev_b: str, root: str | Path = ".") -> dict[str, Any]:
    """Counts, params and metrics of two revisions side by side, with b - a deltas."""
    root = Path(root).resolve()
    commits = {rev_a: _resolve(root, rev_a), rev_b: _resolve(root, rev_b)}
    revs = list(dict.fromkeys([rev_a, rev_b]))
    targets = [COUNTS, FUSED_COUNTS, EVAL, SUMMARY]
    with _open_repo(root) as repo:
        metrics = _metrics_at(repo, revs, targets)
        shown = repo.params.show(revs=revs, targets=["params.yaml"], on_error="return")
    params = {r: (_at(shown, r).get("params.yaml") or {}).get("data") or {} for r in revs}
    a, b = metrics[rev_a], metrics[rev_b]
    if not a[EVAL] and not a[COUNTS]:
        raise RebalanceError(f"{rev_a}: no {EVAL} or {COUNTS} in git at that revision")
    if not b[EVAL] and not b[COUNTS]:
        raise RebalanceError(f"{rev_b}: no {EVAL} or {COUNTS} in git at that revision")

    def counts_view(m: dict[str, Any]) -> dict[str, Any]:
        c = m[COUNTS]
        view = {f"raw.{k}": v for k, v in (c.get("raw") or {}).items()}
        view |= {f"real.{s}.{k}": v for s, per in (c.get("splits") or {}).items() for k, v in per.items()}
        view |= {f"target.{k}": v for k, v in (c.get("target") or {}).items()}
        view |= {
            f"generated.{k}.{meth}": n
            for k, per in (c.get("generated") or {}).items()
            for meth, n in per.items()
        }
        fused = m[FUSED_COUNTS] or {}
        view |= {
            f"fused.{s}.{k}": sum(per.values())
            for s in params_mod.SPLITS
            if isinstance(fused.get(s), dict)
            for k, per in fused[s].items()
            if isinstance(per, dict)
        }
        return view

    def overall(m: dict[str, Any]) -> dict[str, Any]:
        e = m[EVAL]
        return {
            k: v
            for k, v in e.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "seed"
        }

    def per_class(m: dict[str, Any]) -> dict[str, Any]:
        return _flatten(m[EVAL].get("per_class") or {})

    def variants(m: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for v, t in ((m[SUMMARY] or {}).get("variants") or {}).items():
            out |= {
                f"{v}.{k}": s.get("mean") for k, s in (t.get("mean_std") or {}).items() if isinstance(s, dict)
            }
        return out

    pa, pb = _flatten(params[rev_a]), _flatten(params[rev_b])
    return {
        "a": {"rev": rev_a, "commit": commits[rev_a]},
        "b": {"rev": rev_b, "commit": commits[rev_b]},
        "counts": _rows(counts_view(a), counts_view(b)),
        "params": _rows(pa, pb, changed_only=True),
        "params_unchanged": sum(1 for k in pa if k in pb and pa[k] == pb[k]),
        "metrics": _rows(overall(a), overall(b)),
        "per_class": _rows(per_class(a), per_class(b)),
        "variants": _rows(variants(a), variants(b)),
    }


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return "" if v is None else str(v)


def _signed(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:+.3f}"
    return f"{v:+d}" if isinstance(v, int) else str(v)


def compare_markdown(c: dict[str, Any]) -> str:
    a, b = c["a"]["rev"], c["b"]["rev"]

    def section(title: str, rows: list[dict[str, Any]], empty: str) -> list[str]:
        if not rows:
            return [f"## {title}", "", empty, ""]
        return [
            f"## {title}",
            "",
            md_table(
                ["key", a, b, "delta"],
                [[r["key"], _fmt(r["a"]), _fmt(r["b"]), _signed(r["delta"])] for r in rows],
            ),
            "",
        ]

    lines = [f"# {a} ({c['a']['commit'][:8]}) vs {b} ({c['b']['commit'][:8]})", ""]
    lines += section("Counts per class and split", c["counts"], "no counts")
    lines += section("Params (changed)", c["params"], "no params changed")
    lines[-1:] = ["", f"{c['params_unchanged']} params unchanged.", ""]
    lines += section("Metrics (headline model, test split)", c["metrics"], "no metrics")
    lines += section("Metrics per class", c["per_class"], "no per-class metrics")
    if c["variants"]:
        lines += section("Variants (mean over seeds)", c["variants"], "")
    return "\n".join(lines).rstrip() + "\n"

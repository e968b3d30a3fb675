"""Two revisions side by side: counts, params and metrics, with b - a deltas.

`compare` reads both revisions through DVC's metrics and params API (git only, nothing pulled)
and gives sections of rows `{"key", "a", "b", "delta"}`, and the published files' changes
(`changes.diff` of the two manifests, read from the DVC cache or remote); `compare_markdown`
renders them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rebalance.config import SPLITS
from rebalance.core import paths
from rebalance.core.errors import RebalanceError
from rebalance.core.tables import cell, markdown_table
from rebalance.learn.metrics import measured
from rebalance.registry import changes, git, testset
from rebalance.registry.changes import flatten
from rebalance.registry.remote import open_repo

METRIC_FILES = (paths.COUNTS, paths.FUSED_COUNTS, paths.EVAL, paths.SUMMARY)

# --------------------------------------------------------------------------- rows


def _delta(a: Any, b: Any) -> Any:
    """b - a for two numbers (not bools); None otherwise."""
    num = (int, float)
    if isinstance(a, num) and isinstance(b, num) and not isinstance(a, bool) and not isinstance(b, bool):
        d = b - a
        return round(d, 6) if isinstance(d, float) else d
    return None


def _rows(a: dict[str, Any], b: dict[str, Any], changed_only: bool = False) -> list[dict[str, Any]]:
    """One row per key of a, then of b, with the delta; optionally only the keys that differ."""
    keys = list(a) + [k for k in b if k not in a]
    rows = [{"key": k, "a": a.get(k), "b": b.get(k), "delta": _delta(a.get(k), b.get(k))} for k in keys]
    return [r for r in rows if r["a"] != r["b"]] if changed_only else rows


# --------------------------------------------------------------------------- reading revisions


def _at(shown: dict[str, Any], rev: str) -> dict[str, Any]:
    """One revision's entry of a DVC show result (DVC joins names of one commit: "tag,sha")."""
    for key, value in shown.items():
        if rev in [k.strip() for k in key.split(",")]:
            return (value or {}).get("data") or {}
    return {}


def _metrics_at(repo, revs: list[str]) -> dict[str, dict[Path, Any]]:
    """{rev: {metrics file: data}} through DVC's metrics API (reads git, pulls nothing)."""
    targets = [p.as_posix() for p in METRIC_FILES]
    shown = repo.metrics.show(targets=targets, revs=revs, on_error="return")
    out = {}
    for rev in revs:
        files = _at(shown, rev)
        out[rev] = {p: (files.get(p.as_posix()) or {}).get("data") or {} for p in METRIC_FILES}
    return out


def _params_at(repo, revs: list[str]) -> dict[str, dict[str, Any]]:
    """{rev: params.yaml as a dict} through DVC's params API."""
    name = paths.PARAMS.as_posix()
    shown = repo.params.show(revs=revs, targets=[name], on_error="return")
    return {r: (_at(shown, r).get(name) or {}).get("data") or {} for r in revs}


# --------------------------------------------------------------------------- views of one revision


def _counts_view(m: dict[Path, Any]) -> dict[str, Any]:
    """Raw, per-split, target, generated and fused counts as flat keys."""
    c = m[paths.COUNTS]
    view = {f"raw.{k}": v for k, v in (c.get("raw") or {}).items()}
    view |= {f"real.{s}.{k}": v for s, per in (c.get("splits") or {}).items() for k, v in per.items()}
    view |= {f"target.{k}": v for k, v in (c.get("target") or {}).items()}
    view |= {
        f"generated.{k}.{meth}": n for k, per in (c.get("generated") or {}).items() for meth, n in per.items()
    }
    fused = m[paths.FUSED_COUNTS] or {}
    view |= {
        f"fused.{s}.{k}": sum(per.values())
        for s in SPLITS
        if isinstance(fused.get(s), dict)
        for k, per in fused[s].items()
        if isinstance(per, dict)
    }
    return view


def _overall(m: dict[Path, Any]) -> dict[str, Any]:
    """The headline model's numeric test metrics (not its seed)."""
    return {
        k: v
        for k, v in m[paths.EVAL].items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "seed"
    }


def _per_class(m: dict[Path, Any]) -> dict[str, Any]:
    return flatten(measured(m[paths.EVAL].get("per_class") or {}))


def _variants(m: dict[Path, Any]) -> dict[str, Any]:
    """Each variant's metrics, mean over seeds."""
    out = {}
    for v, t in ((m[paths.SUMMARY] or {}).get("variants") or {}).items():
        out |= {
            f"{v}.{k}": s.get("mean") for k, s in (t.get("mean_std") or {}).items() if isinstance(s, dict)
        }
    return out


def _require_metrics(rev: str, m: dict[Path, Any]) -> None:
    if not m[paths.EVAL] and not m[paths.COUNTS]:
        raise RebalanceError(
            f"{rev}: no {paths.EVAL.as_posix()} or {paths.COUNTS.as_posix()} in git at that revision"
        )


def _without_deltas(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "delta": None} for r in rows]


def compare(
    rev_a: str, rev_b: str, root: str | Path = ".", allow_different_test_sets: bool = False
) -> dict[str, Any]:
    """Counts, params and metrics of two revisions side by side, with b - a deltas.

    Metric deltas only when both revisions were measured on the same test set (or when asked)."""
    root = Path(root).resolve()
    commits = {rev_a: git.resolve(root, rev_a), rev_b: git.resolve(root, rev_b)}
    revs = list(dict.fromkeys([rev_a, rev_b]))
    with open_repo(root) as repo:
        metrics = _metrics_at(repo, revs)
        params = _params_at(repo, revs)
    a, b = metrics[rev_a], metrics[rev_b]
    _require_metrics(rev_a, a)
    _require_metrics(rev_b, b)
    pa, pb = flatten(params[rev_a]), flatten(params[rev_b])
    tests = testset.overlap(testset.at(root, rev_a), testset.at(root, rev_b))
    comparable = tests["same"] or allow_different_test_sets
    keep = (lambda rows: rows) if comparable else _without_deltas
    return {
        "a": {"rev": rev_a, "commit": commits[rev_a]},
        "b": {"rev": rev_b, "commit": commits[rev_b]},
        "counts": _rows(_counts_view(a), _counts_view(b)),
        "params": _rows(pa, pb, changed_only=True),
        "params_unchanged": sum(1 for k in pa if k in pb and pa[k] == pb[k]),
        "test_set": tests | {"metric_deltas": comparable},
        "metrics": keep(_rows(_overall(a), _overall(b))),
        "per_class": keep(_rows(_per_class(a), _per_class(b))),
        "variants": keep(_rows(_variants(a), _variants(b))),
        "files": _files(root, rev_a, rev_b),
    }


def _files(root: Path, rev_a: str, rev_b: str) -> dict[str, Any] | None:
    """The published files' changes from a to b (None where a manifest cannot be read)."""
    a, b = changes.manifest_at(root, rev_a), changes.manifest_at(root, rev_b)
    return None if a is None or b is None else changes.diff(a, b)


# --------------------------------------------------------------------------- markdown


def _fmt(v: Any) -> str:
    """A value cell: lists and dicts as JSON, else as a table cell."""
    return json.dumps(v) if isinstance(v, (list, dict)) else cell(v)


def _signed(v: Any) -> str:
    """A delta cell, with its sign."""
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:+.3f}"
    return f"{v:+d}" if isinstance(v, int) else str(v)


def _section(title: str, rows: list[dict[str, Any]], empty: str, a: str, b: str) -> list[str]:
    if not rows:
        return [f"## {title}", "", empty, ""]
    table = markdown_table(
        ["key", a, b, "delta"],
        [[r["key"], _fmt(r["a"]), _fmt(r["b"]), _signed(r["delta"])] for r in rows],
    )
    return [f"## {title}", "", table, ""]


def _test_set_lines(t: dict[str, Any], a: str, b: str) -> list[str]:
    """Whether the two revisions were measured on the same test images, and what follows."""
    short = {k: (t[k] or "unknown")[:12] for k in ("a", "b")}
    if t["same"]:
        text = f"Same test set in both ({short['a']}, {t['n_a']} images): metric deltas are comparable."
    else:
        shared = (
            f" They share {t['shared']} images ({t['only_a']} only in {a}, {t['only_b']} only in {b})."
            if "shared" in t
            else ""
        )
        text = (
            f"**Different test sets**: {a} {short['a']} ({t['n_a']} images), "
            f"{b} {short['b']} ({t['n_b']}).{shared} "
        )
        text += (
            "Deltas are shown because --allow-different-test-sets was given; they mix two test sets."
            if t["metric_deltas"]
            else "Metric deltas are withheld (pass --allow-different-test-sets to see them anyway)."
        )
    return ["## Test set", "", text, ""]


def compare_markdown(c: dict[str, Any]) -> str:
    """A `compare` result as Markdown, one section per group of rows."""
    a, b = c["a"]["rev"], c["b"]["rev"]
    lines = [f"# {a} ({c['a']['commit'][:8]}) vs {b} ({c['b']['commit'][:8]})", ""]
    lines += _section("Counts per class and split", c["counts"], "no counts", a, b)
    lines += ["## Files (release notes)", "", *changes.lines(c.get("files"), a, b), ""]
    lines += _section("Params (changed)", c["params"], "no params changed", a, b)
    lines[-1:] = ["", f"{c['params_unchanged']} params unchanged.", ""]
    lines += _test_set_lines(c["test_set"], a, b)
    lines += _section("Metrics (headline model, test split)", c["metrics"], "no metrics", a, b)
    lines += _section("Metrics per class", c["per_class"], "no per-class metrics", a, b)
    if c["variants"]:
        lines += _section("Variants (mean over seeds)", c["variants"], "", a, b)
    return "\n".join(lines).rstrip() + "\n"

"""The verdict: one generated sentence per question the registry answers, from metrics/summary.json.

Each question is a comparison on balanced accuracy (the headline metric): the effect on the full
test set, its 95% interval (two-level bootstrap), the Holm-adjusted p, and a reading:

- `helped` / `hurt`: the adjusted p is below 0.05 (the interval then excludes zero);
- `not detectable with this test set`: the interval spans zero and the effect is smaller than the
  comparison's minimal detectable difference (what this test set finds at 80% power);
- `inconclusive`: no significant difference, although the effect is as large as the detectable one
  (or the interval excludes zero before, but not after, the adjustment).

summary.md, the data card and the README lead with these sentences; none is typed by hand.
"""

from __future__ import annotations

METRIC = "balanced_accuracy"
ALPHA = 0.05
CONTROL, WEIGHTED, UNFILTERED = "real_oversampled", "real_weighted", "balanced_unfiltered"


def reading(d: dict) -> str:
    """What one difference says (see the module's docstring)."""
    lo, hi = d["ci95"]
    if d.get("p_holm", d["p"]) < ALPHA and (lo > 0 or hi < 0):
        return "helped" if d["delta"] > 0 else "hurt"
    if lo <= 0 <= hi and abs(d["delta"]) < d["mdd"]:
        return "not detectable with this test set"
    return "inconclusive"


def questions(summary: dict) -> list[tuple[str, str, str]]:
    """(question, variant, baseline) for each question the trained variants can answer."""
    head, variants = summary["headline"], summary["variants"]
    asked = [
        ("Did the synthetic images beat the matched control?", head, CONTROL),
        ("Did balancing beat the class-weighted loss?", head, WEIGHTED),
        ("Did curating the synthetic images beat keeping every first try?", head, UNFILTERED),
    ]
    for method, variant in (summary.get("generators") or {}).items():
        asked.append((f"Did the {method} images beat the matched control?", variant, CONTROL))
    return [
        (q, v, b)
        for q, v, b in asked
        if v != b and b in variants and v in variants and b in variants[v].get("paired", {})
    ]


def answers(summary: dict) -> list[dict]:
    """One dict per answerable question: the comparison, the numbers, the reading and the sentence."""
    out = []
    for question, variant, base in questions(summary):
        d = summary["variants"][variant]["paired"][base][METRIC]
        lo, hi = d["ci95"]
        said = reading(d)
        p = d.get("p_holm", d["p"])
        resamples = (summary.get("bootstrap") or {}).get("resamples")
        floor = resamples and d["p"] <= 2 / (resamples + 1) * (1 + 1e-9)  # no resample crossed zero
        p_text = f"≤ {p:.2g} (the smallest p {resamples} resamples resolve)" if floor else f"= {p:.2g}"
        sentence = (
            f"{question} **{said.capitalize()}**: `{variant}` minus `{base}`, balanced accuracy "
            f"{d['delta']:+.3f} [95% {lo:+.3f}, {hi:+.3f}], Holm-adjusted p {p_text}; "
            f"this test set detects differences of {d['mdd']:.3f} or more (80% power)."
        )
        out.append(
            {"question": question, "variant": variant, "baseline": base, "metric": METRIC, "reading": said}
            | {"delta": d["delta"], "ci95": d["ci95"], "p_holm": p, "mdd": d["mdd"], "sentence": sentence}
        )
    return out


def markdown(summary: dict) -> str:
    """The verdict as Markdown: one bullet per question, then what was not measured."""
    found = summary.get("verdict") or answers(summary)
    if not found:
        return (
            f"No comparison to make: besides `{summary['headline']}`, none of `{CONTROL}`, "
            f"`{WEIGHTED}` was trained.\n"
        )
    lines = [f"- {a['sentence']}" for a in found]
    missing = summary.get("not_measured") or []
    if missing:
        lines.append(
            f"- Not measured: {', '.join(missing)}: no real test image, so no recall and no "
            "difference is reported for it."
        )
    n_seeds = len(summary["seeds"])
    lines += [
        "",
        f"On {summary['n_test']} real test images, {n_seeds} training seeds per variant; intervals "
        "from a two-level bootstrap (seeds, then test images within each true class).",
    ]
    return "\n".join(lines) + "\n"

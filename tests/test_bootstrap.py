"""The evidence statistics against independent computations: the two-level bootstrap equals a
brute-force loop with scikit-learn's metrics, widens with seed disagreement, keeps class counts
fixed and separates real differences from noise; Wilson and Newcombe against their closed forms
and by coverage; Holm by hand; the verdict's readings and the summary's order."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, recall_score

from rebalance.learn import evidence, report, verdict

CLASSES = ["a", "b", "c", "d"]
MINORITY = ["c", "d"]
COMPARED = ["recall_c", "recall_d", *evidence.HEADLINE]


def noisy(y: np.ndarray, correct: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(rng.random(len(y)) < correct, y, rng.integers(0, 4, len(y)))


def onehot(pred: np.ndarray, seed: int = 0) -> np.ndarray:
    """Probabilities whose argmax is `pred` (a little noise keeps ties away)."""
    rng = np.random.default_rng(seed)
    return np.eye(4)[pred] * 0.7 + rng.random((len(pred), 4)) * 0.1


def seeds(y: np.ndarray, correct: list[float], seed: int) -> np.ndarray:
    """S x N x C: one model per entry of `correct` (its accuracy), the seeds' mistakes largely shared
    (the same hard images), as seeds of one variant make them."""
    rng = np.random.default_rng(seed)
    hard, wrong = rng.random(len(y)), rng.integers(0, 4, len(y))
    return np.stack([onehot(np.where(hard < c, y, wrong), seed + i) for i, c in enumerate(correct)])


def imbalanced_labels(n: int = 120, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).choice(4, n, p=[0.45, 0.35, 0.12, 0.08])


def sklearn_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    out = {
        f"recall_{c}": recall_score(y, pred, labels=[CLASSES.index(c)], average=None, zero_division=0)[0]
        for c in CLASSES
    }
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true"
        warnings.simplefilter("ignore")
        out["balanced_accuracy"] = balanced_accuracy_score(y, pred)
    out["macro_f1"] = f1_score(y, pred, average="macro", zero_division=0)
    out["accuracy"] = accuracy_score(y, pred)
    return out


def brute_force(y, probas, n, seed):
    """The reference: one resample at a time, the drawn seeds' probabilities summed by hand, then
    scikit-learn's metrics on the drawn test images."""
    out = {name: [] for name in sklearn_metrics(y, y)}
    for counts, idx in evidence.resamples(y, len(probas), n, seed):
        for weights, rows in zip(counts, idx):
            pooled = sum(w * p for w, p in zip(weights, probas)).argmax(1)
            for name, value in sklearn_metrics(y[rows], pooled[rows]).items():
                out[name].append(value)
    return {name: np.array(v) for name, v in out.items()}


def test_two_level_bootstrap_equals_a_brute_force_loop():
    y = imbalanced_labels(70)
    probas = seeds(y, [0.8, 0.6, 0.7], seed=1)
    fast = evidence.bootstrap_samples(y, probas, CLASSES, n=60, seed=7)
    slow = brute_force(y, probas, n=60, seed=7)
    assert set(fast) == set(slow)
    for name in slow:
        assert fast[name] == pytest.approx(slow[name], abs=1e-12)


def test_resamples_draw_seeds_and_keep_class_counts_fixed():
    y = imbalanced_labels(77, seed=4)
    blocks = list(evidence.resamples(y, 3, 300, seed=2))
    counts = np.concatenate([c for c, _ in blocks])
    idx = np.concatenate([i for _, i in blocks])
    assert idx.shape == (300, len(y)) and counts.shape == (300, 3)
    assert (counts.sum(1) == 3).all() and len({tuple(c) for c in counts}) > 3  # seeds do get resampled
    assert (y[idx] == y).all()  # every position keeps its class, so every count is fixed
    for c in range(4):  # within a class, drawn from all of its members
        assert set(idx[:, y == c].ravel()) == set(np.flatnonzero(y == c))
    again = np.concatenate([i for _, i in evidence.resamples(y, 3, 300, seed=2)])
    assert (again == idx).all()
    big = np.arange(30_000) % 3
    assert len(list(evidence.resamples(big, 2, 70, seed=0))) > 1  # blocks bound memory


def test_seeds_that_disagree_widen_the_interval():
    """Two seeds that agree give the pooled prediction in every seed draw; two that disagree
    strongly do not, and the interval shows it."""
    y = imbalanced_labels(200, seed=5)
    model = onehot(noisy(y, 0.75, 1), 1)
    agree = evidence.Variant(y, np.stack([model, model + 0.001]), CLASSES, 400)
    good, poor = onehot(noisy(y, 0.95, 2), 2), onehot(noisy(y, 0.35, 3), 3)
    disagree = evidence.Variant(y, np.stack([good, poor]), CLASSES, 400)
    width = {name: v.ci95["balanced_accuracy"][1] - v.ci95["balanced_accuracy"][0]
             for name, v in (("agree", agree), ("disagree", disagree))}  # fmt: skip
    assert width["disagree"] > 1.5 * width["agree"]


def test_identical_variants_differ_by_zero_with_p_one_and_honest_recall_intervals():
    y = imbalanced_labels()
    probas = seeds(y, [0.7, 0.7, 0.7], seed=5)
    a, b = evidence.Variant(y, probas, CLASSES, 200), evidence.Variant(y, probas.copy(), CLASSES, 200)
    out = a.minus(b, COMPARED)
    for name, d in out.items():
        assert d["delta"] == 0 and d["p"] == 1.0 and d["per_seed"] == [0, 0, 0]
        if name.startswith("recall_"):  # Newcombe: not [0, 0] on a few images
            assert d["ci95"][0] < 0 < d["ci95"][1]
        else:
            assert d["ci95"] == [0.0, 0.0]


def test_a_small_class_always_right_has_no_degenerate_interval():
    """13 test images of a class, every one right in every seed: the bootstrap alone says [1, 1]."""
    y = np.array([0] * 40 + [1] * 30 + [2] * 20 + [3] * 13)
    pred = y.copy()
    pred[:8] = 1  # some errors elsewhere
    v = evidence.Variant(y, np.stack([onehot(pred, s) for s in range(3)]), CLASSES, 300)
    lo, hi = v.ci95["recall_d"]
    assert v.point["recall_d"] == 1.0 and hi == 1.0 and lo == pytest.approx(0.772, abs=0.001)
    base = evidence.Variant(y, np.stack([onehot(pred, s + 9) for s in range(3)]), CLASSES, 300)
    d = v.minus(base, ["recall_d"])["recall_d"]
    assert d["ci95"][0] < 0 < d["ci95"][1] and d["ci95"][0] != d["ci95"][1]


def test_a_clearly_better_model_is_separated_and_noise_is_not():
    y = imbalanced_labels(300, seed=1)
    good = evidence.Variant(y, seeds(y, [0.95, 0.93, 0.96], 6), CLASSES, 500)
    bad = evidence.Variant(y, seeds(y, [0.4, 0.42, 0.38], 16), CLASSES, 500)
    out = good.minus(bad, COMPARED)
    for name in ("balanced_accuracy", "macro_f1", "recall_c", "recall_d"):
        assert out[name]["delta"] > 0.2 and out[name]["ci95"][0] > 0 and out[name]["p"] < 0.01
    assert out["balanced_accuracy"]["p"] == pytest.approx(2 / 501)  # no resample at or below 0
    assert bad.minus(good, COMPARED)["balanced_accuracy"]["ci95"][1] < 0
    same_a = evidence.Variant(y, seeds(y, [0.7, 0.7, 0.7], 26), CLASSES, 500)
    same_b = evidence.Variant(y, seeds(y, [0.7, 0.7, 0.7], 36), CLASSES, 500)
    noise = same_a.minus(same_b, COMPARED)["balanced_accuracy"]
    assert noise["ci95"][0] < 0 < noise["ci95"][1] and noise["p"] > 0.05


def test_p_value_formula():
    assert evidence.p_value(np.array([1.0, 2.0, 3.0])) == pytest.approx(2 * 1 / 4)
    assert evidence.p_value(np.array([-1.0, 1.0, 2.0, 3.0])) == pytest.approx(2 * 2 / 5)
    assert evidence.p_value(np.zeros(9)) == 1.0


def wilson_by_hand(k: int, n: int, z: float = 1.959963984540054) -> list[float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [centre - half, centre + half]


@pytest.mark.parametrize("k,n", [(0, 5), (13, 13), (7, 20), (250, 400)])
def test_wilson_equals_its_closed_form(k, n):
    assert evidence.wilson(k, n) == pytest.approx(wilson_by_hand(k, n), abs=1e-9)


def test_newcombe_without_correlation_is_the_hybrid_score_interval():
    """A zero margin sets phi to 0: the interval is then Newcombe's hybrid of two Wilson intervals."""
    both, only_a, only_b, neither = 13, 0, 0, 0
    n = both + only_a + only_b + neither
    (la, ua), (lb, ub) = wilson_by_hand(13, n), wilson_by_hand(13, n)
    lo, hi = -math.hypot(1 - la, ub - 1), math.hypot(ua - 1, 1 - lb)
    assert evidence.newcombe_paired(both, only_a, only_b, neither) == pytest.approx([lo, hi], abs=1e-9)


def test_newcombe_paired_covers_the_true_difference_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    n, trials, p_a, p_b, hits = 40, 1500, 0.8, 0.65, 0
    for _ in range(trials):
        shared = rng.random(n)  # correlated outcomes: the same images are hard for both
        a = shared < p_a
        b = np.where(rng.random(n) < 0.7, shared < p_b, rng.random(n) < p_b)
        lo, hi = evidence.newcombe_paired(*(int(v.sum()) for v in (a & b, a & ~b, ~a & b, ~a & ~b)))
        hits += lo <= p_a - p_b <= hi
    assert 0.92 <= hits / trials <= 0.99


def test_minimal_detectable_difference_from_the_intervals_or_the_test_set_whichever_is_larger():
    by_hand = (1.959964 + 0.841621) * math.sqrt(2) * 0.2 / (2 * 1.959964)
    assert evidence.minimal_detectable(0.2 / 3.92, 0.2 / 3.92) == pytest.approx(by_hand, abs=1e-5)
    y = np.array([0] * 40 + [1] * 30 + [2] * 20 + [3] * 10)
    one_class = evidence.Variant(y, np.stack([onehot(np.zeros(100, int), s) for s in range(3)]), CLASSES, 200)
    assert one_class.ci95["balanced_accuracy"] == [0.25, 0.25]  # no spread: yet not detectable at 0
    assert one_class.se["balanced_accuracy"] == pytest.approx(
        math.sqrt(0.25 * (1 / 40 + 1 / 30 + 1 / 20 + 1 / 10)) / 4
    )
    assert one_class.se["recall_d"] == pytest.approx(math.sqrt(0.25 / 10))
    assert one_class.se["accuracy"] == pytest.approx(0.05)
    noisy_seeds = evidence.Variant(y, seeds(y, [0.3, 0.9, 0.6], 3), CLASSES, 400)
    assert noisy_seeds.se["balanced_accuracy"] > one_class.se["balanced_accuracy"]  # measured, wider
    big = np.repeat(y, 10)
    assert evidence.design_se(big, CLASSES, "recall_d") == pytest.approx(
        evidence.design_se(y, CLASSES, "recall_d") / math.sqrt(10)
    )


def test_holm_adjusts_every_paired_difference_as_by_hand():
    ps = {"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.5}
    variants = {
        "balanced": {"paired": {"real": {m: {"p": ps[m]} for m in ("a", "b")}}},
        "other": {"paired": {"real": {m: {"p": ps[m]} for m in ("c", "d")}}},
    }
    assert evidence.holm(variants) == 4
    # Holm by hand: sorted p 0.01, 0.03, 0.04, 0.5 times 4, 3, 2, 1, made monotone, capped at 1
    by_hand = {"a": 0.04, "c": 0.09, "b": 0.09, "d": 0.5}
    got = {
        m: d["p_holm"] for v in variants.values() for diffs in v["paired"].values() for m, d in diffs.items()
    }
    assert got == pytest.approx(by_hand)


@pytest.mark.parametrize(
    "d,said",
    [
        ({"delta": 0.1, "ci95": [0.05, 0.15], "p": 0.001, "p_holm": 0.01, "mdd": 0.05}, "helped"),
        ({"delta": -0.1, "ci95": [-0.15, -0.05], "p": 0.001, "p_holm": 0.01, "mdd": 0.05}, "hurt"),
        ({"delta": 0.02, "ci95": [-0.03, 0.07], "p": 0.4, "p_holm": 1.0, "mdd": 0.08}, "not detectable"),
        ({"delta": 0.1, "ci95": [-0.01, 0.21], "p": 0.07, "p_holm": 0.5, "mdd": 0.08}, "inconclusive"),
        ({"delta": 0.1, "ci95": [0.01, 0.19], "p": 0.02, "p_holm": 0.2, "mdd": 0.08}, "inconclusive"),
    ],
)
def test_the_verdict_reads_each_difference(d, said):
    assert verdict.reading(d).startswith(said)


def summary_of(found: dict[str, evidence.Variant], generators: dict[str, str]) -> dict:
    """summary.json as stage evaluate writes it, for the variants in `found`."""
    table = {
        name: {
            "study": {"real": "B0", "balanced": "S2"}.get(name),
            "mean_std": {m: {"mean": v.point[m], "std": 0.01} for m in COMPARED},
            "pooled": v.point,
            "ci95": v.ci95,
            "paired": {b: v.minus(found[b], COMPARED) for b in report.BASELINES if b in found and b != name},
        }
        for name, v in found.items()
    }
    family = evidence.holm(table)
    summary = {"headline": "balanced", "minority": MINORITY, "n_test": 300, "seeds": [0, 1, 2],
               "bootstrap": {"resamples": 5000}, "holm_family": family, "generators": generators,
               "variants": table}  # fmt: skip
    summary["verdict"] = verdict.answers(summary)
    return summary


def test_summary_markdown_leads_with_the_generated_verdict():
    B = 5000  # the smallest p, 2 / (B + 1), must survive Holm over the 60 differences
    y = imbalanced_labels(300, seed=1)
    found = {
        "real": evidence.Variant(y, seeds(y, [0.5, 0.5, 0.5], 1), CLASSES, B),
        "real_weighted": evidence.Variant(y, seeds(y, [0.7, 0.72, 0.7], 11), CLASSES, B),
        "real_oversampled": evidence.Variant(y, seeds(y, [0.6, 0.6, 0.62], 21), CLASSES, B),
        "balanced": evidence.Variant(y, seeds(y, [0.95, 0.95, 0.94], 31), CLASSES, B),
        "balanced_diffusion": evidence.Variant(y, seeds(y, [0.6, 0.61, 0.6], 41), CLASSES, B),
    }
    summary = summary_of(found, {"diffusion": "balanced_diffusion"})
    said = {(a["variant"], a["baseline"]): a["reading"] for a in summary["verdict"]}
    assert said == {
        ("balanced", "real_oversampled"): "helped",
        ("balanced", "real_weighted"): "helped",
        ("balanced_diffusion", "real_oversampled"): "not detectable with this test set",
    }
    lines = report.markdown(summary).splitlines()
    assert lines[0] == "## Verdict"
    first = summary["verdict"][0]
    assert lines[2].startswith("- Did the synthetic images beat the matched control? **Helped**")
    assert f"{first['delta']:+.3f}" in lines[2] and f"{first['mdd']:.3f}" in lines[2]
    assert "balanced (S2)" in report.markdown(summary) and "real (B0)" in report.markdown(summary)


def test_a_class_without_test_images_is_not_measured_not_a_null_effect():
    d = {"delta": 0.0, "ci95": [0.0, 0.0], "p": 1.0, "p_holm": 1.0, "mdd": 0.1}
    summary = {
        "headline": "balanced", "minority": ["rare", "small"], "not_measured": ["rare"], "seeds": [0, 1, 2],
        "n_test": 20, "bootstrap": {"resamples": 10}, "holm_family": 3, "generators": {},
        "variants": {
            "balanced": {
                "mean_std": {"recall_small": {"mean": 0.5, "std": 0.1},
                             "balanced_accuracy": {"mean": 0.6, "std": 0.0}},
                "pooled": {"recall_small": 0.5, "balanced_accuracy": 0.6},
                "ci95": {"recall_small": [0.2, 0.8], "balanced_accuracy": [0.5, 0.7]},
                "paired": {"real_oversampled": {"recall_small": d, "balanced_accuracy": d, "macro_f1": d}},
            },
        },
    }  # fmt: skip
    control = summary["variants"]["balanced"] | {"paired": {}}
    summary["variants"]["real_oversampled"] = control
    md = report.markdown(summary)
    assert "recall_rare" not in md and "Not measured: rare" in md
    assert "(Holm 1)" in md and "family of all 3 differences" in md

"""The evidence statistics: how sure one frozen real test set lets us be that a variant beats another.

Two kinds of luck move a test-set score: which training seed a model had, and which test images
the test set happened to hold. The intervals take both:

- **Two-level bootstrap.** A resample draws the training seeds with replacement (S of the S
  models a variant trained; their softmax probabilities averaged per test image, then argmax)
  and, within each true class, as many test images as the class has, with replacement (class
  counts, and so what balanced accuracy averages over, stay those of the test set). Two variants
  are compared on the same resamples (the same seed draws, the same images), so a difference's
  spread leaves out the luck both share. Intervals are 95% percentile intervals.
- **Small classes.** Every image of a class right in every seed makes each resample's recall 1:
  the bootstrap alone would report `[1, 1]`. A class's recall interval is therefore the union of
  the bootstrap's and the Wilson score interval of the pooled predictions; a recall difference's,
  the union of the bootstrap's and Newcombe's interval for paired proportions (his method 10,
  from Wilson intervals). Neither collapses at n = 13.
- **p-values**: two-sided from the bootstrap differences (`P_FORMULA`), Holm-adjusted over the
  family of every difference reported (statsmodels).
- **Minimal detectable difference**: the smallest true difference a comparison finds at 80% power
  and alpha 0.05, (z_0.975 + z_0.8) * sqrt(se_a^2 + se_b^2): conservative, as if the two
  variants' errors were independent. Each se is the larger of the width of the variant's own 95%
  interval / (2 z_0.975) (seed and test-image noise as measured) and the test set's own se for a
  metric at 0.5, its least favourable value (a model that predicts one class has no spread, yet
  the test set could not have told a small difference either): sqrt(0.25 / n_c) for a class's
  recall, sqrt(0.25 / N) for accuracy, sqrt(sum_c 0.25 / n_c) / C for balanced accuracy (and for
  macro-F1, which it approximates).

The class-stratified paired bootstrap is written here rather than taken from scipy.stats.bootstrap,
which resamples one level and cannot keep class counts fixed or pair two variants on resamples.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator

import numpy as np

BOOTSTRAP_SEED = 0
HEADLINE = ("balanced_accuracy", "macro_f1", "accuracy")
Z95, Z_POWER, POWER = 1.959963984540054, 0.8416212335729143, 0.8  # scipy.stats.norm.ppf(0.975), (0.8)
P_FORMULA = "p = min(1, 2 * min((1 + #{d <= 0}) / (B + 1), (1 + #{d >= 0}) / (B + 1)))"
POOLING = "mean of the seeds' softmax probabilities per test image, then argmax"
METHOD = {
    "resampling": "two-level: training seeds with replacement, then test images within each true class",
    "interval": "95% percentile; recall: union with Wilson (one variant) or Newcombe paired (a difference)",
    "p": P_FORMULA,
    "adjustment": "Holm over every difference in the file",
    "minimal_detectable_difference": (
        "(z_0.975 + z_0.8) * sqrt(se_a^2 + se_b^2), se = max(95% width / 3.92, the test set's se at 0.5)"
    ),
}


def recall_name(c: str) -> str:
    return f"recall_{c}"


def confusion_metrics(cms: np.ndarray, classes: list[str]) -> dict[str, np.ndarray]:
    """Each class's recall and the headline metrics of a stack of confusion matrices (B x C x C, rows:
    true), one value per matrix, with scikit-learn's conventions: balanced accuracy averages recall
    over classes present in the truth, macro-F1 averages F1 over classes present in truth or
    prediction, 0 where undefined."""
    tp = np.diagonal(cms, axis1=1, axis2=2).astype(float)
    true_n, pred_n = cms.sum(2), cms.sum(1)
    present, seen = true_n > 0, (true_n + pred_n) > 0
    recall = np.divide(tp, true_n, out=np.zeros_like(tp), where=present)
    f1 = np.divide(2 * tp, true_n + pred_n, out=np.zeros_like(tp), where=seen)
    out = {recall_name(c): recall[:, i] for i, c in enumerate(classes)}
    out["balanced_accuracy"] = (recall * present).sum(1) / present.sum(1)
    out["macro_f1"] = (f1 * seen).sum(1) / seen.sum(1)
    out["accuracy"] = tp.sum(1) / cms.sum((1, 2))
    return out


def _confusions(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """Confusion matrices of rows of predictions `pred` (B x N) against `y` (B x N or N)."""
    b = len(pred)
    flat = (y * k + pred) + (np.arange(b) * k * k)[:, None]
    return np.bincount(flat.ravel(), minlength=b * k * k).reshape(b, k, k)


def point_metrics(y: np.ndarray, pred: np.ndarray, classes: list[str]) -> dict[str, float]:
    """Each class's recall and the headline metrics on the full test set."""
    cm = _confusions(y, pred[None], len(classes))
    return {name: float(v[0]) for name, v in confusion_metrics(cm, classes).items()}


def pooled_prediction(probas: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """argmax of the seeds' probabilities (S x N x C) averaged per image, each seed `weights` times."""
    if weights is None:
        return probas.mean(0).argmax(1)
    return np.tensordot(weights / weights.sum(), probas, axes=1).argmax(1)


def resamples(y: np.ndarray, n_seeds: int, n: int, seed: int = BOOTSTRAP_SEED) -> Iterator[tuple]:
    """`n` two-level resamples in blocks: (seed counts, b x S: how often each training seed is drawn;
    test indices, b x N: the positions of a true class hold indices of that class drawn uniformly
    with replacement, so `y[idx] == y` row by row). Deterministic for (y, n_seeds, n, seed)."""
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(y == c) for c in np.unique(y)]
    block = max(1, 1_000_000 // max(1, len(y)))  # bounds memory on large test sets
    for start in range(0, n, block):
        b = min(block, n - start)
        draws = rng.integers(0, n_seeds, size=(b, n_seeds))
        counts = (draws[:, :, None] == np.arange(n_seeds)).sum(1)
        idx = np.empty((b, len(y)), dtype=np.intp)
        for m in members:
            idx[:, m] = m[rng.integers(0, len(m), size=(b, len(m)))]
        yield counts, idx


def bootstrap_samples(
    y: np.ndarray, probas: np.ndarray, classes: list[str], n: int, seed: int = BOOTSTRAP_SEED
) -> dict[str, np.ndarray]:
    """Each class's recall and the headline metrics on each of `n` two-level resamples of one
    variant's seeds `probas` (S x N x C). Two calls with the same y, number of seeds, n and seed
    use the same resamples (the paired bootstrap). Each distinct seed draw is pooled once."""
    k, parts = len(classes), []
    for counts, idx in resamples(y, len(probas), n, seed):
        draws, which = np.unique(counts, axis=0, return_inverse=True)
        preds = np.stack([pooled_prediction(probas, w) for w in draws])[which.reshape(-1)]
        parts.append(confusion_metrics(_confusions(y, np.take_along_axis(preds, idx, 1), k), classes))
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def interval(samples: np.ndarray) -> list[float]:
    """The 95% percentile interval."""
    return [float(np.percentile(samples, 2.5)), float(np.percentile(samples, 97.5))]


def p_value(diffs: np.ndarray) -> float:
    """Two-sided bootstrap p-value of a difference (P_FORMULA)."""
    b = len(diffs)
    below, above = (1 + np.sum(diffs <= 0)) / (b + 1), (1 + np.sum(diffs >= 0)) / (b + 1)
    return float(min(1.0, 2 * min(below, above)))


def wilson(successes: int, n: int) -> list[float]:
    """The 95% Wilson score interval of a proportion (statsmodels)."""
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(successes, n, alpha=0.05, method="wilson")
    return [float(lo), float(hi)]


def newcombe_paired(both: int, only_a: int, only_b: int, neither: int) -> list[float]:
    """95% interval of p_a - p_b for two proportions on the same n items (Newcombe 1998, method 10:
    Wilson intervals of each, combined with the continuity-corrected phi of the 2 x 2 table)."""
    n = both + only_a + only_b + neither
    p_a, p_b = (both + only_a) / n, (both + only_b) / n
    (l_a, u_a), (l_b, u_b) = wilson(both + only_a, n), wilson(both + only_b, n)
    denominator = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    cross = both * neither - only_a * only_b
    if denominator == 0:
        phi = 0.0
    else:
        phi = (max(cross - n / 2, 0) if cross > 0 else cross) / math.sqrt(denominator)
    d = p_a - p_b
    lower = math.sqrt(max(0.0, (p_a - l_a) ** 2 - 2 * phi * (p_a - l_a) * (u_b - p_b) + (u_b - p_b) ** 2))
    upper = math.sqrt(max(0.0, (u_a - p_a) ** 2 - 2 * phi * (u_a - p_a) * (p_b - l_b) + (p_b - l_b) ** 2))
    return [d - lower, d + upper]


def union(a: list[float], b: list[float]) -> list[float]:
    return [min(a[0], b[0]), max(a[1], b[1])]


def se_of(ci: list[float]) -> float:
    """The standard error a 95% interval stands for."""
    return (ci[1] - ci[0]) / (2 * Z95)


def design_se(y: np.ndarray, classes: list[str], name: str) -> float:
    """The standard error of metric `name` at 0.5 on the test labels `y` (see the module's docstring)."""
    sizes = np.bincount(y, minlength=len(classes))
    if name.startswith("recall_"):
        return math.sqrt(0.25 / sizes[classes.index(name.removeprefix("recall_"))])
    if name == "accuracy":
        return math.sqrt(0.25 / len(y))
    present = sizes[sizes > 0]
    return math.sqrt(float(np.sum(0.25 / present))) / len(present)


def minimal_detectable(se_a: float, se_b: float) -> float:
    """The smallest true difference between two variants found at 80% power, alpha 0.05."""
    return (Z95 + Z_POWER) * math.hypot(se_a, se_b)


class Variant:
    """One variant's test-set evidence: its seeds' probabilities, pooled prediction, two-level
    bootstrap samples, point metrics and intervals."""

    def __init__(self, y: np.ndarray, probas: np.ndarray, classes: list[str], n: int):
        self.y, self.probas, self.classes = y, probas, classes
        self.pred = pooled_prediction(probas)
        self.samples = bootstrap_samples(y, probas, classes, n)
        self.point = point_metrics(y, self.pred, classes)
        self.ci95 = {name: interval(s) for name, s in self.samples.items()}
        for i, c in enumerate(classes):
            truth = y == i
            if truth.any():
                right = int((self.pred[truth] == i).sum())
                self.ci95[recall_name(c)] = union(self.ci95[recall_name(c)], wilson(right, int(truth.sum())))
        measured = [n for n in self.ci95 if not n.startswith("recall_") or (y == self._index(n)).any()]
        self.se = {n: max(se_of(self.ci95[n]), design_se(y, classes, n)) for n in measured}

    def _index(self, name: str) -> int:
        return self.classes.index(name.removeprefix("recall_"))

    @functools.cached_property
    def per_seed(self) -> list[dict[str, float]]:
        """Each seed's point metrics (computed once, for every baseline this variant is paired with)."""
        return [point_metrics(self.y, p.argmax(1), self.classes) for p in self.probas]

    def minus(self, base: Variant, names: list[str]) -> dict[str, dict]:
        """This variant minus `base` on the same resamples, per metric in `names`: the difference on
        the full test set, its 95% interval, p, the minimal detectable difference, each seed's."""
        mine, theirs = self.per_seed, base.per_seed
        out = {}
        for name in names:
            d = self.samples[name] - base.samples[name]
            ci = interval(d)
            if name.startswith("recall_"):
                i = self._index(name)
                truth = self.y == i
                a, b = self.pred[truth] == i, base.pred[truth] == i
                ci = union(ci, newcombe_paired(*(int(v.sum()) for v in (a & b, a & ~b, ~a & b, ~a & ~b))))
            out[name] = {
                "delta": self.point[name] - base.point[name],
                "ci95": ci,
                "p": p_value(d),
                "mdd": minimal_detectable(self.se[name], base.se[name]),
                "per_seed": [m[name] - t[name] for m, t in zip(mine, theirs)],
            }
        return out


def holm(variants: dict[str, dict]) -> int:
    """Holm's adjustment (statsmodels) over the family of every paired difference (each variant
    minus each baseline, each metric): writes `p_holm` beside each `p`; returns the family's size."""
    from statsmodels.stats.multitest import multipletests

    family = [d for v in variants.values() for diffs in v.get("paired", {}).values() for d in diffs.values()]
    if family:
        adjusted = multipletests([d["p"] for d in family], method="holm")[1]
        for d, p in zip(family, adjusted):
            d["p_holm"] = float(p)
    return len(family)

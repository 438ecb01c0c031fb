"""Label a run's training regime and response-length stage from its eval history (pure python).

arXiv 2604.06628 ("Rethinking Generalization in Reasoning SFT") shows that most "SFT does not
generalise" verdicts are read off under-trained checkpoints: out-of-domain (OOD) accuracy first dips below
the step-0 baseline, then recovers and exceeds it; response length first spikes (surface imitation of long
CoT) and then falls and stabilises (genuine reasoning); only aggressive schedules over-fit (ID and OOD fall
from their peak while length rises again). The paper gives no thresholds, so every comparison here is a
significance test on binomial standard errors and every threshold is a `RegimeThresholds` field.

A difference between two accuracies is *significant* when it exceeds `z * sqrt(se1**2 + se2**2)`, with
`se = sqrt(q(1-q)/n)` and `q = (p*n + 1)/(n + 2)` (see `standard_error`). Evals of one run share their
questions, so the unpaired SE overstates the noise: the test errs towards "no change". Rules, for the latest
point, using only the points given (history[0] is the step-0 baseline; ties go to the earlier rule):

Length stage (mean response tokens; points without a length are skipped):
  1. The length has *spiked* when its running peak reaches `length_spike_ratio` x the baseline length. It
     has *settled* at the first point after that peak which is at least `length_stable_tolerance` below
     the peak and within that tolerance of the previous point (so settling needs two evals past the peak).
  2. settled -> genuine_reasoning, for good: a later rise is reported as "rising again" (an over-fitting
     sign), not as a return to imitation.
  3. spiked, not settled (still rising, at its peak, or still falling fast) -> surface_imitation.
  4. no spike: rising by more than the tolerance over the previous eval and above baseline by more than
     the tolerance -> surface_imitation (a spike under way); otherwise genuine_reasoning (it never spiked).
  5. No length at the latest point -> judged from accuracy only, and the reason says so: the primary
     accuracy significantly below baseline (the dip) -> surface_imitation, else genuine_reasoning.

Training regime (primary metric: OOD when the latest point has it, else ID; a metric's baseline is its
first recorded value, normally step 0's):
  1. Baseline only -> underfitting ("baseline only"); no accuracy at the latest point -> underfitting.
  2. overfitting (recommendation "stop") when, for every accuracy the latest point has, each of its last
     `patience` evals is significantly below its peak so far, that peak is a trained checkpoint (a fall
     below the untrained baseline is the dip, not over-fitting), and the length is not in an unsettled
     spike (the dip happens there). A length rising again after settling is quoted in the reason.
  3. underfitting when the primary accuracy is not significantly above baseline (significantly below it
     is "the dip", which the paper finds recovers with longer training) -- unless, with the length not
     in surface imitation, it has fallen back from a peak significantly above baseline (then rule 6).
  4. underfitting when an accuracy is still improving: a new best significantly above the previous eval.
  5. underfitting when the length is still in surface imitation.
  6. otherwise optimal. If an accuracy is already significantly below its peak but for fewer than
     `patience` evals, the label stays optimal and the reason warns that it is past its best.
  Only over-fitting recommends "stop": the paper sees it only under aggressive schedules, so a plateau
  alone is no reason to stop.

best_step: among the evals whose OOD accuracy (ID when no point has OOD) is within noise of the best
value, the one with the highest mean of its recorded accuracies; exact ties go to the earlier step.
Noise: with the default z=2, moving two points by one SE each in opposite directions (2 SE) stays below
the 2.83 SE a significant difference needs, so one-SE noise cannot flip a label on its own.

This module knows nothing of Lightning, loggers or files: the callback and `sftlab regime` call `classify`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, cast

TrainingRegime = Literal["underfitting", "optimal", "overfitting"]
LengthStage = Literal["surface_imitation", "genuine_reasoning"]
Recommendation = Literal["continue", "stop"]

# Numeric codes for plotting the labels as metrics (`regime/label`, `regime/length_stage`).
TRAINING_REGIME_CODES: dict[str, int] = {"underfitting": 0, "optimal": 1, "overfitting": 2}
LENGTH_STAGE_CODES: dict[str, int] = {"surface_imitation": 0, "genuine_reasoning": 1}

_METRIC_NAMES = {"ood": "OOD", "id": "ID"}


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def standard_error(p: float, n: int) -> float:
    """Binomial standard error of an accuracy `p` measured on `n` scored samples.

    p is replaced by Laplace's rule-of-succession estimate (p*n + 1)/(n + 2) so that 0% or 100% does not
    claim zero noise: 0/30 gives an SE of 0.032, about one problem's worth, instead of 0. For n in the
    hundreds the correction changes the SE by well under 1%.
    """
    q = (p * n + 1) / (n + 2)
    return math.sqrt(q * (1 - q) / n)


@dataclass(frozen=True)
class EvalPoint:
    """One eval of a run. Accuracies are shares in [0, 1] (None = not measured at this step);
    `num_samples` is the number of scored samples behind each accuracy: one int for both, or
    {"id": n, "ood": m}. For avg@k that is questions x k (GPQA-Diamond avg@3: 198 x 3 = 594)."""

    step: int
    id_accuracy: float | None
    ood_accuracy: float | None
    response_tokens_mean: float | None
    num_samples: int | Mapping[str, int]

    def __post_init__(self) -> None:
        problems = []
        if not _is_int(self.step, 0):
            problems.append(f"step must be an integer >= 0, got step={self.step!r}")
        for name in ("id_accuracy", "ood_accuracy"):
            value = getattr(self, name)
            if value is not None and not (_is_number(value) and 0 <= value <= 1):
                problems.append(
                    f"{name} must be a number in [0, 1] or None/null, got {name}={value!r}"
                    " (a share, not a percentage: 45% is 0.45)"
                )
        length = self.response_tokens_mean
        if length is not None and not (_is_number(length) and length >= 0):
            problems.append(f"response_tokens_mean must be a number >= 0 or None/null, got {length!r}")
        problems += self._check_num_samples()
        if problems:
            raise ValueError(f"invalid eval point at step {self.step!r}: " + "; ".join(problems))
        if isinstance(self.num_samples, Mapping):
            object.__setattr__(self, "num_samples", dict(self.num_samples))

    def _check_num_samples(self) -> list[str]:
        ns = self.num_samples
        if not isinstance(ns, Mapping):
            ok = _is_int(ns, 1)
            return [] if ok else [f"num_samples must be an integer > 0 or a mapping, got num_samples={ns!r}"]
        problems = [
            f"num_samples has unknown key {key!r}; use 'id' and 'ood'"
            for key in ns
            if key not in _METRIC_NAMES
        ]
        for key in ("id", "ood"):
            if key in ns and not _is_int(ns[key], 1):
                problems.append(f"num_samples[{key!r}] must be an integer > 0, got {ns[key]!r}")
            elif key not in ns and self.accuracy(key) is not None:
                problems.append(f"num_samples has no {key!r} entry but {key}_accuracy is set; add it")
        return problems

    def accuracy(self, metric: str) -> float | None:
        """The accuracy for `metric` ("id" or "ood"), None when it was not measured."""
        return self.id_accuracy if metric == "id" else self.ood_accuracy

    def samples(self, metric: str) -> int:
        ns = self.num_samples
        return ns[metric] if isinstance(ns, Mapping) else ns


@dataclass(frozen=True)
class RegimeThresholds:
    """How large a change must be before it counts. The paper gives no thresholds; these are chosen so
    that eval noise cannot flip a label.

    z: binomial standard errors a difference must exceed. 2.0 is ~95% two-sided for one comparison; any
        z above sqrt(2) keeps one-SE noise on two points (2 SE apart) below the bar (2.83 SE at z=2).
    length_spike_ratio: the length has spiked once its peak is this many times the baseline length. 1.5
        is far above the eval-to-eval jitter of a mean over hundreds of responses (a few %) yet well
        below the several-fold growth of a base model imitating long-CoT targets.
    length_stable_tolerance: relative change between consecutive evals that still counts as "stable",
        and the fall from the peak that counts as "fallen". Long-CoT lengths have a standard deviation
        near their mean, so the mean over ~600 responses moves ~4% (1/sqrt(600)) by chance; 10% is about
        twice that. Raise it for evals with few responses.
    patience: consecutive evals, each significantly below the peak, before over-fitting is declared. One
        eval can be an unlucky draw; two in a row at z=2 on both ID and OOD is very unlikely by chance,
        and on the paper's doubling eval schedule it confirms the decline over one more interval.
    """

    z: float = 2.0
    length_spike_ratio: float = 1.5
    length_stable_tolerance: float = 0.10
    patience: int = 2

    def __post_init__(self) -> None:
        problems = []
        if not (_is_number(self.z) and self.z > 0):
            problems.append(f"z must be > 0, got z={self.z!r}")
        if not (_is_number(self.length_spike_ratio) and self.length_spike_ratio > 1):
            problems.append(
                f"length_spike_ratio must be > 1, got length_spike_ratio={self.length_spike_ratio!r}"
            )
        tol = self.length_stable_tolerance
        if not (_is_number(tol) and 0 < tol < 1):
            problems.append(f"length_stable_tolerance must be in (0, 1), got length_stable_tolerance={tol!r}")
        if not _is_int(self.patience, 1):
            problems.append(f"patience must be an integer >= 1, got patience={self.patience!r}")
        if problems:
            raise ValueError("invalid regime thresholds: " + "; ".join(problems))


@dataclass(frozen=True)
class RegimeVerdict:
    """The labels for one eval step. `reason` quotes the rule that fired and its numbers; `best_step` is
    the best checkpoint so far (see the module docstring), the one to keep when over-fitting says stop."""

    step: int
    training_regime: TrainingRegime
    length_stage: LengthStage
    reason: str
    recommendation: Recommendation
    best_step: int


def _series(points: Sequence[EvalPoint], metric: str) -> list[EvalPoint]:
    return [p for p in points if p.accuracy(metric) is not None]


def _value(point: EvalPoint, metric: str) -> float:
    return cast(float, point.accuracy(metric))  # only called on points that have the metric


def _margin(a: EvalPoint, b: EvalPoint, metric: str, z: float) -> float:
    """The smallest difference between a and b on `metric` that counts as significant."""
    se_a = standard_error(_value(a, metric), a.samples(metric))
    se_b = standard_error(_value(b, metric), b.samples(metric))
    return z * math.hypot(se_a, se_b)


def _above(a: EvalPoint, b: EvalPoint, metric: str, z: float) -> bool:
    """True when a's accuracy is significantly above b's."""
    return _value(a, metric) - _value(b, metric) > _margin(a, b, metric, z)


def _peak(series: Sequence[EvalPoint], metric: str) -> EvalPoint:
    return max(series, key=lambda p: (_value(p, metric), -p.step))


def _fmt(point: EvalPoint, metric: str) -> str:
    return f"{_METRIC_NAMES[metric]} {_value(point, metric):.3f} (step {point.step})"


def _check_history(history: Sequence[EvalPoint]) -> list[EvalPoint]:
    points = list(history)
    if not points:
        raise ValueError("history is empty; pass at least the step-0 baseline eval")
    for i, point in enumerate(points):
        if not isinstance(point, EvalPoint):
            raise ValueError(f"history item {i} is a {type(point).__name__}; pass EvalPoint objects")
    bad = [
        f"item {i}: step {b.step} after {a.step}"
        for i, (a, b) in enumerate(zip(points, points[1:], strict=False), 1)
        if b.step <= a.step
    ]
    if bad:
        raise ValueError(f"history steps must be strictly increasing ({'; '.join(bad)}); sort by step")
    return points


def best_step(history: Sequence[EvalPoint], thresholds: RegimeThresholds = RegimeThresholds()) -> int:
    """The best checkpoint so far: OOD-first (ID when no point has OOD), noise-tied evals split by the
    mean of their recorded accuracies, then the earlier step. The latest step when nothing was scored."""
    points = _check_history(history)
    metric = "ood" if _series(points, "ood") else "id"
    series = _series(points, metric)
    if not series:
        return points[-1].step
    top = _peak(series, metric)
    near = [
        p for p in series if _value(top, metric) - _value(p, metric) <= _margin(top, p, metric, thresholds.z)
    ]

    def mean_accuracy(p: EvalPoint) -> float:
        values = [v for v in (p.ood_accuracy, p.id_accuracy) if v is not None]
        return sum(values) / len(values)

    return max(near, key=lambda p: (mean_accuracy(p), -p.step)).step


def _length_stage(points: list[EvalPoint], dip: str | None, th: RegimeThresholds) -> tuple[LengthStage, str]:
    """(stage, reason) by the length rules of the module docstring. `dip` names the primary
    accuracy when it is significantly below baseline (used only when the length is missing)."""
    latest = points[-1]
    if latest.response_tokens_mean is None:
        note = f"length missing at step {latest.step}, stage judged from accuracy only"
        if dip is not None:
            return "surface_imitation", f"{note}: {dip} is in the dip below baseline"
        return "genuine_reasoning", f"{note}: no dip below baseline"
    with_length = [p for p in points if p.response_tokens_mean is not None]
    # Floored at one token so that ratios stay defined for a (degenerate) all-empty eval.
    lengths = [max(p.response_tokens_mean, 1.0) for p in points if p.response_tokens_mean is not None]
    base, tol = lengths[0], th.length_stable_tolerance
    peak_i, settled_i = 0, None
    for i in range(1, len(lengths)):
        if lengths[i] > lengths[peak_i]:
            peak_i = i
        spiked = lengths[peak_i] >= th.length_spike_ratio * base
        fallen = lengths[i] <= (1 - tol) * lengths[peak_i]
        if spiked and i - 1 > peak_i and fallen and abs(lengths[i] - lengths[i - 1]) <= tol * lengths[i - 1]:
            settled_i = i
            break
    k, cur, peak = len(lengths) - 1, lengths[-1], lengths[peak_i]
    ratio = f"{cur / base:.2f}x baseline {base:.0f}"
    if settled_i is not None:
        reason = (
            f"length settled at {lengths[settled_i]:.0f} tokens (step {with_length[settled_i].step}) after its "
            f"spike to {peak:.0f} (step {with_length[peak_i].step}); now {cur:.0f}"
        )
        low = min(lengths[settled_i:k]) if k > settled_i else cur
        if cur > (1 + tol) * low:  # the paper's over-fitting runs show this
            reason += f", rising again (+{cur / low - 1:.0%} over its post-settling low {low:.0f})"
        return "genuine_reasoning", reason
    if peak >= th.length_spike_ratio * base:
        where = f"its spike peak {peak:.0f} (step {with_length[peak_i].step})"
        detail = (
            "is spiking, at its peak" if peak_i == k else f"is below {where} but not stable within {tol:.0%}"
        )
        return "surface_imitation", f"length {cur:.0f} tokens ({ratio}) {detail}"
    if k >= 1 and cur > (1 + tol) * lengths[k - 1] and cur > (1 + tol) * base:
        detail = f"rising {lengths[k - 1]:.0f} -> {cur:.0f} tokens ({ratio}), spike not yet peaked"
        return "surface_imitation", f"length {detail}"
    spike = f"peak {peak / base:.2f}x < {th.length_spike_ratio}x"
    return "genuine_reasoning", f"length {cur:.0f} tokens ({ratio}) has not spiked ({spike})"


def _overfitting(points: list[EvalPoint], metrics: list[str], th: RegimeThresholds) -> str | None:
    """The over-fitting reason when every recorded accuracy meets rule 2, else None."""
    parts = []
    for metric in metrics:
        series = _series(points, metric)
        peak = _peak(series, metric)
        window = series[-th.patience :]
        if len(series) <= th.patience or peak is series[0]:
            return None
        if not all(_above(peak, p, metric, th.z) for p in window):
            return None
        drops = ", ".join(f"{_value(p, metric):.3f}" for p in window)
        bar = max(_margin(peak, p, metric, th.z) for p in window)
        parts.append(
            f"{_METRIC_NAMES[metric]} fell from its peak {_value(peak, metric):.3f} (step {peak.step}) to "
            f"{drops} over the last {th.patience} evals, each beyond its {th.z} SE threshold (<= {bar:.3f})"
        )
    return "; ".join(parts)


def classify(
    history: Sequence[EvalPoint], thresholds: RegimeThresholds = RegimeThresholds()
) -> RegimeVerdict:
    """The verdict for the latest point of `history` (history[0] is the step-0 baseline), using only the
    points given. The rules are listed in the module docstring."""
    th = thresholds
    points = _check_history(history)
    latest = points[-1]
    metrics = [m for m in ("ood", "id") if latest.accuracy(m) is not None]
    primary = metrics[0] if metrics else None
    below = primary is not None and _above(_series(points, primary)[0], latest, primary, th.z)
    dip = _METRIC_NAMES[primary] if below and primary is not None else None
    stage, length_reason = _length_stage(points, dip, th)
    best = best_step(points, th)

    def verdict(regime: TrainingRegime, reason: str) -> RegimeVerdict:
        recommendation: Recommendation = "stop" if regime == "overfitting" else "continue"
        return RegimeVerdict(latest.step, regime, stage, f"{reason}; {length_reason}", recommendation, best)

    if len(points) == 1:
        return verdict("underfitting", "baseline only: nothing to compare with yet")
    if primary is None:
        return verdict("underfitting", f"no ID or OOD accuracy at step {latest.step}: cannot judge yet")
    length_known = latest.response_tokens_mean is not None
    if not (length_known and stage == "surface_imitation"):
        overfit = _overfitting(points, metrics, th)
        if overfit is not None:
            return verdict("overfitting", f"{overfit}; stop, keep step {best}")
    series = _series(points, primary)
    base, cur = series[0], series[-1]
    margin = _margin(cur, base, primary, th.z)
    delta = _value(cur, primary) - _value(base, primary)
    bar = f"threshold {margin:.3f} = {th.z} SE"
    versus = f"{_fmt(cur, primary)} vs baseline {_value(base, primary):.3f}: {delta:+.3f}, {bar}"
    top = _peak(series, primary)
    fell_back = (
        stage == "genuine_reasoning" and _above(top, base, primary, th.z) and _above(top, cur, primary, th.z)
    )
    if delta < -margin and not fell_back:
        return verdict("underfitting", f"in the dip: {versus}; the paper finds it recovers with training")
    if delta <= margin and not fell_back:
        return verdict("underfitting", f"not significantly above baseline: {versus}")
    for metric in metrics:
        s = _series(points, metric)
        if len(s) >= 2 and s[-1] is _peak(s, metric) and _above(s[-1], s[-2], metric, th.z):
            rise = f"{_value(s[-2], metric):.3f} (step {s[-2].step}) -> {_value(s[-1], metric):.3f}"
            bar = f"{_margin(s[-1], s[-2], metric, th.z):.3f} = {th.z} SE"
            return verdict("underfitting", f"still improving: {_METRIC_NAMES[metric]} {rise}, beyond {bar}")
    if length_known and stage == "surface_imitation":
        return verdict("underfitting", f"above baseline ({versus}) but length is still in surface imitation")
    peaks = {m: _peak(_series(points, m), m) for m in metrics}
    past = [
        f"{_fmt(latest, m)} is below its peak {_value(peaks[m], m):.3f} (step {peaks[m].step})"
        for m in metrics
        if _above(peaks[m], latest, m, th.z)
    ]
    if past:
        why = f"beyond noise, but not for {th.patience} evals in a row on every accuracy yet"
        return verdict("optimal", f"past its best: {', '.join(past)}, {why}; {versus}")
    return verdict("optimal", f"above baseline and within noise of the best so far: {versus}")


def classify_history(
    history: Sequence[EvalPoint], thresholds: RegimeThresholds = RegimeThresholds()
) -> list[RegimeVerdict]:
    """One verdict per point; verdict i uses points 0..i only, exactly as it would have during training."""
    points = _check_history(history)
    return [classify(points[: i + 1], thresholds) for i in range(len(points))]

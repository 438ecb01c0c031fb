"""The training-regime classifier on synthetic histories shaped like arXiv 2604.06628's curves.

Sample counts are realistic: ID = MATH500 avg@3 (500 x 3 = 1500 samples), OOD = GPQA-Diamond avg@3
(198 x 3 = 594), AIME-sized evals n = 30. Noise tests move points by one standard error (or three AIME
problems) and require the labels to stay put.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import get_args

import pytest

from sftlab.training_regime import (
    LENGTH_STAGE_CODES,
    TRAINING_REGIME_CODES,
    EvalPoint,
    LengthStage,
    RegimeThresholds,
    TrainingRegime,
    best_step,
    classify,
    classify_history,
    standard_error,
)

N = {"id": 1500, "ood": 594}
STEPS = (0, 10, 20, 40, 80, 160, 320, 480, 640, 800, 960)
# Baseline, OOD dip while length spikes (10-20), recovery (40-160), length settled and plateau (320),
# peak (480), then ID and OOD fall while length rises again (640-960): the over-fitting stress run.
ID = (0.50, 0.56, 0.62, 0.70, 0.76, 0.80, 0.80, 0.84, 0.78, 0.74, 0.72)
OOD = (0.40, 0.33, 0.30, 0.38, 0.48, 0.52, 0.53, 0.60, 0.50, 0.42, 0.40)
LENGTH = (600, 1500, 2600, 3000, 2000, 1700, 1650, 1600, 1900, 2300, 2700)
DIP, RECOVERED, OVERFIT = 3, 7, 11  # prefix lengths of scenarios (a), (b), (c)
PEAK_STEP = 480


def history(ids=ID, oods=OOD, lengths=LENGTH, n=N, steps=STEPS) -> list[EvalPoint]:
    return [EvalPoint(s, i, o, length, n) for s, i, o, length in zip(steps, ids, oods, lengths, strict=False)]


def labels(verdict) -> tuple[str, str, str]:
    return verdict.training_regime, verdict.length_stage, verdict.recommendation


def test_a_dip_with_rising_length_is_underfitting_surface_imitation():
    verdict = classify(history()[:DIP])
    assert labels(verdict) == ("underfitting", "surface_imitation", "continue")
    assert verdict.step == 20
    assert "dip" in verdict.reason and "0.300" in verdict.reason and "spiking" in verdict.reason


def test_b_recovery_with_settled_length_is_optimal_genuine_reasoning():
    verdict = classify(history()[:RECOVERED])
    assert labels(verdict) == ("optimal", "genuine_reasoning", "continue")
    assert verdict.best_step == 320
    assert "settled at 1650" in verdict.reason


def test_b_recovered_accuracy_with_unsettled_length_is_still_underfitting():
    ids = ID[:5] + (0.765,) + ID[6:]  # step 160: no longer improving, length still falling fast
    verdict = classify(history(ids=ids)[:6])
    assert labels(verdict) == ("underfitting", "surface_imitation", "continue")
    assert "surface imitation" in verdict.reason


def test_c_late_decline_with_length_rising_again_is_overfitting():
    verdict = classify(history()[:OVERFIT])
    assert labels(verdict) == ("overfitting", "genuine_reasoning", "stop")
    assert verdict.best_step == PEAK_STEP
    assert "rising again" in verdict.reason and "0.600 (step 480)" in verdict.reason


def test_c_whole_run_labels_follow_the_paper():
    regimes = [v.training_regime for v in classify_history(history())]
    stages = [v.length_stage for v in classify_history(history())]
    # 480 is a new best (still improving); 640 is past the peak for one eval only (patience 2).
    assert regimes == ["underfitting"] * 6 + [
        "optimal",
        "underfitting",
        "optimal",
        "overfitting",
        "overfitting",
    ]
    assert stages == ["genuine_reasoning"] + ["surface_imitation"] * 5 + ["genuine_reasoning"] * 5
    assert "past its best" in classify(history()[:9]).reason


def perturbed(points: list[EvalPoint], id_signs, ood_signs) -> list[EvalPoint]:
    """Each accuracy moved by one binomial standard error in the given direction."""
    out = []
    for p, si, so in zip(points, id_signs, ood_signs, strict=True):
        id_ = min(1.0, max(0.0, p.id_accuracy + si * standard_error(p.id_accuracy, N["id"])))
        ood = min(1.0, max(0.0, p.ood_accuracy + so * standard_error(p.ood_accuracy, N["ood"])))
        out.append(replace(p, id_accuracy=id_, ood_accuracy=ood))
    return out


def sign_patterns(k: int) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    alternating = tuple((-1) ** i for i in range(k))
    flipped = tuple(-s for s in alternating)
    fixed = [(1,) * k, (-1,) * k, alternating, flipped]
    patterns = [(a, b) for a in fixed for b in fixed]
    rng = random.Random(0)
    patterns += [(tuple(rng.choice((-1, 1)) for _ in range(k)),) * 2 for _ in range(64)]
    patterns += [tuple(tuple(rng.choice((-1, 1)) for _ in range(k)) for _ in range(2)) for _ in range(64)]
    return patterns


@pytest.mark.parametrize("prefix", [DIP, RECOVERED, OVERFIT], ids=["a-dip", "b-optimal", "c-overfit"])
def test_d_one_standard_error_of_noise_does_not_flip_labels(prefix):
    clean = history()[:prefix]
    expected = classify(clean)
    for id_signs, ood_signs in sign_patterns(prefix):
        noisy = classify(perturbed(clean, id_signs, ood_signs))
        assert labels(noisy) == labels(expected), (id_signs, ood_signs, noisy.reason)
        if prefix == OVERFIT:
            assert noisy.best_step == PEAK_STEP, (id_signs, ood_signs)


def test_d_noise_test_can_fail_at_three_standard_errors():
    """Guards the noise test itself: three SE of adversarial noise does flip the optimal plateau."""
    clean = history()[:RECOVERED]
    push = tuple(3 if i == RECOVERED - 1 else -3 for i in range(RECOVERED))
    assert classify(perturbed(clean, push, push)).training_regime != classify(clean).training_regime


def test_e_baseline_only():
    verdict = classify(history()[:1])
    assert labels(verdict) == ("underfitting", "genuine_reasoning", "continue")
    assert verdict.reason.startswith("baseline only") and verdict.best_step == 0 and verdict.step == 0


AIME_LENGTH = (500, 1500, 2500, 2800, 1900, 1700, 1650)
AIME_CORRECT = (2, 1, 3, 9, 13, 14, 14)  # problems solved out of 30; ID only


def aime(correct) -> list[EvalPoint]:
    return [
        EvalPoint(s, c / 30, None, length, 30)
        for s, c, length in zip(STEPS, correct, AIME_LENGTH, strict=False)
    ]


def test_f_three_aime_problems_never_flip_a_label():
    expected = classify(aime(AIME_CORRECT))
    assert labels(expected) == ("optimal", "genuine_reasoning", "continue")
    for i in range(len(AIME_CORRECT)):
        for delta in (-3, 3):
            changed = list(AIME_CORRECT)
            changed[i] = min(30, max(0, changed[i] + delta))
            assert labels(classify(aime(changed))) == labels(expected), (i, delta)


def test_f_three_aime_problems_are_neither_a_gain_nor_a_decline():
    gain = classify(aime((6, 6, 6, 6, 6, 6, 9)))
    assert gain.training_regime == "underfitting" and "not significantly above baseline" in gain.reason
    decline = classify(aime((2, 1, 3, 9, 14, 11, 11)))  # two evals 3 problems below the peak
    assert decline.training_regime == "optimal" and "past its best" not in decline.reason


def test_standard_error_is_never_zero_and_shrinks_with_n():
    assert standard_error(0.0, 30) > 0.02 and standard_error(1.0, 30) > 0.02
    assert standard_error(0.5, 594) == pytest.approx((0.25 / 594) ** 0.5, rel=1e-9)
    assert standard_error(0.3, 1500) < standard_error(0.3, 594) < standard_error(0.3, 30)


def test_sample_count_decides_significance():
    small = [EvalPoint(0, 0.5, 0.40, None, 50), EvalPoint(10, 0.6, 0.46, None, 50)]
    large = [EvalPoint(0, 0.5, 0.40, None, 10_000), EvalPoint(10, 0.6, 0.46, None, 10_000)]
    assert "not significantly above baseline" in classify(small).reason
    assert "not significantly above baseline" not in classify(large).reason


def test_overfitting_needs_both_accuracies_to_fall():
    oods = OOD[:9] + (0.58, 0.59)  # OOD holds near its peak while ID falls
    verdict = classify(history(oods=oods))
    assert verdict.training_regime == "optimal" and verdict.recommendation == "continue"
    assert "ID 0.720 (step 960) is below its peak" in verdict.reason


def test_overfitting_needs_ood_to_fall_too():
    ids = ID[:9] + (0.83, 0.84)  # ID holds near its peak while OOD falls
    verdict = classify(history(ids=ids))
    assert verdict.training_regime != "overfitting" and verdict.recommendation == "continue"


def test_a_fall_from_an_early_peak_while_length_still_spikes_is_not_overfitting():
    ids, oods = (0.50, 0.65, 0.55, 0.50), (0.40, 0.48, 0.38, 0.36)
    verdict = classify(history(ids, oods, (600, 1500, 2600, 3000)))
    assert labels(verdict) == ("underfitting", "surface_imitation", "continue")


def test_falling_below_the_untrained_baseline_is_not_overfitting_even_without_length():
    verdict = classify(history((0.50, 0.45, 0.40), (0.40, 0.33, 0.30), (None, None, None)))
    assert labels(verdict) == ("underfitting", "surface_imitation", "continue")
    assert "dip" in verdict.reason and "judged from accuracy only" in verdict.reason


def test_settled_length_stays_genuine_reasoning_when_it_rises_past_the_old_peak():
    lengths = LENGTH[:10] + (3500,)
    verdict = classify(history(lengths=lengths))
    assert verdict.length_stage == "genuine_reasoning" and "rising again" in verdict.reason


def test_patience_sets_how_many_declining_evals_are_needed():
    one_decline = history()[:9]
    assert classify(one_decline).training_regime == "optimal"
    assert classify(one_decline, RegimeThresholds(patience=1)).training_regime == "overfitting"
    assert classify(history(), RegimeThresholds(patience=3)).training_regime == "overfitting"
    # With 4, the window reaches back to the peak itself. OOD is back at baseline, but after a peak
    # significantly above it, which is a decline (past its best), not the dip of an under-trained model.
    waiting = classify(history(), RegimeThresholds(patience=4))
    assert waiting.training_regime == "optimal" and "past its best" in waiting.reason


def test_falling_below_baseline_during_the_spike_is_the_dip_not_overfitting():
    ids = (0.50, 0.40, 0.35, 0.30)
    oods = (0.40, 0.30, 0.25, 0.22)
    verdict = classify(history(ids, oods, (600, 1500, 2600, 3000)))
    assert labels(verdict) == ("underfitting", "surface_imitation", "continue")
    assert "dip" in verdict.reason


def test_missing_length_is_judged_from_accuracy_and_said():
    no_length = (None,) * len(STEPS)
    dip = classify(history(lengths=no_length)[:DIP])
    assert labels(dip) == ("underfitting", "surface_imitation", "continue")
    assert "judged from accuracy only" in dip.reason
    recovered = classify(history(lengths=no_length)[:RECOVERED])
    assert labels(recovered) == ("optimal", "genuine_reasoning", "continue")


def test_length_that_never_spikes_is_genuine_reasoning():
    verdict = classify(history(lengths=(600, 640, 660, 650, 655, 650, 648))[:RECOVERED])
    assert verdict.length_stage == "genuine_reasoning" and "has not spiked" in verdict.reason


def test_best_step_prefers_ood_then_mean_accuracy_within_noise_then_earlier_step():
    within_noise = [EvalPoint(0, 0.5, 0.40, None, N), EvalPoint(10, 0.80, 0.52, None, N)]
    within_noise.append(EvalPoint(20, 0.70, 0.53, None, N))  # OOD +0.01 is noise, ID -0.10 is not
    assert best_step(within_noise) == 10
    tie = [
        EvalPoint(0, 0.5, 0.4, None, N),
        EvalPoint(10, 0.6, 0.5, None, N),
        EvalPoint(20, 0.6, 0.5, None, N),
    ]
    assert best_step(tie) == 10
    id_only = [EvalPoint(s, a, None, None, 1500) for s, a in ((0, 0.5), (10, 0.7), (20, 0.6))]
    assert best_step(id_only) == 10


def test_classify_history_rows_use_only_their_prefix():
    points = history()
    verdicts = classify_history(points)
    assert len(verdicts) == len(points)
    for i, verdict in enumerate(verdicts):
        assert verdict == classify(points[: i + 1])


def test_codes_cover_every_label():
    assert set(TRAINING_REGIME_CODES) == set(get_args(TrainingRegime))
    assert set(LENGTH_STAGE_CODES) == set(get_args(LengthStage))
    assert TRAINING_REGIME_CODES["overfitting"] == 2 and LENGTH_STAGE_CODES["genuine_reasoning"] == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(ood_accuracy=45.0), "ood_accuracy=45.0"),
        (dict(id_accuracy=-0.1), "id_accuracy=-0.1"),
        (dict(num_samples=0), "num_samples=0"),
        (dict(num_samples={"id": 1500}), "no 'ood' entry"),
        (dict(num_samples={"id": 1500, "ood": 594, "gpqa": 1}), "unknown key 'gpqa'"),
        (dict(step=-1), "step=-1"),
        (dict(response_tokens_mean=float("nan")), "response_tokens_mean"),
    ],
)
def test_eval_point_errors_name_the_value(kwargs, message):
    fields = dict(step=0, id_accuracy=0.5, ood_accuracy=0.4, response_tokens_mean=600.0, num_samples=N)
    with pytest.raises(ValueError, match=message):
        EvalPoint(**{**fields, **kwargs})


def test_threshold_and_history_errors():
    with pytest.raises(ValueError, match=r"z=0.*patience=0"):
        RegimeThresholds(z=0, patience=0)
    with pytest.raises(ValueError, match="length_spike_ratio=0.9"):
        RegimeThresholds(length_spike_ratio=0.9)
    with pytest.raises(ValueError, match="history is empty"):
        classify([])
    points = history()[:3]
    with pytest.raises(ValueError, match="strictly increasing.*step 10 after 20"):
        classify([points[0], points[2], points[1]])

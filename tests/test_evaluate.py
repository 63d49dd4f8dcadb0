"""The paired comparison of two models on the same images (edgedigits.evaluate.paired)."""

from __future__ import annotations

import numpy as np
import pytest

from edgedigits.evaluate import paired


def answers(y: np.ndarray, wrong: list[int]) -> np.ndarray:
    """`y` with the images at `wrong` read as the next digit."""
    out = y.copy()
    out[wrong] = (out[wrong] + 1) % 10
    return out


def test_counts_only_the_images_one_model_reads_right_and_gives_the_exact_p_value():
    y = np.arange(100) % 10
    both_wrong = [0, 1, 2]
    a = answers(y, both_wrong + [10])  # B alone misses 20-28, A alone misses 10
    b = answers(y, both_wrong + list(range(20, 29)))
    split = paired(y, a, b)
    assert (split["only_a_right"], split["only_b_right"]) == (9, 1)
    assert split["mcnemar_p"] == pytest.approx(2 * (1 + 10) / 2 ** 10)  # two-sided binomial tail of 1 in 10
    assert paired(y, b, a)["mcnemar_p"] == split["mcnemar_p"]


def test_models_that_agree_everywhere_are_not_different():
    y = np.arange(50) % 10
    same = answers(y, [3, 7])
    assert paired(y, same, same) == {"only_a_right": 0, "only_b_right": 0, "mcnemar_p": 1.0}

"""The agreement and interval statistics against published worked examples."""

import pytest

from apps.feedback.agreement import cohen_kappa, krippendorff_alpha, mean_interval, wilson_interval

N = None
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: four observers, twelve
# units, values 1–5, with missing data. Published: nominal 0.743, ordinal 0.815, interval 0.849.
OBSERVERS = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
    [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N],
]
UNITS = list(zip(*OBSERVERS, strict=True))


@pytest.mark.parametrize("level, published", [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_krippendorff_alpha_matches_the_published_example(level, published):
    assert round(krippendorff_alpha(UNITS, level), 3) == published


def test_krippendorff_alpha_of_perfect_agreement_is_one_and_of_nothing_is_none():
    assert krippendorff_alpha([[1, 1], [2, 2], [3, 3, None]], "nominal") == 1.0
    assert krippendorff_alpha([[1], [2, None]], "nominal") is None  # no pairable unit
    assert krippendorff_alpha([[1, 1], [1, 1]], "interval") is None  # no variation: undefined


def test_krippendorff_alpha_works_on_labels_and_booleans():
    labels = [["a", "a"], ["b", "b"], ["a", "b"], ["c", "c"]]
    assert 0 < krippendorff_alpha(labels, "nominal") < 1
    thumbs = [[True, True], [False, False], [True, False]]
    assert krippendorff_alpha(thumbs, "nominal") == pytest.approx(
        krippendorff_alpha([[1, 1], [0, 0], [1, 0]])
    )


def test_cohen_kappa_matches_the_textbook_example():
    # 50 proposals read by two readers: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no;
    # p_o = 0.7, p_e = 0.5, kappa = 0.4 (the worked example of Cohen's kappa in Wikipedia and most texts).
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    assert cohen_kappa(pairs) == pytest.approx(0.4)
    # The same 60 % observed agreement with different marginals (the same article's second example):
    # 45/15/25/15 → 0.1304 and 25/35/5/35 → 0.2593.
    for (a, b, c, d), published in [((45, 15, 25, 15), 0.1304), ((25, 35, 5, 35), 0.2593)]:
        pairs = [("y", "y")] * a + [("y", "n")] * b + [("n", "y")] * c + [("n", "n")] * d
        assert round(cohen_kappa(pairs), 4) == published


def test_wilson_interval_matches_the_published_values():
    # Newcombe (1998), table I: 81/263 → 0.2553 to 0.3662; 15/148 → 0.0624 to 0.1605.
    low, high = wilson_interval(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    low, high = wilson_interval(15, 148)
    assert (round(low, 4), round(high, 4)) == (0.0624, 0.1605)
    assert wilson_interval(0, 0) is None


def test_mean_interval_uses_student_t():
    low, high = mean_interval([1, 2, 3, 4, 5])  # mean 3, s = 1.5811, t(4) = 2.776
    assert (round(low, 3), round(high, 3)) == (1.037, 4.963)
    assert mean_interval([3]) is None

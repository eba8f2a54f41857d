"""Choosing the review threshold, and writing it into a spec without disturbing the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from shipyard.errors import SpecInvalid
from shipyard.services.calibration import TargetUnreachable, choose_threshold
from shipyard.spec.edit import set_policy_value


def test_lowest_threshold_reaching_the_target_wins() -> None:
    # Sorted by confidence: 0.9 ok, 0.8 ok, 0.7 wrong, 0.6 ok, 0.5 wrong.
    # Answer >= 0.8: 2/2 = 1.0; >= 0.6: 3/4 = 0.75; >= 0.5: 3/5 = 0.6.
    confidences = [0.5, 0.9, 0.6, 0.8, 0.7]
    correct = [False, True, True, True, False]
    assert choose_threshold(confidences, correct, 0.75).threshold == 0.6
    result = choose_threshold(confidences, correct, 0.9)
    assert (result.threshold, result.coverage, result.accuracy) == (0.8, 0.4, 1.0)


def test_equal_confidences_are_answered_together() -> None:
    # Cutting between the two 0.8 scores is impossible: both or neither are answered.
    # >= 0.9: 1/1; >= 0.8: 2/3 = 0.667 (never 2/2 by answering only the right 0.8).
    result = choose_threshold([0.8, 0.8, 0.9], [True, False, True], 0.6)
    assert (result.threshold, result.coverage) == (0.8, 1.0)
    assert choose_threshold([0.8, 0.8, 0.9], [True, False, True], 0.7).threshold == 0.9


def test_unreachable_target_is_reported() -> None:
    with pytest.raises(TargetUnreachable, match=r"best 0\.500"):
        choose_threshold([0.9, 0.8], [False, True], 0.99)


@given(
    st.lists(st.tuples(st.floats(0, 1), st.booleans()), min_size=1, max_size=60),
    st.floats(0.05, 1.0),
)
def test_chosen_threshold_meets_the_target(pairs: list[tuple[float, bool]], target: float) -> None:
    confidences = [c for c, _ in pairs]
    correct = [ok for _, ok in pairs]
    try:
        result = choose_threshold(confidences, correct, target)
    except TargetUnreachable:
        return
    answered = [ok for c, ok in pairs if c >= result.threshold]
    assert sum(answered) / len(answered) >= target - 1e-9


SPEC = """\
name: t  # a comment that must survive
policy:
  roles: [caller]
  review_below: 0.3   # tuned by hand
evaluation: {}
"""


def test_existing_value_is_replaced_in_place(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(SPEC)
    set_policy_value(path, "review_below", "0.47")
    assert path.read_text() == SPEC.replace("0.3 ", "0.47 ")


def test_missing_value_is_added_to_the_policy_block(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("name: t\npolicy:\n  roles: [caller]\nother: 1\n")
    set_policy_value(path, "review_below", "0.5")
    assert yaml.safe_load(path.read_text())["policy"] == {"roles": ["caller"], "review_below": 0.5}


def test_missing_policy_block_is_appended(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("name: t\n")
    set_policy_value(path, "review_below", "0.5")
    assert yaml.safe_load(path.read_text()) == {"name": "t", "policy": {"review_below": 0.5}}


def test_inline_policy_without_the_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("name: t\npolicy: {roles: [caller]}\n")
    with pytest.raises(SpecInvalid, match="by hand"):
        set_policy_value(path, "review_below", "0.5")


def test_inline_policy_value_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("policy: {roles: [caller], review_below: 0.2}\n")
    set_policy_value(path, "review_below", "0.61")
    assert path.read_text() == "policy: {roles: [caller], review_below: 0.61}\n"


def test_threshold_is_short_but_selects_exactly_the_chosen_cases() -> None:
    # A tiny lower confidence must not slip under a threshold rounded down to 0.0.
    result = choose_threshold([1.0, 1.0, 1.0, 1e-200, 0.0], [True, True, True, False, False], 0.75)
    assert 0.0 < result.threshold <= 1e-200 or result.threshold == 1.0
    confidences = [0.91234, 0.8, 0.5]
    assert choose_threshold(confidences, [True, True, False], 0.9).threshold == 0.8


def test_empty_value_gets_the_space_yaml_needs(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("policy:\n  review_below:\n  roles: [caller]\n")
    set_policy_value(path, "review_below", "0.61")
    assert yaml.safe_load(path.read_text())["policy"] == {"review_below": 0.61, "roles": ["caller"]}

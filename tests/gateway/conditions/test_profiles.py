"""Profile models: validation, presets with their sources, JSON round trip."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.conditions import PRESETS, Direction, Limit, Profile, Quantity, Rule, RuleKind


def test_presets_name_their_source_and_the_issues_ranges() -> None:
    assert {"pharma-2-8", "frozen", "ambient-15-25", "who-pqs-refrigerator"} <= set(PRESETS)
    for name, p in PRESETS.items():
        assert p.name == name
        assert p.source, name
        assert Profile.model_validate_json(p.model_dump_json()) == p
    ranges = {
        name: sorted(limit.threshold for limit in PRESETS[name].temperature_c)
        for name in ("pharma-2-8", "frozen", "ambient-15-25")
    }
    assert ranges == {
        "pharma-2-8": [2.0, 8.0],
        "frozen": [-25.0, -15.0],
        "ambient-15-25": [15.0, 25.0],
    }
    who = {limit.name: limit for limit in PRESETS["who-pqs-refrigerator"].temperature_c}
    assert who["heat"].rules == (Rule(kind=RuleKind.CONSECUTIVE, duration_s=36000),)
    assert not who["heat"].is_beyond(8.0)
    assert who["heat"].is_beyond(8.1)
    assert who["freeze"].rules == (Rule(kind=RuleKind.CONSECUTIVE, duration_s=3600),)
    assert who["freeze"].is_beyond(-0.5)
    assert not who["freeze"].is_beyond(-0.4)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"kind": "instant", "duration_s": 5}, "instant rule has no duration"),
        ({"kind": "consecutive"}, "needs duration_s"),
        ({"kind": "cumulative", "duration_s": -1}, "greater than or equal"),
        ({"kind": "sometimes"}, "kind"),
    ],
)
def test_bad_rules_are_refused(data: dict[str, object], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        Rule.model_validate(data)


def test_limits_and_profiles_refuse_what_makes_no_sense() -> None:
    instant = {"kind": "instant"}
    with pytest.raises(ValidationError, match="duplicate rules"):
        Limit.model_validate({"direction": "above", "threshold": 8, "rules": [instant, instant]})
    with pytest.raises(ValidationError, match="rules"):
        Limit.model_validate({"direction": "above", "threshold": 8, "rules": []})
    with pytest.raises(ValidationError, match="hysteresis"):
        Limit.model_validate(
            {"direction": "above", "threshold": 8, "rules": [instant], "hysteresis": -1}
        )
    with pytest.raises(ValidationError, match="threshold"):
        Limit.model_validate({"direction": "above", "threshold": "nan", "rules": [instant]})
    high = {"direction": "above", "threshold": 8, "rules": [instant]}
    with pytest.raises(ValidationError, match="duplicate limit names"):
        Profile.model_validate({"name": "p", "temperature_c": [high, high]})
    with pytest.raises(ValidationError, match="Extra inputs"):
        Profile.model_validate({"name": "p", "colour": "blue"})
    with pytest.raises(ValidationError, match="name"):
        Profile.model_validate({"name": "Has Spaces"})
    p = Profile.model_validate(
        {"name": "p", "temperature_c": [high, {**high, "name": "very-high", "threshold": 12}]}
    )
    assert [limit.name for limit in p.limits(Quantity.TEMPERATURE_C)] == ["above", "very-high"]
    assert p.limits(Quantity.HUMIDITY_PCT) == ()
    assert p.temperature_c[0].direction is Direction.ABOVE
    with pytest.raises(ValidationError):
        p.__class__.model_validate({**p.model_dump(), "max_gap_s": 0})

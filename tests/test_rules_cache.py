"""The rules' answers per release are worked out once (rules._at and the other caches): a
cached answer must be the one for the release asked, whatever was asked before.

Each test asks releases alternately on both sides of a boundary and compares with the
answer worked out from the table's data here, without the cache."""
from kubectl_virtio import rules as R
from kubectl_virtio import versions
from kubectl_virtio.rules import NT, T, UNSUPPORTED, Era, Read, Rule


def _before(v):
    """The release just before a boundary (the last patch, or a high one of the last minor)."""
    major, minor, patch = v
    if patch:
        return major, minor, patch - 1
    if minor:
        return major, minor - 1, 99
    return major - 1, 99, 99


def _in(era, v):
    return (era.since is None or v >= era.since) and (era.until is None or v < era.until)


def _models(rule, v):
    for e in rule.eras:
        if _in(e, v):
            return e.models or rule.models
    return rule.models


def _alternating(rule):
    edges = sorted({b for e in rule.eras for b in (e.since, e.until) if b is not None})
    out = []
    for b in edges:
        out += [_before(b), b, _before(b), b]
    return out + [versions.OLDEST, versions.NEWEST, (9, 0, 0), versions.OLDEST]


def test_models_and_holds_follow_the_release_when_releases_alternate():
    for rule in R.RULES:
        for v in _alternating(rule):
            assert rule.models_at(v) == _models(rule, v), (rule.id, v)
            assert rule.holds_for(v) == any(_in(e, v) for e in rule.eras), (rule.id, v)
            era = rule.era(v)
            assert era is next((e for e in rule.eras if _in(e, v)), None), (rule.id, v)
            for arch in R.ARCHES:
                for flag in (False, True):
                    models = _models(rule, v)
                    assert rule.model(flag, arch, v) == models[arch][flag], (rule.id, v, arch, flag)


def test_known_answers_on_both_sides_of_era_boundaries_asked_in_turn():
    """Named answers (not derived from the table): a cache keyed by the row alone, or that
    kept the first release it saw, fails here."""
    watchdog, no_bus, balloon = R.rule("watchdog"), R.rule("disk.no-bus"), R.rule("memballoon.virtio")
    for _ in range(3):
        assert watchdog.model(False, "arm64", (0, 59, 2)) == "i6300esb"
        assert watchdog.model(False, "arm64", (1, 0, 0)) == UNSUPPORTED
        assert watchdog.model(False, "s390x", (1, 5, 0)) == "i6300esb"
        assert watchdog.model(False, "s390x", (1, 5, 1)) == "diag288"
        assert no_bus.model(True, "arm64", (0, 56, 1)) is None
        assert no_bus.model(True, "arm64", (0, 57, 0)) == T
        assert no_bus.model(False, "arm64", (0, 57, 0)) == NT
        assert not balloon.holds_for((0, 37, 3)) and balloon.holds_for((0, 38, 0))


def test_a_rule_outside_the_table_is_worked_out_from_its_own_eras():
    """A Rule built elsewhere (same id as a row) never gets the table row's cached answers."""
    row = R.rule("watchdog")
    other = Rule("watchdog", "watchdog", "x", R._fixed("other"),
                 (Era((1, 2, 0), None, (Read("v1.2.0", "f", "g"),), models=R._fixed("late")),), reason="x")
    for v in ((1, 0, 0), (1, 2, 0), (1, 0, 0), (1, 2, 0)):
        assert row.holds_for(v)
        assert other.holds_for(v) == (v >= (1, 2, 0))
        assert other.model(False, "amd64", v) == ("late" if v >= (1, 2, 0) else "other")
        assert row.model(False, "amd64", v) == "i6300esb"


def test_a_version_that_is_not_a_tuple_is_answered_uncached():
    rule = R.rule("graphics.vnc")  # one era with no bounds: holds whatever the release
    assert rule.holds_for([1, 9, 0]) and rule.model(False, "amd64", [1, 9, 0]) is None


def test_era_span_is_its_releases():
    for rule in R.RULES:
        for e in rule.eras:
            assert e.span == versions.Span(e.since, e.until)
            assert "span" not in repr(e)

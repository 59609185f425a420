"""record.Record / Frozen: the plain classes that replaced the dataclasses keep their meaning."""
import importlib
import inspect
import pkgutil

import pytest

import kubectl_virtio
from kubectl_virtio import context as C
from kubectl_virtio import domain as D
from kubectl_virtio import record, rules as R, versions as V


def _records():
    for m in pkgutil.iter_modules(kubectl_virtio.__path__):
        if m.name == "__main__":
            continue
        mod = importlib.import_module("kubectl_virtio." + m.name)
        for obj in vars(mod).values():
            if isinstance(obj, type) and issubclass(obj, record.Record) and obj.__module__ == mod.__name__ \
                    and obj not in (record.Record, record.Frozen):
                yield obj


RECORDS = sorted(set(_records()), key=lambda c: c.__module__ + "." + c.__qualname__)


def test_the_records_are_found():
    names = {c.__qualname__ for c in RECORDS}
    assert {"Span", "Rule", "Device", "Domain", "VMSpec", "Explanation", "VMContext", "FleetInput",
            "ListOptions", "Plan", "GuestOS"} <= names


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__qualname__)
def test_fields_are_the_constructor_parameters_in_order(cls):
    """`==` and repr read `_fields`: it names every constructor parameter, in the order
    callers may pass them positionally (a computed field, like Rule.flag_driven, may follow)."""
    params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    assert list(cls._fields[:len(params)]) == params
    assert set(cls._no_repr) <= set(cls._fields)
    if "__slots__" in vars(cls):
        assert tuple(cls.__slots__) == tuple(cls._fields)


def test_equality_and_hash_as_the_dataclasses_had_them():
    assert V.Span((1, 0, 0), None) == V.Span((1, 0, 0)) and V.Span() != V.Span(None, (1, 0, 0))
    assert hash(V.Span((1, 0, 0))) == hash(V.Span((1, 0, 0), None))
    assert len({C.Note("info", "a"), C.Note("info", "a"), C.Note("warning", "a")}) == 2
    assert D.Device("disk", "a") == D.Device("disk", "a") and D.Device("disk", "a") != D.Device("disk", "b")
    assert D.Device("disk", "a") != ("disk", "a")
    with pytest.raises(TypeError):
        hash(D.Device("disk", "a"))  # mutable: not hashable, as a dataclass with eq
    # a mutable default is a new object for every instance
    a, b = D.Domain(), D.Domain()
    a.devices.append(D.Device("disk", "a"))
    assert b.devices == [] and a != b


def test_repr_names_the_fields():
    assert repr(V.Span((1, 0, 0))) == "Span(since=(1, 0, 0), until=None)"
    assert repr(C.Note("info", "x")) == "Note(severity='info', message='x')"
    r = repr(R.RULES[0])
    assert r.startswith("Rule(id=%r, kind=" % R.RULES[0].id) and "flag_driven=" in r


def test_copies_change_only_what_they_say():
    src = C.PreferenceSource(name="p", revision="rev", cluster_scoped=False)
    assert src.without_revision() == C.PreferenceSource(name="p", cluster_scoped=False)
    rel = C.Release(V.NEWEST, "flag", "img", (C.Note("info", "a"),))
    assert rel.with_note(C.Note("warning", "b")) == C.Release(V.NEWEST, "flag", "img",
                                                               (C.Note("info", "a"), C.Note("warning", "b")))
    assert rel.notes == (C.Note("info", "a"),)

"""Plain value classes: `==` and `repr` from a list of field names.

The core's records were dataclasses; `import dataclasses` costs about 25 ms in a fresh
interpreter (it imports inspect, ast, dis, tokenize) and each `@dataclass` about 1.3 ms more
(it generates and compiles its methods), paid on every start of the plugin (bench/explain).
These classes write their `__init__` by hand and name their fields in `_fields`, in the
constructor's order; this base compares and prints them as a dataclass did.
"""


class Record:
    """`==`: same class and equal fields (in `_fields` order); `repr`: the fields, except
    those in `_no_repr`.  Mutable, so not hashable."""

    __slots__ = ()
    _fields: tuple = ()
    _no_repr: tuple = ()

    def _values(self) -> tuple:
        return tuple(getattr(self, f) for f in self._fields)

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "%s(%s)" % (type(self).__qualname__, ", ".join(
            "%s=%r" % (f, getattr(self, f)) for f in self._fields if f not in self._no_repr))


class Frozen(Record):
    """A record never changed after it is built: hashable on its fields."""

    __slots__ = ()

    def __hash__(self) -> int:
        return hash(self._values())

"""KubeVirt release numbers, and the version ranges the translate rules hold for."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Tuple

Version = Tuple[int, int, int]

# The newest release whose converter logic the rules were checked against (docs/kubevirt.md,
# header: HEAD d923fdb815 has the same model logic as v1.9.0).
NEWEST: Version = (1, 9, 0)

_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+].*)?$")


def parse(text: str) -> Version:
    """'v1.9.0', '1.9', 'v0.36.1-rc.1' -> (1, 9, 0). Raises ValueError on anything else."""
    m = _VERSION_RE.match(text.strip())
    if not m:
        raise ValueError(f"invalid KubeVirt version {text!r}: expected vMAJOR.MINOR[.PATCH], e.g. v1.9.0")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def show(v: Version) -> str:
    return "v%d.%d.%d" % v


@dataclass(frozen=True)
class Span:
    """Releases [since, until): `until` None means 'and every later release'."""

    since: Optional[Version] = None
    until: Optional[Version] = None

    def holds(self, v: Version) -> bool:
        return (self.since is None or v >= self.since) and (self.until is None or v < self.until)

    def __str__(self) -> str:
        if self.since is None and self.until is None:
            return "all"
        if self.since is None:
            return "< " + show(self.until)
        if self.until is None:
            return ">= " + show(self.since)
        return "%s - %s" % (show(self.since), _last_before(self.until))


def _last_before(v: Version) -> str:
    major, minor, patch = v
    if patch:
        return "v%d.%d.%d" % (major, minor, patch - 1)
    return "v%d.%d.x" % (major, minor - 1) if minor else "v%d.x" % (major - 1)


ALL = (Span(),)

# useVirtioTransitional exists from v0.38.0 on, and in the backports v0.36.1 (PR #4763) and
# v0.37.2 (PR #4872); v0.36.0 and v0.37.0-v0.37.1 have no flag (docs/kubevirt.md §2).
V0_36_1, V0_37_0, V0_37_2, V0_38_0 = (0, 36, 1), (0, 37, 0), (0, 37, 2), (0, 38, 0)
WITH_FLAG = (Span(V0_36_1, V0_37_0), Span(V0_37_2, None))
WITHOUT_FLAG = (Span(None, V0_36_1), Span(V0_37_0, V0_37_2))


def holds(spans, v: Version) -> bool:
    return any(s.holds(v) for s in spans)


def describe(spans) -> str:
    return ", ".join(str(s) for s in spans)


def has_flag(v: Version) -> bool:
    return holds(WITH_FLAG, v)

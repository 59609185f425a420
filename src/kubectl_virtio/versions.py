"""KubeVirt release numbers, and the version ranges the translate rules hold for."""
from __future__ import annotations

import re
from typing import Optional, Tuple

from kubectl_virtio.record import Frozen

Version = Tuple[int, int, int]

# The releases whose KubeVirt source the rules were read against (docs/kubevirt-rules.md):
# from v0.36.0, the oldest, to v1.9.0, the newest.
OLDEST: Version = (0, 36, 0)
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


class Span(Frozen):
    """Releases [since, until): `until` None means 'and every later release'."""

    __slots__ = _fields = ("since", "until")

    def __init__(self, since: Optional[Version] = None, until: Optional[Version] = None):
        self.since, self.until = since, until

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
    if minor:
        return "v%d.%d.x" % (major, minor - 1)
    if major - 1 in LAST_MINOR:
        return "v%d.%d.x" % (major - 1, LAST_MINOR[major - 1])
    return "v%d.x" % (major - 1)


# The last minor line of a major release (the tags: v0.59.2 is the last v0.x).
LAST_MINOR = {0: 59}


ALL = (Span(),)

# useVirtioTransitional exists from v0.38.0 on, and in the backports v0.36.1 (PR #4763) and
# v0.37.2 (PR #4872); v0.36.0 and v0.37.0-v0.37.1 have no flag (docs/kubevirt-rules.md, "The flag").
V0_36_1, V0_37_0, V0_37_2, V0_38_0 = (0, 36, 1), (0, 37, 0), (0, 37, 2), (0, 38, 0)
WITH_FLAG = (Span(V0_36_1, V0_37_0), Span(V0_37_2, None))
WITHOUT_FLAG = (Span(None, V0_36_1), Span(V0_37_0, V0_37_2))


def holds(spans, v: Version) -> bool:
    return any(s.holds(v) for s in spans)


def describe(spans) -> str:
    return ", ".join(str(s) for s in spans)


def has_flag(v: Version) -> bool:
    return holds(WITH_FLAG, v)


# Where the release that decides the rules was read (CONTRACT: kubevirtVersion.source).
SOURCE_TEXT = {"flag": "--kubevirt-version", "vmi-launcher-image": "the VMI's launcher image",
               "launcher-pod-image": "the launcher pod's image", "kubevirt-cr": "the KubeVirt CR",
               "newest-known": "the newest release these rules know"}


def newer_than_known(v: Version) -> bool:
    return v > NEWEST


_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$")


def from_image(image: Optional[str]) -> Tuple[Optional[Version], str]:
    """The KubeVirt release in a virt-launcher image reference, and why there is none.

    'quay.io/kubevirt/virt-launcher:v1.6.4' -> ((1, 6, 4), ''); a tag followed by a digest
    ('...:v1.6.4@sha256:...') keeps the tag.  A bare digest ('...@sha256:...'), no tag, or
    a tag that is not a release ('latest', a nightly build) -> (None, reason).  virt-operator
    names the image `<registry>/<prefix>virt-launcher:<version>` (kubevirt
    pkg/virt-operator/resource/generate/components/daemonsets.go); a repository whose name
    does not end in `virt-launcher` is a downstream build set by VIRT_LAUNCHER_IMAGE, whose
    tag is its product's release, not KubeVirt's.
    """
    if not image or not isinstance(image, str):
        return None, "no image"
    ref = image.strip()
    if len(ref) > 1024:
        return None, "an image reference of %d characters" % len(ref)
    name, at, digest = ref.partition("@")
    last = name.rsplit("/", 1)[-1]
    repo, colon, tag = last.partition(":")
    if not colon:
        if at and _DIGEST_RE.match(digest):
            return None, "the image is pinned by digest (%s), which names no release" % _clip(digest, 20)
        return None, "the image has no tag"
    if not repo.endswith("virt-launcher"):
        return None, "image %s is not upstream's virt-launcher: its tag %s need not be a KubeVirt release" % (
            repo, _clip(tag, 40))
    try:
        return parse(tag), ""
    except ValueError:
        return None, "its tag %r is not a KubeVirt release" % _clip(tag, 40)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."
def rules_release(requested: Version, source: str = ""):
    """Which release's rules to show for a requested KubeVirt release: (release, warning).

    Inside [OLDEST, NEWEST] the rules of that release, no warning.  Outside, the rules of the
    nearest release they were read at, and a warning saying so (the caller prints it on
    stderr): a release the rules do not know may differ in ways nobody checked.  `source`: where
    the release was read (explain, list), said right after it."""
    what = "KubeVirt %s%s" % (show(requested), " (from %s)" % source if source else "")
    if requested < OLDEST:
        return OLDEST, ("%s is older than %s, the oldest release these rules were read against: "
                        "showing the rules of %s" % (what, show(OLDEST), show(OLDEST)))
    if requested > NEWEST:
        return NEWEST, ("%s is newer than %s, the newest release these rules were read against: "
                        "showing the rules of %s" % (what, show(NEWEST), show(NEWEST)))
    return requested, None

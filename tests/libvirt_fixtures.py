"""pytest fixture `libvirt`: a session-wide :class:`libvirt_oracle.Oracle`.

Without libvirt the tests that use it are skipped, unless KUBECTL_VIRTIO_REQUIRE_LIBVIRT=1
(set in CI), where a missing libvirt is an error: the oracle tests must not go quietly green.
Register it in conftest.py with `from libvirt_fixtures import libvirt  # noqa: F401`.
"""
import os

import pytest

import libvirt_oracle

REQUIRE_ENV = "KUBECTL_VIRTIO_REQUIRE_LIBVIRT"


def libvirt_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def libvirt():
    reason = libvirt_oracle.unavailable_reason()
    if reason:
        if libvirt_required():
            pytest.fail("%s=1 but %s (%s)" % (REQUIRE_ENV, libvirt_oracle.UNAVAILABLE, reason), pytrace=False)
        pytest.skip("%s (%s)" % (libvirt_oracle.UNAVAILABLE, reason))
    oracle = libvirt_oracle.Oracle()
    try:
        yield oracle
    finally:
        oracle.close()

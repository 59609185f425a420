import pytest

from kubectl_virtio import guests

# docs/libvirt.md §3.4 (osinfo-db): virtio1 = no / yes per OS
CASES = [("centos6.10", False), ("rhel6.9", False), ("rhel7.1", False), ("rhel7.2", True), ("centos7.0", True),
         ("rhel8.4", True), ("fedora22", False), ("fedora23", True), ("ubuntu16.10", False), ("ubuntu17.04", True),
         ("ubuntu22.04", True), ("debian8", False), ("debian9", True), ("sles11sp4", False), ("sles12", False),
         ("sles12sp1", False), ("sles12sp2", True), ("sle15", True), ("alpine3.10", False), ("alpine3.11", True),
         ("cirros0.3.5", False), ("cirros0.4.0", True), ("winxp", False), ("win10", None), ("rocky9", True),
         ("centos-stream9", True), ("opensuse42.1", False), ("opensuse15.4", True), ("plan9", None)]


@pytest.mark.parametrize("os_id,virtio1", CASES)
def test_virtio1_support(os_id, virtio1):
    assert guests.virtio1_support(os_id)[0] is virtio1


def test_detect_sources():
    g = guests.detect({"os.template.kubevirt.io/centos6.10": "true"}, {})
    assert (g.id, g.virtio1, g.source) == ("centos6.10", False, "label os.template.kubevirt.io/centos6.10")
    g = guests.detect({}, {"vm.kubevirt.io/os": "rhel7"}, explicit="win2k3")
    assert (g.id, g.virtio1, g.source) == ("win2k3", False, "--guest-os")
    assert guests.detect({}, {}, "linux.virtiotransitional") is None
    assert guests.detect({}, {}, None) is None

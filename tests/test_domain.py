"""The domain-XML reader on hostile, partial and hand-made input (libvirt-rendered input is
covered by test_domain_libvirt.py)."""
import pytest

from kubectl_virtio import domain
from kubectl_virtio.errors import InputError

SMALL = """<domain type='qemu'>
  <name>ns1_vm1</name>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk' model='virtio'>
      <target dev='vda' bus='virtio'/>
      <alias name='ua-root'/>
      <address type='pci' domain='0x0000' bus='0x01' slot='0x00' function='0x0'/>
    </disk>
    <disk type='file' device='lun'>
      <target dev='vdb' bus='virtio'/>
      <alias name='ua-lun1'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>
    </disk>
    <controller type='pci' index='0' model='pcie-root'/>
    <controller type='pci' index='1' model='pcie-root-port'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>
    </controller>
    <interface type='ethernet'>
      <model type='virtio-transitional'/>
      <alias name='ua-default'/>
    </interface>
    <input type='tablet' bus='virtio' model='virtio'><alias name='ua-tablet'/></input>
    <input type='mouse' bus='ps2'/>
    <hostdev mode='subsystem' type='pci'><alias name='ua-sriov-sriovnet'/></hostdev>
    <memballoon model='virtio-non-transitional'/>
  </devices>
</domain>"""


def test_reads_devices_names_and_variants():
    dom = domain.parse(SMALL)
    assert (dom.name, dom.arch, dom.machine, dom.machine_family) == ("ns1_vm1", "x86_64", "pc-q35-7.2", "q35")
    by = {d.key: d for d in dom.devices}
    root = by[("disk", "root")]
    assert (root.bus, root.target, root.model, root.parent_model, root.variant) == \
        ("virtio", "vda", "virtio", "pcie-root-port", "modern-only")
    # a model-less virtio LUN on the root complex: plain virtio there is transitional
    lun = by[("disk", "lun1")]
    assert (lun.model, lun.device, lun.parent_model, lun.variant) == (None, "lun", "pcie-root", "transitional")
    assert by[("interface", "default")].variant == "transitional"
    assert by[("input", "tablet")].variant == "modern-only"
    assert by[("input", "mouse0")].added_by_libvirt and not by[("input", "mouse0")].virtio
    assert ("hostdev", "sriovnet") in by
    assert by[("controller", "pci1")].added_by_libvirt
    assert by[("memballoon", "memballoon0")].variant == "modern-only"
    assert "emulator" not in {d.kind for d in dom.devices}


def test_ccw_and_old_machine_types():
    xml = SMALL.replace("pc-q35-7.2", "pc-i440fx-2.6").replace("bus='0x01'", "bus='0x00'")
    dom = domain.parse(xml)
    assert {d.key: d for d in dom.devices}[("disk", "root")].variant == "legacy-only"
    ccw = """<domain><os><type arch='s390x' machine='s390-ccw-virtio'>hvm</type></os><devices>
      <disk device='disk' model='virtio'><target bus='virtio' dev='vda'/><alias name='ua-a'/>
        <address type='ccw' cssid='0xfe' ssid='0x0' devno='0x0001'/></disk>
      <disk device='disk' model='virtio-transitional'><target bus='virtio' dev='vdb'/><alias name='ua-b'/>
        <address type='ccw' cssid='0xfe' ssid='0x0' devno='0x0002'/></disk></devices></domain>"""
    by = {d.name: d for d in domain.parse(ccw).devices}
    assert by["a"].variant == "ccw" and by["b"].variant == "invalid-on-ccw"


@pytest.mark.parametrize("fragment", [False, True])
@pytest.mark.parametrize("text,message", [
    ("<!DOCTYPE domain [<!ENTITY x SYSTEM 'file:///etc/passwd'>]><domain><name>&x;</name></domain>", "DOCTYPE"),
    ("<?xml version='1.0'?>\n<!DOCTYPE domain>\n<domain/>", "DOCTYPE"),
    ("<domain><name>a</name>", "not a whole domain XML"),
    ("", "empty"),
    ("<pod><x/></pod>", "root element <pod>"),
])
def test_bad_input_is_refused_with_a_clear_message(text, message, fragment):
    with pytest.raises(InputError) as e:
        domain.parse(text, "dump.xml", fragment=fragment)
    assert message in e.value.message and "dump.xml" in e.value.message


def test_text_that_is_not_xml():
    with pytest.raises(InputError) as e:
        domain.parse("hello world, this is not xml", "dump.xml", fragment=True)
    assert "not a domain XML and has no device element lines" in e.value.message
    with pytest.raises(InputError) as e:
        domain.parse("hello world, this is not xml", "the live domain XML of vm1")
    assert "the live domain XML of vm1 is not a domain XML" in e.value.message


def test_a_truncated_or_garbled_whole_document_is_an_error_not_a_partial_answer():
    whole = SMALL
    for cut in (len(whole) // 3, len(whole) // 2, len(whole) - 12):
        for fragment in (False, True):
            with pytest.raises(InputError) as e:
                domain.parse(whole[:cut], "dump.xml", fragment=fragment)
            assert e.value.message.startswith("dump.xml is not a whole domain XML:")
            assert "truncated or garbled" in e.value.message
    garbled = whole.replace("</disk>", "</dsk>", 1)
    with pytest.raises(InputError) as e:
        domain.parse("<?xml version='1.0'?>\n<!-- saved -->\n" + garbled, "dump.xml", fragment=True)
    assert "not a whole domain XML" in e.value.message


def test_live_xml_is_never_read_leniently():
    # the live path (fragment=False) refuses what a file may hold as a pasted fragment
    for text in (GREP, "<disk type='file' device='disk' model='virtio'><target dev='vda' bus='virtio'/></disk>"):
        assert domain.parse(text, "f", fragment=True).partial
        with pytest.raises(InputError):
            domain.parse(text, "the live domain XML of vm1")
    assert not domain.parse(SMALL).partial


def test_xml_depth_and_element_count_are_bounded():
    deep = "<domain>" + "<a>" * 100_000 + "</a>" * 100_000 + "</domain>"
    with pytest.raises(InputError) as e:
        domain.parse(deep, "deep.xml")
    assert "deep.xml" in e.value.message and len(e.value.message) < 300
    many = "<domain><devices>" + "<a/>" * (domain.MAX_ELEMENTS + 1) + "</devices></domain>"
    with pytest.raises(InputError) as e:
        domain.parse(many, "many.xml")
    assert "more than %d elements" % domain.MAX_ELEMENTS in e.value.message


def test_the_line_reader_output_is_bounded():
    # 8 MB of <disk> lines: refused at a bound, not read into a million devices
    with pytest.raises(InputError) as e:
        domain.parse("<disk>\n" * (domain.MAX_BYTES // 8), "grep.txt", fragment=True)
    assert e.value.message.startswith("grep.txt has more than")
    with pytest.raises(InputError) as e:
        domain.parse("<disk>\n" * (domain.MAX_FRAGMENT_DEVICES + 1), "grep.txt", fragment=True)
    assert "more than %d device lines" % domain.MAX_FRAGMENT_DEVICES in e.value.message
    with pytest.raises(InputError) as e:
        domain.parse("<disk model='virtio'>\n" + "<target dev='a'/>\n" * (domain.MAX_FRAGMENT_LINES + 1),
                     "grep.txt", fragment=True)
    assert "more than %d lines" % domain.MAX_FRAGMENT_LINES in e.value.message
    # many child lines under one device are read into a bounded element
    dom = domain.parse("<disk model='virtio'>\n" + "<target dev='vda' bus='virtio'/>\n" * 5000, "g", fragment=True)
    assert len(dom.devices) == 1 and dom.devices[0].target == "vda"


def test_errors_do_not_echo_unbounded_input():
    long_tag = "x" * 100_000
    for text in ("<%s/>" % long_tag, "<domain><%s></domain>" % long_tag, "<domain " + long_tag):
        for fragment in (False, True):
            with pytest.raises(InputError) as e:
                domain.parse(text, "dump.xml", fragment=fragment)
            assert len(e.value.message) < 400 and len(e.value.hint) < 400


def test_billion_laughs_is_refused_fast():
    decl = "".join("<!ENTITY l%d '%s'>" % (i, ("&l%d;" % (i - 1)) * 10 if i else "lol") for i in range(10))
    with pytest.raises(InputError):
        domain.parse("<!DOCTYPE d [%s]><domain><name>&l9;</name></domain>" % decl)


def test_size_bound():
    with pytest.raises(InputError) as e:
        domain.parse("<domain>" + " " * (domain.MAX_BYTES + 1) + "</domain>")
    assert "far smaller" in e.value.message


GREP = """    <disk type='file' device='disk' model='virtio-non-transitional'>
      <target dev='vda' bus='virtio'/>
    <disk type='file' device='disk' model='virtio-non-transitional'>
      <target dev='vdb' bus='virtio'/>
    <controller type='virtio-serial' index='0' model='virtio-non-transitional'>
    <controller type='scsi' index='0' model='virtio-non-transitional'>
      <model type='virtio-non-transitional'/>
    <memballoon model='virtio-non-transitional' freePageReporting='on'>
"""


def test_grep_output_is_read_leniently():
    dom = domain.parse(GREP, fragment=True)
    assert dom.partial
    kinds = [(d.kind, d.model) for d in dom.devices]
    assert kinds == [("disk", "virtio-non-transitional"), ("disk", "virtio-non-transitional"),
                     ("controller", "virtio-non-transitional"), ("controller", "virtio-non-transitional"),
                     ("interface", "virtio-non-transitional"), ("memballoon", "virtio-non-transitional")]
    assert [d.target for d in dom.devices[:2]] == ["vda", "vdb"]
    assert all(d.variant == "modern-only" for d in dom.devices)


def test_grep_n_prefixes_and_entities_in_fragments():
    dom = domain.parse("12:    <rng model='virtio-transitional'>\n13:      <backend model='random'>x</backend>\n",
                       fragment=True)
    assert [(d.kind, d.model) for d in dom.devices] == [("rng", "virtio-transitional")]
    with pytest.raises(InputError):
        domain.parse("<!ENTITY x 'y'>\n<disk model='virtio'>", fragment=True)


def test_single_device_element():
    dom = domain.parse("<disk type='file' device='disk' model='virtio-transitional'>"
                       "<target dev='vda' bus='virtio'/><alias name='ua-root'/></disk>", fragment=True)
    assert dom.partial and dom.devices[0].name == "root" and dom.devices[0].variant == "transitional"

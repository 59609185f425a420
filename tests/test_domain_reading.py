"""domain.parse reads each element's children in one walk and keeps the fields of each
distinct <address>: the records are those the element's first children of each tag give,
and every device gets an Address of its own."""
from kubectl_virtio import domain as D

XML = """<domain type='kvm'>
  <name> default_vm </name>
  <uuid>u-1</uuid>
  <os><loader/></os>
  <os><type arch='aarch64' machine='virt'>hvm</type></os>
  <devices>
    <disk type='file' device='disk' model='virtio-non-transitional'>
      <target dev='vda' bus='virtio'/>
      <target dev='vdz' bus='sata'/>
      <alias name='ua-root'/>
      <alias name='ua-other'/>
      <address type='pci' domain='0x0000' bus='0x03' slot='0x00' function='0x0'/>
      <address type='pci' domain='0x0000' bus='0x09' slot='0x00' function='0x0'/>
    </disk>
    <disk type='file' device='disk'>
      <target dev='vdb' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/>
    </disk>
    <interface type='ethernet'>
      <model type='virtio'/>
      <model type='e1000'/>
      <driver name='vhost'/>
      <address type='pci' domain='0x0000' bus='0x03' slot='0x00' function='0x0'/>
    </interface>
    <controller type='scsi' index='0' model='virtio-non-transitional'>
      <address type='drive' controller='0' bus='0'/>
    </controller>
  </devices>
</domain>"""


def test_the_first_child_of_each_tag_is_read():
    dom = D.parse(XML)
    assert (dom.name, dom.uuid, dom.arch, dom.machine) == ("default_vm", "u-1", "aarch64", "virt")
    disk, disk2, nic, scsi = dom.devices
    assert (disk.name, disk.bus, disk.target, disk.alias) == ("root", "virtio", "vda", "ua-root")
    assert disk.address == D.Address("pci", bus=3, slot=0, function=0, domain=0)
    assert (nic.model, nic.driver) == ("virtio", "vhost")
    assert disk2.address == D.Address("pci", bus=4, slot=0, function=0, domain=0)
    assert scsi.address == D.Address("drive", bus=0, controller=0)


def test_addresses_alternating_between_domains_and_never_shared():
    first = D.parse(XML)
    other = D.parse(XML.replace("bus='0x03'", "bus='0x05'"))
    again = D.parse(XML)
    assert first.devices[0].address.bus == 3 and other.devices[0].address.bus == 5
    assert again.devices[0].address.bus == 3 and again.devices[2].address.bus == 3
    # two devices at the same address hold equal but separate records
    a, b = again.devices[0].address, again.devices[2].address
    assert a == b and a is not b
    a.bus = 7
    assert b.bus == 3 and D.parse(XML).devices[0].address.bus == 3


def test_the_address_fields_are_bounded():
    for i in range(D._ADDRESSES_KEPT + 5):
        D.parse(XML.replace("bus='0x04'", "bus='%d'" % (i + 16)))
    assert len(D._ADDRESSES) <= D._ADDRESSES_KEPT
    assert D.parse(XML).devices[1].address.bus == 4


def test_a_fragment_device_reads_its_address_too():
    dom = D.parse("<disk type='file' device='disk'>\n<target dev='vda' bus='virtio'/>\n"
                  "<address type='ccw' cssid='0xfe' ssid='0x0' devno='0x0001'/>\n", fragment=True)
    assert dom.partial and dom.devices[0].address == D.Address("ccw", devno="0x0001")

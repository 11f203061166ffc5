"""The ``VirtualMachineSpec`` XML of ``build_from_spec``: read it, and write it back.

The outline follows the recorded requests::

    <VirtualMachineSpec>
      <DataCenter by="permalink">uk-lon-01</DataCenter>       (or <Zone>)
      <Resources><Package by="permalink">rock-3</Package>
                 <CPUCores>2</CPUCores><Memory>4</Memory></Resources>
      <DiskTemplate><DiskTemplate by="permalink">templates/...</DiskTemplate>
                    <Option key="install_agent">true</Option></DiskTemplate>
      <SystemDisks><Disk><Name>System Disk</Name><Size>20</Size></Disk></SystemDisks>
      <NetworkInterfaces><NetworkInterface><Network>netw_...</Network>
                         ...</NetworkInterface></NetworkInterfaces>
      <Hostname><Hostname>web-01</Hostname></Hostname>
      <Name>..</Name><Description>..</Description><Group>vmgrp_..</Group>
      <AuthorizedKeys>...</AuthorizedKeys><Tags><Tag>web</Tag></Tags>
    </VirtualMachineSpec>

A reference without ``by`` is an id. Elements the simulator has no use for
are accepted and ignored.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

from orchestrator.simulator._errors import invalid_spec_xml

__all__ = ["Ref", "SpecXml", "parse_spec_xml", "render_spec_xml"]

Ref = tuple[str, str]  # (by, value), e.g. ("permalink", "uk-lon-01")


@dataclass(slots=True)
class SpecXml:
    """What a build needs from a spec (or from ``/build``'s arguments)."""

    data_center: Ref | None = None
    zone: Ref | None = None
    package: Ref | None = None
    cpu_cores: int | None = None
    memory_in_gb: int | None = None
    disk_template: Ref | None = None
    disk_template_options: list[tuple[str, str]] = field(default_factory=list)
    system_disk_gb: int | None = None
    networks: list[Ref] = field(default_factory=list)
    hostname: str | None = None
    name: str | None = None
    description: str | None = None
    group: str | None = None
    ssh_keys: list[Ref] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)


def _ref(element: ET.Element | None) -> Ref | None:
    if element is None:
        return None
    value = (element.text or "").strip()
    if not value:
        raise invalid_spec_xml(f"The {element.tag} element must have a value")
    return element.get("by", "id"), value


def _text(element: ET.Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    return element.text.strip() or None


def _int(element: ET.Element | None) -> int | None:
    text = _text(element)
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise invalid_spec_xml(
            f"{element.tag if element is not None else '?'} must be an integer, got {text!r}"
        ) from None
    if value <= 0:
        raise invalid_spec_xml(f"{element.tag if element is not None else '?'} must be positive")
    return value


def parse_spec_xml(xml: str) -> SpecXml:
    """Read a spec; malformed XML raises ``400 invalid_spec_xml``."""
    try:
        # The simulator only listens on loopback; expat refuses entity expansion
        # bombs and ElementTree resolves no external entities.
        root = ET.fromstring(xml)  # noqa: S314
    except ET.ParseError as exc:
        raise invalid_spec_xml(f"The XML could not be parsed: {exc}") from exc
    if root.tag != "VirtualMachineSpec":
        raise invalid_spec_xml(f"The root element must be VirtualMachineSpec, not {root.tag}")
    spec = SpecXml(
        data_center=_ref(root.find("DataCenter")),
        zone=_ref(root.find("Zone")),
        package=_ref(root.find("Resources/Package")),
        cpu_cores=_int(root.find("Resources/CPUCores")),
        memory_in_gb=_int(root.find("Resources/Memory")),
        disk_template=_ref(root.find("DiskTemplate/DiskTemplate")),
        system_disk_gb=_int(root.find("SystemDisks/Disk/Size")),
        hostname=_text(root.find("Hostname/Hostname")),
        name=_text(root.find("Name")),
        description=_text(root.find("Description")),
        group=_text(root.find("Group")),
    )
    for option in root.findall("DiskTemplate/Option"):
        key = option.get("key")
        if not key:
            raise invalid_spec_xml("A disk template Option must have a key attribute")
        spec.disk_template_options.append((key, (option.text or "").strip()))
    for network in root.findall("NetworkInterfaces/NetworkInterface/Network"):
        ref = _ref(network)
        if ref is not None:
            spec.networks.append(ref)
    for key_element in root.findall("AuthorizedKeys/SSHKeys/SSHKey"):
        key_ref = _ref(key_element)
        if key_ref is not None:
            spec.ssh_keys.append(key_ref)
    spec.tags = [t for t in (_text(tag) for tag in root.findall("Tags/Tag")) if t]
    return spec


def _el(tag: str, value: str, by: str | None = None, indent: int = 1) -> str:
    attr = f" by={quoteattr(by)}" if by else ""
    return f"{'  ' * indent}<{tag}{attr}>{escape(value)}</{tag}>\n"


def render_spec_xml(
    *,
    data_center_id: str,
    zone_id: str | None,
    package_permalink: str | None,
    cpu_cores: int | None,
    memory_in_gb: int | None,
    disk_template_permalink: str | None,
    disk_template_options: list[tuple[str, str]],
    network_id: str,
    hostname: str,
    name: str | None,
    description: str | None,
    tags: list[str],
    ssh_key_ids: list[str] | None = None,
) -> str:
    """The server's normalized spec, as a build's ``spec_xml`` shows it."""
    out = ['<?xml version="1.0"?>\n<VirtualMachineSpec>\n']
    out.append(_el("DataCenter", data_center_id))
    if zone_id:
        out.append(_el("Zone", zone_id))
    out.append("  <Resources>\n")
    if package_permalink:
        out.append(_el("Package", package_permalink, "permalink", 2))
    if cpu_cores is not None:
        out.append(_el("CPUCores", str(cpu_cores), None, 2))
    if memory_in_gb is not None:
        out.append(_el("Memory", str(memory_in_gb), None, 2))
    out.append("  </Resources>\n")
    if disk_template_permalink:
        out.append("  <DiskTemplate>\n")
        out.append(_el("DiskTemplate", disk_template_permalink, "permalink", 2))
        out.append(_el("Version", "1", "number", 2))
        for key, value in disk_template_options:
            out.append(f"    <Option key={quoteattr(key)}>{escape(value)}</Option>\n")
        out.append("  </DiskTemplate>\n")
    out.append("  <NetworkInterfaces>\n    <NetworkInterface>\n")
    out.append(_el("Network", network_id, None, 3))
    out.append("    </NetworkInterface>\n  </NetworkInterfaces>\n")
    out.append("  <Hostname>\n")
    out.append(_el("Hostname", hostname, None, 2))
    out.append("  </Hostname>\n")
    if name:
        out.append(_el("Name", name))
    if description:
        out.append(_el("Description", description))
    out.append('  <AuthorizedKeys continuous_management="no">\n')
    if ssh_key_ids:
        out.append("    <SSHKeys>\n")
        out.extend(_el("SSHKey", key_id, None, 3) for key_id in ssh_key_ids)
        out.append("    </SSHKeys>\n  </AuthorizedKeys>\n")
    else:
        out.append('    <Users all="yes"/>\n    <SSHKeys all="yes"/>\n  </AuthorizedKeys>\n')
    if tags:
        out.append("  <Tags>\n")
        out.extend(_el("Tag", tag, None, 2) for tag in tags)
        out.append("  </Tags>\n")
    out.append("</VirtualMachineSpec>\n")
    return "".join(out)

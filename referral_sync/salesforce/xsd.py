"""Render Metadata API dicts as XML with elements in schema order.

Metadata XML is validated against an XSD whose types are ``xsd:sequence``s, so element order
matters. The order is read from the Metadata API WSDL bundled with simple-salesforce rather
than hand-kept, and a key that the schema does not define is an error (a typo in a
definition fails here, not at deploy time).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any
from xml.etree import ElementTree as ET

from defusedxml import ElementTree as SafeET

METADATA_NS = "http://soap.sforce.com/2006/04/metadata"
_XSD = "{http://www.w3.org/2001/XMLSchema}"


@dataclass(frozen=True)
class MetadataSchema:
    """Element sequences of the Metadata API's complex types (base types included)."""

    sequences: Mapping[str, tuple[tuple[str, str], ...]]

    def children(self, type_name: str) -> tuple[tuple[str, str], ...]:
        """``(element, type)`` pairs of ``type_name`` in schema order.

        Raises:
            KeyError: for a type the schema does not define.
        """
        return self.sequences[type_name]


def _local(qname: str) -> str:
    return qname.rsplit(":", 1)[-1]


def metadata_schema() -> MetadataSchema:
    """Parse the Metadata API WSDL bundled with simple-salesforce (about 0.3 s)."""
    wsdl = resources.files("simple_salesforce").joinpath("metadata.wsdl").read_bytes()
    root = SafeET.fromstring(wsdl)
    own: dict[str, list[tuple[str, str]]] = {}
    bases: dict[str, str] = {}
    for ctype in root.iter(f"{_XSD}complexType"):
        name = ctype.get("name")
        if not name:
            continue
        extension = ctype.find(f"{_XSD}complexContent/{_XSD}extension")
        if extension is not None:
            bases[name] = _local(extension.get("base", ""))
        own[name] = [
            (el.get("name", ""), _local(el.get("type", "")))
            for el in ctype.iter(f"{_XSD}element")
        ]

    def full(name: str) -> tuple[tuple[str, str], ...]:
        base = bases.get(name)
        return (full(base) if base in own else ()) + tuple(own[name])

    return MetadataSchema({name: full(name) for name in own})


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _fill(parent: ET.Element, type_name: str, data: Mapping[str, Any],
          schema: MetadataSchema) -> None:
    order = schema.children(type_name)
    known = {name for name, _ in order}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{type_name} has no element(s) {', '.join(unknown)}")
    for name, child_type in order:
        value = data.get(name)
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            child = ET.SubElement(parent, name)
            if isinstance(item, Mapping):
                _fill(child, child_type, item, schema)
            else:
                child.text = _text(item)


def render(type_name: str, data: Mapping[str, Any], schema: MetadataSchema) -> bytes:
    """A source-format ``*-meta.xml`` document for one component.

    Raises:
        ValueError: if ``data`` has a key that ``type_name`` does not define.
    """
    root = ET.Element(type_name, {"xmlns": METADATA_NS})
    _fill(root, type_name, data, schema)
    ET.indent(root, space="    ")
    body = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{body}\n'.encode()

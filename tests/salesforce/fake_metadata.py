"""The Metadata API (SOAP ``readMetadata`` / ``upsertMetadata``) of the Salesforce double.

Components are kept as the XML elements the client sent and read back verbatim, which is
what a real org does for the keys we set.
"""

from __future__ import annotations

import copy
from typing import Any
from xml.etree import ElementTree as ET

MD = "http://soap.sforce.com/2006/04/metadata"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"


def _envelope(body: str) -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP}" '
            f'xmlns="{MD}" xmlns:xsi="{XSI}"><soapenv:Body>{body}</soapenv:Body>'
            "</soapenv:Envelope>")


def _plain(element: ET.Element) -> str:
    """Children of ``element`` as XML in the (default) metadata namespace."""
    out = []
    for child in element:
        tag = child.tag.split("}", 1)[-1]
        if len(child):
            out.append(f"<{tag}>{_plain(child)}</{tag}>")
        else:
            text = (child.text or "").replace("&", "&amp;").replace("<", "&lt;")
            out.append(f"<{tag}>{text}</{tag}>")
    return "".join(out)


class FakeMetadataApi:
    """Stored components by (type, fullName), plus what each call did."""

    def __init__(self) -> None:
        self.components: dict[tuple[str, str], ET.Element] = {}
        self.reads = 0
        self.upserts: list[tuple[str, str]] = []
        self.refuse: dict[str, tuple[str, str]] = {}

    def seed(self, kind: str, xml_children: str) -> None:
        """Pre-existing org metadata, e.g. the org's own LeadConvertSettings."""
        element = ET.fromstring(f'<records xmlns="{MD}">{xml_children}</records>')
        name = element.findtext(f"{{{MD}}}fullName") or ""
        self.components[(kind, name)] = element

    def get(self, kind: str, full_name: str) -> dict[str, Any] | None:
        """A stored component as a shallow dict of its text children (for assertions)."""
        element = self.components.get((kind, full_name))
        if element is None:
            return None
        return {child.tag.split("}", 1)[-1]: child.text for child in element if not len(child)}

    def element(self, kind: str, full_name: str) -> ET.Element | None:
        """The stored XML element."""
        return self.components.get((kind, full_name))

    def handle(self, body: bytes) -> tuple[int, dict[str, str], str]:
        """Answer one SOAP request."""
        root = ET.fromstring(body)
        call = root.find(f"{{{SOAP}}}Body")[0]  # type: ignore[index]
        operation = call.tag.split("}", 1)[-1]
        if operation == "readMetadata":
            return self._read(call)
        if operation == "upsertMetadata":
            return self._upsert(call)
        return 500, {}, _envelope(f"<soapenv:Fault><faultcode>sf:UNKNOWN</faultcode>"
                                  f"<faultstring>{operation}</faultstring></soapenv:Fault>")

    def _read(self, call: ET.Element) -> tuple[int, dict[str, str], str]:
        self.reads += 1
        kind = call.findtext(f"{{{MD}}}type") or ""
        records = []
        for name in call.findall(f"{{{MD}}}fullNames"):
            stored = self.components.get((kind, name.text or ""))
            if stored is None:
                records.append('<records xsi:nil="true"/>')
            else:
                records.append(f'<records xsi:type="{kind}">{_plain(stored)}</records>')
        body = f"<readMetadataResponse><result>{''.join(records)}</result></readMetadataResponse>"
        return 200, {"Content-Type": "text/xml"}, _envelope(body)

    def _upsert(self, call: ET.Element) -> tuple[int, dict[str, str], str]:
        results = []
        for item in call.findall(f"{{{MD}}}metadata"):
            kind = (item.get(f"{{{XSI}}}type") or "").split(":")[-1]
            name = item.findtext(f"{{{MD}}}fullName") or ""
            if name in self.refuse:
                code, message = self.refuse[name]
                results.append(f"<result><errors><message>{message}</message><statusCode>"
                               f"{code}</statusCode></errors><fullName>{name}</fullName>"
                               "<success>false</success></result>")
                continue
            created = (kind, name) not in self.components
            self.components[(kind, name)] = copy.deepcopy(item)
            self.upserts.append((kind, name))
            results.append(f"<result><created>{str(created).lower()}</created>"
                           f"<fullName>{name}</fullName><success>true</success></result>")
        body = f"<upsertMetadataResponse>{''.join(results)}</upsertMetadataResponse>"
        return 200, {"Content-Type": "text/xml"}, _envelope(body)

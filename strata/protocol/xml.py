"""The one XML reader and writer of Strata, used by the rest-xml, query and ec2 codecs.

Reading goes through defusedxml: no DTDs, no entity declarations, no external references, and a
size bound checked before parsing, so a request body can never expand or reach outside. Elements
come back as `xml.etree.ElementTree.Element`; `local_name` strips the `{namespace}` part, since AWS
clients are free to send or omit namespaces.

Writing is plain string building (faster than building a tree for the small documents AWS
answers with); `escape_text` / `escape_attr` are the only escaping rules, and they keep `\\r` and
tabs intact through a round trip.
"""

from __future__ import annotations

import re
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

# S3's largest XML request (DeleteObjects with 1000 keys of 1024 bytes) is about 1.1 MB.
MAX_XML_BYTES = 10 * 1024 * 1024


class XmlError(ValueError):
    """The document is not well-formed, too large, or uses a forbidden construct (DTD, entity)."""


def parse_xml(data: bytes | str, max_bytes: int = MAX_XML_BYTES) -> Element:
    """Parse a request document into its root element; raise XmlError for anything unsafe or broken."""
    if len(data) > max_bytes:
        raise XmlError(f"XML document larger than {max_bytes} bytes")
    if not data or not data.strip():
        raise XmlError("empty XML document")
    try:
        return fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException, ValueError) as e:
        raise XmlError(str(e)) from e


def local_name(tag: str) -> str:
    """`{http://s3.amazonaws.com/doc/2006-03-01/}Key` -> `Key`; `xsi:type` -> `type`."""
    if tag[:1] == "{":
        return tag[tag.index("}") + 1 :]
    return tag.rpartition(":")[2]


_TEXT_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_ATTR_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "\r": "&#13;", "\n": "&#10;", "\t": "&#9;"}
)


# Characters XML 1.0 cannot carry at all, not even as character references (NUL, most C0
# controls, U+FFFE/U+FFFF, lone surrogates).
_XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _carryable(text: str) -> str:
    """`text` with every character XML 1.0 forbids replaced by U+FFFD: a value that echoes one
    (an error message naming a bad input, a description with a NUL) still makes a document every
    XML parser reads, rather than one no client can parse at all."""
    return _XML_ILLEGAL.sub("\ufffd", text) if _XML_ILLEGAL.search(text) else text


def escape_text(value: str) -> str:
    return _carryable(value.translate(_TEXT_ESCAPES))


def escape_attr(value: str) -> str:
    return _carryable(value.translate(_ATTR_ESCAPES))


XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'


def element(name: str, text: str, attrs: str = "") -> str:
    """One leaf element, its text already a string (escaped here)."""
    return f"<{name}{attrs}>{escape_text(text)}</{name}>"


def xmlns_attr(namespace: str | dict | None) -> str:
    """The ` xmlns="..."` (or prefixed) attribute text for a model's `xmlNamespace` trait."""
    if not namespace:
        return ""
    if isinstance(namespace, dict):
        prefix = namespace.get("prefix")
        name = f"xmlns:{prefix}" if prefix else "xmlns"
        return f' {name}="{escape_attr(namespace.get("uri", ""))}"'
    return f' xmlns="{escape_attr(namespace)}"'

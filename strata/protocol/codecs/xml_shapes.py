"""XML bodies (rest-xml payloads, query and ec2 responses): read request elements, write responses.

Element names follow botocore's rules: a member's `locationName` or its member name; a flattened
list with a named member repeats that name at the parent level; non-flattened lists wrap items in
`<member>` (or the member's `locationName`, e.g. ec2's `<item>`); maps use `<entry><key><value>`.
`xmlAttribute` members (S3's `xsi:type` on Grantee) are attributes; `xmlNamespace` adds `xmlns`.
"""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element

from botocore.model import Shape

from strata.protocol.codecs.compile import Fn, ShapeCompiler, located
from strata.protocol.codecs.values import (
    MalformedInput,
    b64decode,
    b64encode,
    bool_text,
    float_text,
    format_timestamp,
    parse_bool_text,
    parse_float_text,
    parse_int_text,
    to_datetime,
)
from strata.protocol.xml import escape_attr, escape_text, local_name, xmlns_attr


def xml_member_name(member: Shape, name: str) -> str:
    """The element name of a structure member (botocore's `_member_key_name`)."""
    if member.type_name == "list" and member.serialization.get("flattened"):
        item_name = member.member.serialization.get("name")
        if item_name:
            return item_name
    return member.serialization.get("name", name)


def _flat(shape: Shape) -> bool:
    return bool(shape.serialization.get("flattened")) and shape.type_name in ("list", "map")


def _text(node: Element) -> str:
    return node.text or ""


def _read_timestamp(node: Element) -> Any:
    text = _text(node).strip()
    if not text:
        raise MalformedInput("empty timestamp")
    return to_datetime(text)


_SCALAR_READERS: dict[str, Fn] = {
    "string": _text,
    "character": _text,
    "integer": lambda n: parse_int_text(_text(n), "integer"),
    "long": lambda n: parse_int_text(_text(n), "long"),
    "short": lambda n: parse_int_text(_text(n), "short"),
    "byte": lambda n: parse_int_text(_text(n), "byte"),
    "float": lambda n: parse_float_text(_text(n)),
    "double": lambda n: parse_float_text(_text(n)),
    "boolean": lambda n: parse_bool_text(_text(n)),
    "blob": lambda n: b64decode(_text(n).strip()),
    "timestamp": _read_timestamp,
}


class XmlReader(ShapeCompiler):
    """Shape -> function(element, or list of elements for flattened members) -> Python value."""

    def build(self, shape: Shape) -> Fn:
        kind = shape.type_name
        if kind == "structure":
            return self._structure(shape)
        if kind == "list":
            item = self.get(shape.member)
            if _flat(shape):
                return lambda nodes: [item(n) for n in nodes]
            return lambda node: [item(child) for child in node]
        if kind == "map":
            key_name = shape.key.serialization.get("name", "key")
            value_name = shape.value.serialization.get("name", "value")
            read_key, read_value = self.get(shape.key), self.get(shape.value)

            def read_entries(entries: list[Element]) -> dict:
                out = {}
                for entry in entries:
                    k = v = None
                    for child in entry:
                        tag = local_name(child.tag)
                        if tag == key_name:
                            k = read_key(child)
                        elif tag == value_name:
                            v = read_value(child)
                    if k is not None:
                        out[k] = v
                return out

            if _flat(shape):
                return read_entries
            return lambda node: read_entries(list(node))
        return _SCALAR_READERS.get(kind, _text)

    def _structure(self, shape: Shape) -> Fn:
        elements, attributes = [], []
        for name, m in shape.members.items():
            if located(m):
                continue
            if m.serialization.get("xmlAttribute"):
                attributes.append((local_name(m.serialization.get("name", name)), name))
            else:
                elements.append((xml_member_name(m, name), name, self.get(m), _flat(m)))

        def read_structure(node: Element | list[Element]) -> dict:
            if isinstance(node, list):
                node = node[0]
            children: dict[str, list[Element]] = {}
            for child in node:
                children.setdefault(local_name(child.tag), []).append(child)
            out: dict[str, Any] = {}
            for tag, name, fn, flat in elements:
                found = children.get(tag)
                if found:
                    out[name] = fn(found) if flat else fn(found[0])
            if attributes and node.attrib:
                by_local = {local_name(k): v for k, v in node.attrib.items()}
                for attr, name in attributes:
                    if attr in by_local:
                        out[name] = by_local[attr]
            return out

        return read_structure


def _scalar_writer(to_text: Fn, ns: str) -> Fn:
    def write(parts: list[str], name: str, value: Any, extra: str = "") -> None:
        parts.append(f"<{name}{ns}>{escape_text(to_text(value))}</{name}>")

    return write


def _blob_text(value: Any) -> str:
    return b64encode(value if isinstance(value, (bytes, bytearray, str)) else bytes(value))


class XmlWriter(ShapeCompiler):
    """Shape -> function(parts, element name, value, extra root attributes) appending XML text."""

    def build(self, shape: Shape) -> Fn:
        kind = shape.type_name
        ns = xmlns_attr(shape.serialization.get("xmlNamespace"))
        if kind == "structure":
            return self._structure(shape, ns)
        if kind == "list":
            return self._list(shape, ns)
        if kind == "map":
            return self._map(shape, ns)
        if kind == "boolean":
            return _scalar_writer(bool_text, ns)
        if kind in ("float", "double"):
            return _scalar_writer(float_text, ns)
        if kind == "timestamp":
            fmt = shape.serialization.get("timestampFormat", "iso8601")
            return _scalar_writer(lambda v: str(format_timestamp(v, fmt)), ns)
        if kind == "blob":
            return _scalar_writer(_blob_text, ns)
        return _scalar_writer(str, ns)

    def _structure(self, shape: Shape, ns: str) -> Fn:
        elements, attributes = [], []
        for name, m in shape.members.items():
            if located(m):
                continue
            if m.serialization.get("xmlAttribute"):
                attributes.append((name, m.serialization.get("name", name)))
            else:
                elements.append((name, xml_member_name(m, name), self.get(m)))

        def write_structure(parts: list[str], tag: str, value: dict, extra: str = "") -> None:
            attrs = ns or extra
            for name, attr in attributes:
                v = value.get(name)
                if v is not None:
                    attrs += f' {attr}="{escape_attr(str(v))}"'
            parts.append(f"<{tag}{attrs}>")
            for name, child_tag, fn in elements:
                v = value.get(name)
                if v is not None:
                    fn(parts, child_tag, v)
            parts.append(f"</{tag}>")

        return write_structure

    def _list(self, shape: Shape, ns: str) -> Fn:
        item = self.get(shape.member)
        if _flat(shape):

            def write_flat(parts: list[str], tag: str, value: list, extra: str = "") -> None:
                for v in value:
                    if v is not None:
                        item(parts, tag, v)

            return write_flat
        item_tag = shape.member.serialization.get("name", "member")

        def write_list(parts: list[str], tag: str, value: list, extra: str = "") -> None:
            parts.append(f"<{tag}{ns}>")
            for v in value:
                if v is not None:
                    item(parts, item_tag, v)
            parts.append(f"</{tag}>")

        return write_list

    def _map(self, shape: Shape, ns: str) -> Fn:
        key_tag = shape.key.serialization.get("name", "key")
        value_tag = shape.value.serialization.get("name", "value")
        write_key, write_value = self.get(shape.key), self.get(shape.value)
        flat = _flat(shape)

        def write_map(parts: list[str], tag: str, value: dict, extra: str = "") -> None:
            if not flat:
                parts.append(f"<{tag}{ns}>")
            for k, v in value.items():
                if v is None:
                    continue
                parts.append(f"<{tag}>" if flat else "<entry>")
                write_key(parts, key_tag, k)
                write_value(parts, value_tag, v)
                parts.append(f"</{tag}>" if flat else "</entry>")
            if not flat:
                parts.append(f"</{tag}>")

        return write_map

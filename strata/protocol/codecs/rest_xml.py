"""The rest-xml protocol (Route 53, CloudFront style); S3's differences live in `s3.py`.

Bodies are XML read with the one hardened reader (`strata.protocol.xml`). Response roots carry the
service's `xmlNamespace` (metadata, patchable) unless the shape names its own. Errors are
`<ErrorResponse><Error><Type/><Code/><Message/>...</Error><RequestId/></ErrorResponse>`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.model import OperationModel, ServiceModel, Shape

from strata.protocol.codecs.rest import RestCodec
from strata.protocol.codecs.values import MalformedDocument
from strata.protocol.codecs.xml_shapes import XmlReader, XmlWriter, xml_member_name
from strata.protocol.errors import ServiceError
from strata.protocol.http import HttpResponse
from strata.protocol.xml import XML_DECLARATION, XmlError, escape_text, local_name, parse_xml, xmlns_attr


def xml_error_fields(writer: XmlWriter, shape: Shape | None, fields: dict[str, Any], skip: set[str]) -> str:
    """Extra members of an error as XML children, written by the error shape when the model has it."""
    parts: list[str] = []
    members = shape.members if shape is not None else {}
    for name, value in fields.items():
        if value is None or name in skip:
            continue
        member = members.get(name)
        if member is not None:
            writer.get(member)(parts, xml_member_name(member, name), value)
        else:
            parts.append(f"<{name}>{escape_text(str(value))}</{name}>")
    return "".join(parts)


class RestXmlCodec(RestCodec):
    protocol = "rest-xml"
    body_content_type = "application/xml"

    def __init__(self, model: ServiceModel) -> None:
        super().__init__(model)
        self.xml_reader = XmlReader()
        self.xml_writer = XmlWriter()
        self.root_xmlns = xmlns_attr(model.metadata.get("xmlNamespace"))

    def malformed(self, message: str, document: bool = False) -> ServiceError:
        return ServiceError("InvalidInput", message, 400)

    def body_reader(self, shape: Shape) -> Callable[[bytes], Any]:
        read = self.xml_reader.get(shape)

        def read_xml(body: bytes) -> Any:
            try:
                root = parse_xml(body)
            except XmlError as e:
                raise MalformedDocument(str(e)) from e
            return read(root)

        return read_xml

    def payload_reader(self, member: Shape) -> Callable[[bytes], Any]:
        read = self.xml_reader.get(member)
        name = member.serialization.get("name") or member.name

        def read_document(body: bytes) -> Any:
            try:
                root = parse_xml(body)
            except XmlError as e:
                raise MalformedDocument(str(e)) from e
            if local_name(root.tag) != name:
                raise MalformedDocument(f"the document's root element is not {name}")
            return read(root)

        return read_document

    def body_writer(self, shape: Shape, root: str | None) -> Callable[[Any], bytes]:
        write = self.xml_writer.get(shape)
        tag = root or shape.name
        xmlns = self.root_xmlns

        def write_xml(value: Any) -> bytes:
            parts = [XML_DECLARATION]
            write(parts, tag, value, xmlns)
            return "".join(parts).encode()

        return write_xml

    def error_document(self, error: ServiceError, request_id: str) -> str:
        fields = xml_error_fields(
            self.xml_writer, self.error_shape(error.code), error.fields, {"Code", "Message"}
        )
        kind = "Sender" if error.sender_fault else "Receiver"
        return (
            f"{XML_DECLARATION}<ErrorResponse{self.root_xmlns}><Error><Type>{kind}</Type>"
            f"<Code>{escape_text(error.code)}</Code><Message>{escape_text(error.message)}</Message>{fields}"
            f"</Error><RequestId>{escape_text(request_id)}</RequestId></ErrorResponse>"
        )

    def _render_error(self, op: OperationModel | None, error: ServiceError, request_id: str) -> HttpResponse:
        body = self.error_document(error, request_id).encode()
        headers = self.response_headers(request_id)
        headers += [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
        return HttpResponse(error.status, headers, body)

"""S3's departures from plain rest-xml, all in one place.

- Request ids travel as `x-amz-request-id` and `x-amz-id-2` headers.
- Errors are a bare `<Error><Code/><Message/>...<RequestId/><HostId/></Error>` (no ErrorResponse
  wrapper, no namespace: botocore recognises S3 errors by the root tag `Error`).
- Malformed request XML is `MalformedXML`; a path that routes only under another method is
  `405 MethodNotAllowed`.
- GetBucketLocation answers with a text root, `<LocationConstraint>eu-west-1</LocationConstraint>`
  (real clients read it with a dedicated handler, not the shape).
Root element names of S3 responses are model data (patches/s3.json), not code.
"""

from __future__ import annotations

from botocore.model import OperationModel

from strata.protocol.codecs.required import Path
from strata.protocol.codecs.rest import SerializeFn
from strata.protocol.codecs.rest_xml import RestXmlCodec, xml_error_fields
from strata.protocol.errors import ServiceError
from strata.protocol.http import HttpRequest, HttpResponse
from strata.protocol.xml import XML_DECLARATION, escape_text

# Operations whose XML body is the text of a single root element: operation -> output member.
TEXT_ROOT_OPERATIONS = {"GetBucketLocation": "LocationConstraint"}


class S3Codec(RestXmlCodec):
    def response_headers(self, request_id: str) -> list[tuple[str, str]]:
        return [("x-amz-request-id", request_id), ("x-amz-id-2", request_id)]

    def malformed(self, message: str, document: bool = False) -> ServiceError:
        if not document:
            return ServiceError("InvalidArgument", message, 400)
        return ServiceError(
            "MalformedXML",
            "The XML you provided was not well-formed or did not validate against our published schema",
            400,
        )

    def missing(self, op: OperationModel, path: Path, params: dict | None = None) -> ServiceError:
        payload = op.input_shape.serialization.get("payload") if op.input_shape is not None else None
        if len(path) > 1 or path[0] == payload:
            return self.malformed("missing required member", document=True)
        return ServiceError("InvalidRequest", f"Missing required parameter for this request: {path[0]}", 400)

    def unknown_operation(
        self, request: HttpRequest, query: dict[str, str], header_names: set[str]
    ) -> ServiceError:
        allowed = self.router.methods_for(request.routing_path, query, header_names)
        if allowed:
            return ServiceError(
                "MethodNotAllowed",
                "The specified method is not allowed against this resource.",
                405,
                fields={
                    "Method": request.method,
                    "ResourceType": "OBJECT" if request.routing_path.count("/") > 1 else "BUCKET",
                },
                headers={"Allow": ", ".join(sorted(allowed))},
            )
        return ServiceError(
            "InvalidRequest", f"No S3 operation matches {request.method} {request.routing_path}", 400
        )

    def _compile_serializer(self, op: OperationModel) -> SerializeFn:
        member = TEXT_ROOT_OPERATIONS.get(op.name)
        if member is None:
            return super()._compile_serializer(op)
        xmlns = self.root_xmlns

        def serialize_text_root(result: dict, request_id: str) -> HttpResponse:
            text = escape_text(str(result.get(member) or ""))
            body = f"{XML_DECLARATION}<{member}{xmlns}>{text}</{member}>".encode()
            headers = self.response_headers(request_id)
            headers += [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
            return HttpResponse(200, headers, body)

        return serialize_text_root

    def error_document(self, error: ServiceError, request_id: str) -> str:
        fields = xml_error_fields(
            self.xml_writer,
            self.error_shape(error.code),
            error.fields,
            {"Code", "Message", "RequestId", "HostId"},
        )
        return (
            f"{XML_DECLARATION}<Error><Code>{escape_text(error.code)}</Code>"
            f"<Message>{escape_text(error.message)}</Message>{fields}"
            f"<RequestId>{escape_text(request_id)}</RequestId><HostId>{escape_text(request_id)}</HostId></Error>"
        )

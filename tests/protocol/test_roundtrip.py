"""Round trips through botocore's own client code, for every operation of our services.

Input: hypothesis generates a value of the operation's input shape, botocore's client-side
serializer turns it into an HTTP request, our codec finds the operation and parses it, and the
result must equal what went in. Output: a generated value of the output shape goes through our
serializer, botocore's response parser must give it back (event streams included). Errors:
botocore's parser must read our error code and message, including the 501 for unimplemented
operations, and every modeled error shape's extra members.

Exceptions, each justified where it is declared:
- ROUTE_ALIASES: deprecated or sibling operations whose requests are identical on the wire.
- hostLabel members (S3 WriteGetObjectResponse's `RequestRoute`) travel in the host name, which
  is the gateway's concern, so they are not expected back from the parser.
- AMBIGUOUS_MODEL: two deprecated S3 operations whose model maps one element to two members.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator

import pytest
from botocore.awsrequest import create_request_object, prepare_request_dict
from botocore.compat import HTTPHeaders
from botocore.eventstream import EventStream
from botocore.model import OperationModel
from botocore.parsers import create_parser
from botocore.response import StreamingBody
from botocore.serialize import create_serializer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from strata.protocol import codec_for
from strata.protocol.errors import NotImplementedOperation, ServiceError
from strata.protocol.http import BodyStream, Headers, HttpRequest
from strata.protocol.spec import service_model
from strata.protocol.xml import parse_xml
from tests.protocol.shape_strategies import TEXT, Generator, normalize

SERVICES = ["s3", "dynamodb", "efs", "rds", "elasticache", "kms", "ebs", "sts", "ec2", "cloudwatch", "ce"]
MAX_EXAMPLES = 15
# Inputs and outputs: FULL_EXAMPLES values with every member (to the generator's depth) and items
# in every list, then SPARSE_EXAMPLES with optional members left out at random. Together they put
# every member path that 15 sparse values did (measured per service) through the codecs, in about
# half the time: hypothesis spends most of it drawing values, not in the codecs.
FULL_EXAMPLES = 2
SPARSE_EXAMPLES = 6

# Operations that send exactly the same request as another one, so a server cannot tell them
# apart; the router picks the one on the right (the current API). Parsing is still checked with
# the operation the client meant.
ROUTE_ALIASES = {
    ("s3", "GetBucketLifecycle"): "GetBucketLifecycleConfiguration",
    ("s3", "PutBucketLifecycle"): "PutBucketLifecycleConfiguration",
    ("s3", "GetBucketNotification"): "GetBucketNotificationConfiguration",
    ("s3", "PutBucketNotification"): "PutBucketNotificationConfiguration",
    ("s3", "ListDirectoryBuckets"): "ListBuckets",  # S3 Express: same request, other endpoint
}

# Deprecated S3 notification shapes model both `Event` (one string) and `Events` (a flattened list
# named `Event`): the same element feeds two members, so no parser can give back exactly one.
AMBIGUOUS_MODEL = {("s3", "PutBucketNotification", "input"), ("s3", "GetBucketNotification", "output")}

# (service, direction) -> (operations that round-trip, operations, the others): printed at the end
# of the run by tests/protocol/conftest.py.
SHARES: dict[tuple[str, str], tuple[int, int, list[str]]] = {}

GENERATORS: dict[str, Generator] = {}  # per service: shape names repeat across services
FULL_GENERATORS: dict[str, Generator] = {}
SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


def operations(service: str) -> list[OperationModel]:
    model = service_model(service)
    names = model.operation_names
    if service == "ec2":
        names = [n for n in names if "Volume" in n or "Snapshot" in n or n == "DescribeAvailabilityZones"]
    return [model.operation_model(n) for n in names]


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


def http_request(op: OperationModel, params: dict) -> HttpRequest:
    """What a real client would send: botocore's serializer, then its request preparation."""
    serialized = create_serializer(op.metadata["protocol"], include_validation=False).serialize_to_request(
        params, op
    )
    prepare_request_dict(serialized, endpoint_url="http://127.0.0.1:4566")
    prepared = create_request_object(serialized).prepare()
    url = prepared.url.split("://", 1)[1]
    host, _, path_query = url.partition("/")
    path, _, query = ("/" + path_query).partition("?")
    body = prepared.body
    if body is None:
        body = b""
    elif isinstance(body, str):
        body = body.encode()
    elif hasattr(body, "read"):
        body = body.read()
    request = HttpRequest(
        method=prepared.method,
        raw_path=path,
        query_string=query,
        headers=Headers(prepared.headers.items()),
        host=host,
        body=bytes(body),
    )
    if op.has_streaming_input:
        request.stream = BodyStream(_chunks(request.body), len(request.body))
        request.body = b""
    return request


def check_input(service: str, op: OperationModel, params: dict) -> None:
    codec = codec_for(service)
    request = http_request(op, params)
    found, path_params = codec.find_operation(request)
    assert found.name == ROUTE_ALIASES.get((service, op.name), op.name), f"routed to {found.name}"
    parsed = codec.parse(op, request, path_params)
    shape = op.input_shape
    expected = dict(params)
    for name, member in shape.members.items() if shape is not None else ():
        if member.serialization.get("hostLabel") and "location" not in member.serialization:
            expected.pop(name, None)  # carried in the host name: the gateway's concern
        if name not in params and member.serialization.get("name", "").lower() in _SELF_DESCRIBING:
            parsed.pop(name, None)  # Content-Length / Content-Type added by the HTTP layer
    assert normalize(parsed, shape, top=True) == normalize(expected, shape, top=True)


class RawStream:
    """What botocore reads an event stream from (urllib3's response in real life)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self) -> Iterator[bytes]:
        yield self.data

    def close(self) -> None:
        pass


async def _collect(body: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in body])


def botocore_response(op: OperationModel, status: int, headers: list[tuple[str, str]], body: object) -> dict:
    if not isinstance(body, bytes):
        body = asyncio.run(_collect(body))  # type: ignore[arg-type]
    if op.has_event_stream_output:
        body = RawStream(body)
    elif op.has_streaming_output:
        body = StreamingBody(io.BytesIO(body), len(body))
    return {"status_code": status, "headers": HTTPHeaders.from_pairs(headers), "body": body, "context": {}}


# Header members the serializer fills in itself (the length and type of the body it wrote).
_SELF_DESCRIBING = {"content-length", "content-type"}


def check_output(service: str, op: OperationModel, result: dict) -> None:
    codec = codec_for(service)
    response = codec.serialize(op, result, "req-1")
    protocol = op.metadata["protocol"]
    shape = op.output_shape
    if op.name == "GetBucketLocation":
        # Real clients read this root's text with botocore.handlers.parse_get_bucket_location.
        parsed = {"LocationConstraint": parse_xml(response.body).text}
    else:
        parsed = create_parser(protocol).parse(
            botocore_response(op, response.status, response.headers, response.body), shape
        )
    parsed.pop("ResponseMetadata", None)
    for name, value in parsed.items():
        if isinstance(value, EventStream):
            parsed[name] = list(value)
    if shape is not None:
        for name, member in shape.members.items():
            if name in result:
                continue
            if (
                member.serialization.get("name", "").lower() in _SELF_DESCRIBING
                or member.serialization.get("location") == "statusCode"  # always parsed from the status line
            ):
                parsed.pop(name, None)
    assert normalize(parsed, shape, top=True) == normalize(result, shape, top=True)


def check_error(service: str, op: OperationModel, error: ServiceError) -> None:
    codec = codec_for(service)
    response = codec.serialize_error(op, error, "req-err")
    assert response.status == error.status
    if op.http.get("method") == "HEAD":
        assert response.body == b""
        return
    parsed = create_parser(op.metadata["protocol"]).parse(
        {
            "status_code": response.status,
            "headers": HTTPHeaders.from_pairs(response.headers),
            "body": response.body,
        },
        op.output_shape,
    )
    assert parsed["Error"]["Code"] == error.code
    assert (parsed["Error"]["Message"] or "") == error.message  # botocore reads <Message/> as None


def _runner(service: str, op: OperationModel, kind: str):  # noqa: ANN202 - a hypothesis test function
    if kind == "errors":
        codes = sorted(codec_for(service).error_shapes) or ["Oops"]

        @SETTINGS
        @given(st.sampled_from(codes), TEXT)
        def run_errors(code: str, message: str) -> None:
            check_error(service, op, ServiceError(code, message, 400))

        def run_error() -> None:
            run_errors()
            # The 501 depends on the operation only: once, not once per generated example.
            check_error(service, op, NotImplementedOperation(service, op.name))

        return run_error
    check = check_output if kind == "output" else check_input
    full = FULL_GENERATORS.setdefault(service, Generator(full=True)).for_operation(
        op, output=kind == "output"
    )
    sparse = GENERATORS.setdefault(service, Generator()).for_operation(op, output=kind == "output")

    @settings(SETTINGS, max_examples=FULL_EXAMPLES)
    @given(full)
    def run_full(value: dict) -> None:
        check(service, op, value)

    @settings(SETTINGS, max_examples=SPARSE_EXAMPLES)
    @given(sparse)
    def run_sparse(value: dict) -> None:
        check(service, op, value)

    def run() -> None:
        run_full()
        run_sparse()

    return run


def _run_all(service: str, kind: str) -> None:
    ops = operations(service)
    failures: dict[str, str] = {}
    skipped: list[str] = []
    for op in ops:
        if (service, op.name, kind) in AMBIGUOUS_MODEL:
            skipped.append(op.name)
            continue
        try:
            _runner(service, op, kind)()
        except Exception as e:  # noqa: BLE001 - collected and reported per operation below
            failures[op.name] = f"{type(e).__name__}: {str(e)[:600]}"
    passed = len(ops) - len(failures)
    passed -= len(skipped)
    SHARES[(service, kind)] = (
        passed,
        len(ops),
        sorted(failures) + [f"{n} (ambiguous model)" for n in skipped],
    )
    print(f"\n{service} {kind}: {passed}/{len(ops)} operations round-trip ({100 * passed / len(ops):.0f}%)")
    for name in skipped:
        print(f"  EXCEPTION {name}: ambiguous model (see AMBIGUOUS_MODEL)")
    for name, why in sorted(failures.items()):
        print(f"  FAIL {name}: {why}")
    assert not failures, f"{len(failures)} of {len(ops)} {service} operations fail the {kind} round trip"


@pytest.mark.parametrize("service", SERVICES)
def test_inputs_round_trip(service: str) -> None:
    _run_all(service, "input")


@pytest.mark.parametrize("service", SERVICES)
def test_outputs_round_trip(service: str) -> None:
    _run_all(service, "output")


@pytest.mark.parametrize("service", SERVICES)
def test_errors_round_trip(service: str) -> None:
    _run_all(service, "errors")


_MESSAGE_KEYS = {"message", "Message", "ErrorCode", "Code", "code"}


def check_error_fields(service: str, op: OperationModel, code: str, fields: dict) -> None:
    """Modeled error members (DynamoDB's CancellationReasons, EFS's FileSystemId) reach botocore."""
    codec = codec_for(service)
    shape = codec.error_shapes[code]
    response = codec.serialize_error(op, ServiceError(code, "boom", 400, fields=fields), "req-err")
    parsed = create_parser(op.metadata["protocol"]).parse(
        {"status_code": 400, "headers": HTTPHeaders.from_pairs(response.headers), "body": response.body},
        shape,
    )
    got = {k: v for k, v in normalize(parsed, shape).items() if k not in _MESSAGE_KEYS}
    assert got == normalize(fields, shape)


def _error_runner(service: str, op: OperationModel, code: str, strategy: st.SearchStrategy[dict]):  # noqa: ANN202
    @SETTINGS
    @given(strategy)
    def run(fields: dict) -> None:
        check_error_fields(service, op, code, fields)

    return run


@pytest.mark.parametrize("service", SERVICES)
def test_modeled_error_fields_round_trip(service: str) -> None:
    codec = codec_for(service)
    op = next(o for o in operations(service) if o.http.get("method") != "HEAD")
    gen = GENERATORS.setdefault(service, Generator())
    failures = {}
    codes = sorted({shape.name: code for code, shape in codec.error_shapes.items()}.values())
    for code in codes:
        try:
            _error_runner(service, op, code, gen.for_error(codec.error_shapes[code], exclude=_MESSAGE_KEYS))()
        except Exception as e:  # noqa: BLE001 - reported together below
            failures[code] = f"{type(e).__name__}: {str(e)[:400]}"
    assert not failures, failures

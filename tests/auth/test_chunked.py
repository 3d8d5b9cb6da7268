"""aws-chunked bodies: the S3 documentation's vectors, generated chunk-signed and trailer bodies,
tampering, and streaming through the Authenticator with bounded memory."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
from io import BytesIO

import pytest
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum, CrtCrc32cChecksum

from strata.auth import Authenticator
from strata.auth.chunked import ChunkedDecoder, ChunkSigner, decode_body, decode_stream
from strata.config import Settings
from strata.protocol.checksums import checksum_b64
from strata.protocol.errors import ServiceError
from strata.protocol.http import BodyStream
from strata.sim.clock import Clock
from tests.auth.helpers import (
    ENDPOINT,
    auth_fields,
    body_stream,
    chunk_signed_body,
    read_stream,
    sign,
    signing_key,
    unsigned_trailer_body,
)

DOC_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DOC_SCOPE = "20130524/us-east-1/s3/aws4_request"
DOC_DATE = "20130524T000000Z"
DOC_DATA = [b"a" * 65536, b"a" * 1024]


def _doc_signer(seed: str) -> ChunkSigner:
    return ChunkSigner(signing_key(DOC_SECRET, "20130524", "us-east-1", "s3"), DOC_DATE, DOC_SCOPE, seed)


def _doc_body(sigs: list[str], trailer: tuple[str, str] | None = None) -> bytes:
    body = (
        f"10000;chunk-signature={sigs[0]}\r\n".encode()
        + DOC_DATA[0]
        + b"\r\n"
        + f"400;chunk-signature={sigs[1]}\r\n".encode()
        + DOC_DATA[1]
        + b"\r\n"
        + f"0;chunk-signature={sigs[2]}\r\n".encode()
    )
    if trailer:
        body += f"{trailer[0]}\r\nx-amz-trailer-signature:{trailer[1]}\r\n".encode()
    return body + b"\r\n"


DOC_SIGNED = (
    "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
    [
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
        "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
    ],
)
DOC_TRAILER = (
    "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",
    [
        "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
        "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
        "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
    ],
    ("x-amz-checksum-crc32c:sOO8/Q==", "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435"),
)


@pytest.mark.parametrize("piece", [1, 7, 100, 65536, 70000, 1 << 20])
def test_documented_signed_example(piece: int) -> None:
    seed, sigs = DOC_SIGNED
    decoder = ChunkedDecoder(_doc_signer(seed), expected_trailers=frozenset(), decoded_length=66560)
    body = _doc_body(sigs)
    out = b"".join(b"".join(decoder.feed(body[i : i + piece])) for i in range(0, len(body), piece))
    assert decoder.finish() == {}
    assert out == b"".join(DOC_DATA)


def test_documented_signed_trailer_example() -> None:
    seed, sigs, trailer = DOC_TRAILER
    decoder = ChunkedDecoder(
        _doc_signer(seed),
        signed_trailer=True,
        expected_trailers=frozenset({"x-amz-checksum-crc32c"}),
        decoded_length=66560,
    )
    data, trailers = decode_body(_doc_body(sigs, trailer), decoder)
    assert data == b"".join(DOC_DATA)
    assert trailers == {"x-amz-checksum-crc32c": "sOO8/Q=="}
    assert checksum_b64("CRC32C", data) == "sOO8/Q=="


def test_our_generator_matches_the_documented_signatures() -> None:
    seed, sigs = DOC_SIGNED
    body = chunk_signed_body(DOC_DATA, secret=DOC_SECRET, amz_date=DOC_DATE, scope=DOC_SCOPE, seed=seed)
    assert body == _doc_body(sigs)
    seed, sigs, trailer = DOC_TRAILER
    body = chunk_signed_body(
        DOC_DATA,
        secret=DOC_SECRET,
        amz_date=DOC_DATE,
        scope=DOC_SCOPE,
        seed=seed,
        trailers={"x-amz-checksum-crc32c": "sOO8/Q=="},
    )
    assert body == _doc_body(sigs, trailer)


def _tamper_cases() -> list[tuple[str, bytes]]:
    seed, sigs = DOC_SIGNED
    good = _doc_body(sigs)

    def chunk(data: bytes, sig: str) -> bytes:
        return f"{len(data):x};chunk-signature={sig}\r\n".encode() + data + b"\r\n"

    final = f"0;chunk-signature={sigs[2]}\r\n\r\n".encode()
    return [
        ("data byte changed", good.replace(b"a\r\n400;", b"b\r\n400;", 1)),
        ("chunk signature changed", good.replace(sigs[1].encode(), b"0" * 64)),
        ("chunk signature missing", good.replace(f"400;chunk-signature={sigs[1]}".encode(), b"400")),
        ("final signature replaced", good.replace(sigs[2].encode(), sigs[1].encode())),
        ("chunks reordered", chunk(DOC_DATA[1], sigs[1]) + chunk(DOC_DATA[0], sigs[0]) + final),
        ("chunk dropped", chunk(DOC_DATA[0], sigs[0]) + final),
        (
            "chunk appended",
            chunk(DOC_DATA[0], sigs[0]) + chunk(DOC_DATA[1], sigs[1]) + chunk(b"a", sigs[2]) + final,
        ),
    ]


@pytest.mark.parametrize(("name", "body"), _tamper_cases(), ids=[c[0] for c in _tamper_cases()])
def test_tampered_chunk_bodies(name: str, body: bytes) -> None:
    decoder = ChunkedDecoder(_doc_signer(DOC_SIGNED[0]), expected_trailers=frozenset())
    with pytest.raises(ServiceError) as info:
        decode_body(body, decoder)
    assert (info.value.code, info.value.status) == ("SignatureDoesNotMatch", 403)


@pytest.mark.parametrize(
    ("name", "mutate"),
    [
        ("checksum changed", lambda b: b.replace(b"sOO8/Q==", b"AAAAAA==")),
        ("trailer added", lambda b: b.replace(b"sOO8/Q==\r\n", b"sOO8/Q==\r\nx-amz-meta-x:1\r\n")),
        ("trailer dropped", lambda b: b.replace(b"x-amz-checksum-crc32c:sOO8/Q==\r\n", b"")),
        ("trailer signature changed", lambda b: b.replace(DOC_TRAILER[2][1].encode(), b"f" * 64)),
        (
            "trailer signature missing",
            lambda b: b.replace(f"x-amz-trailer-signature:{DOC_TRAILER[2][1]}\r\n".encode(), b""),
        ),
    ],
)
def test_tampered_trailers(name: str, mutate) -> None:
    seed, sigs, trailer = DOC_TRAILER
    decoder = ChunkedDecoder(_doc_signer(seed), signed_trailer=True)
    with pytest.raises(ServiceError) as info:
        decode_body(mutate(_doc_body(sigs, trailer)), decoder)
    assert info.value.code in ("SignatureDoesNotMatch", "MalformedTrailerError")


@pytest.mark.parametrize(
    "body",
    [
        b"10000;chunk-signature=ab\r\naaaa",  # truncated data
        b"zz\r\n",  # not hex
        b"5\r\nabcdefgh\r\n0\r\n\r\n",  # longer than declared
        b"5\r\nabcde\r\n",  # no final chunk
        b"1" * 5000,  # endless header line
    ],
)
def test_malformed_framing(body: bytes) -> None:
    with pytest.raises(ServiceError) as info:
        decode_body(body, ChunkedDecoder(None))
    assert info.value.status == 400


def test_decoded_length_mismatch() -> None:
    body = unsigned_trailer_body([b"abc"], {"x-amz-checksum-crc32": checksum_b64("CRC32", b"abc")})
    with pytest.raises(ServiceError) as info:
        decode_body(body, ChunkedDecoder(None, decoded_length=4))
    assert info.value.code == "IncompleteBody"


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"])
def test_unsigned_trailer_checksums_verified(algorithm: str) -> None:
    data = os.urandom(200_000)
    name = f"x-amz-checksum-{algorithm.lower()}"
    good = unsigned_trailer_body([data[:100_000], data[100_000:]], {name: checksum_b64(algorithm, data)})
    decoded, trailers = decode_body(good, ChunkedDecoder(None, expected_trailers=frozenset({name})))
    assert decoded == data and trailers == {name: checksum_b64(algorithm, data)}
    bad = unsigned_trailer_body([data], {name: checksum_b64(algorithm, b"other")})
    with pytest.raises(ServiceError) as info:
        decode_body(bad, ChunkedDecoder(None, expected_trailers=frozenset({name})))
    assert (info.value.code, info.value.status) == ("BadDigest", 400)
    assert algorithm in info.value.message


@pytest.mark.parametrize("checksum_cls", [Crc32Checksum, CrtCrc32cChecksum])
def test_botocore_aws_chunked_wrapper_bodies(checksum_cls: type) -> None:
    # Exactly what boto3 sends for PutObject over TLS: its own AwsChunkedWrapper framing.
    data = os.urandom(3 * 1024 * 1024 + 17)
    name = "x-amz-checksum-crc32" if checksum_cls is Crc32Checksum else "x-amz-checksum-crc32c"
    body = AwsChunkedWrapper(BytesIO(data), checksum_cls=checksum_cls, checksum_name=name).read()
    decoded, trailers = decode_body(body, ChunkedDecoder(None, expected_trailers=frozenset({name})))
    assert decoded == data
    assert trailers[name] == checksum_b64("CRC32" if checksum_cls is Crc32Checksum else "CRC32C", data)


# ---- through the Authenticator, streaming


@pytest.fixture
def auth() -> Authenticator:
    return Authenticator(Settings(), Clock())


def _signed_stream_request(data_chunks: list[bytes], mode: str, trailers: dict[str, str] | None, piece: int):
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(sum(map(len, data_chunks))),
    }
    if trailers:
        headers["x-amz-trailer"] = ",".join(trailers)
    # Sign the headers first (the seed signature), then build the body chained from it.
    probe = sign("PUT", f"{ENDPOINT}/bucket/key", headers=headers, streaming_mode=mode)
    fields = auth_fields(probe)
    amz_date = probe.headers["x-amz-date"]
    scope = fields["Credential"].split("/", 1)[1]
    if mode == "STREAMING-UNSIGNED-PAYLOAD-TRAILER":
        body = unsigned_trailer_body(data_chunks, trailers or {})
    else:
        body = chunk_signed_body(
            data_chunks,
            secret="test",
            amz_date=amz_date,
            scope=scope,
            seed=fields["Signature"],
            trailers=trailers,
        )
    probe.stream = body_stream(body, piece)
    return probe, body


@pytest.mark.parametrize(
    ("mode", "with_trailer"),
    [
        ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", False),
        ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", True),
        ("STREAMING-UNSIGNED-PAYLOAD-TRAILER", True),
    ],
)
def test_streaming_modes_through_authenticator(auth: Authenticator, mode: str, with_trailer: bool) -> None:
    rng = random.Random(7)
    chunks = [rng.randbytes(n) for n in (8192, 65536, 100_000, 1)]
    data = b"".join(chunks)
    trailers = {"x-amz-checksum-crc64nvme": checksum_b64("CRC64NVME", data)} if with_trailer else None
    req, body = _signed_stream_request(chunks, mode, trailers, 4093)
    req.headers.set("content-length", str(len(body)))
    assert auth.authenticate(req, "s3", "PutObject") is not None
    assert req.stream is not None and req.stream.length == len(data)
    assert "content-encoding" not in req.headers  # aws-chunked is stripped, as S3 stores it
    assert req.headers["content-length"] == str(len(data))
    assert read_stream(req.stream) == data
    assert req.stream.trailers == (trailers or {})


def test_content_encoding_keeps_other_codings(auth: Authenticator) -> None:
    req = sign(
        "PUT",
        f"{ENDPOINT}/bucket/key",
        headers={"Content-Encoding": "gzip,aws-chunked"},
        streaming_mode="STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        stream=body_stream(b"0\r\n\r\n"),
    )
    assert auth.authenticate(req, "s3", "PutObject") is not None
    assert req.headers["content-encoding"] == "gzip"
    assert read_stream(req.stream) == b""


def test_bad_chunk_fails_before_the_consumer_finishes(auth: Authenticator) -> None:
    chunks = [b"a" * 65536, b"b" * 65536, b"c" * 10]
    req, body = _signed_stream_request(chunks, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", None, 8192)
    tampered = body.replace(b"c" * 10, b"d" * 10)
    req.stream = body_stream(tampered, 8192)
    assert auth.authenticate(req, "s3", "PutObject") is not None

    async def consume() -> int:
        got = 0
        assert req.stream is not None
        with pytest.raises(ServiceError) as info:
            async for piece in req.stream:
                got += len(piece)
        assert info.value.code == "SignatureDoesNotMatch"
        return got

    assert asyncio.run(consume()) < len(b"".join(chunks))


def test_stream_is_decoded_incrementally() -> None:
    # A 4 MiB single chunk arriving in 64 KiB reads comes out in pieces, never whole.
    data = b"z" * (4 << 20)
    body = unsigned_trailer_body([data], {})
    stream = body_stream(body, 65536)
    stream.source = decode_stream(stream.source, ChunkedDecoder(None, expected_trailers=frozenset()), stream)

    async def sizes() -> list[int]:
        return [len(p) async for p in stream]

    got = asyncio.run(sizes())
    assert sum(got) == len(data) and max(got) <= 65536


def test_hex_payload_hash_on_streams(auth: Authenticator) -> None:
    data = os.urandom(300_000)
    req = sign("PUT", f"{ENDPOINT}/bucket/key", body=data)
    req.body = b""
    req.stream = body_stream(data, 10_000)
    assert auth.authenticate(req, "s3", "PutObject") is not None
    assert read_stream(req.stream) == data

    req = sign("PUT", f"{ENDPOINT}/bucket/key", body=data)
    req.body = b""
    req.stream = body_stream(data[:-1] + bytes([data[-1] ^ 0xFF]), 10_000)  # last byte always differs
    auth.authenticate(req, "s3", "PutObject")

    async def consume() -> int:
        got = 0
        assert req.stream is not None
        with pytest.raises(ServiceError) as info:
            async for piece in req.stream:
                got += len(piece)
        assert info.value.code == "XAmzContentSHA256Mismatch"
        assert info.value.fields["ClientComputedContentSHA256"] == hashlib.sha256(data).hexdigest()
        return got

    assert asyncio.run(consume()) < len(data)


def test_buffered_chunked_body_exposes_trailers_as_headers(auth: Authenticator) -> None:
    data = b"hello"
    value = checksum_b64("SHA256", data)
    req, body = _signed_stream_request(
        [data], "STREAMING-UNSIGNED-PAYLOAD-TRAILER", {"x-amz-checksum-sha256": value}, 10
    )
    req.stream = None
    req.body = body
    assert auth.authenticate(req, "s3", "PutObject") is not None
    assert req.body == data
    assert req.headers["x-amz-checksum-sha256"] == value


def test_empty_stream_body(auth: Authenticator) -> None:
    req, body = _signed_stream_request([], "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", None, 10)
    assert auth.authenticate(req, "s3", "PutObject") is not None
    assert read_stream(req.stream) == b""
    assert isinstance(req.stream, BodyStream)


def test_unannounced_trailer_is_refused(auth: Authenticator) -> None:
    data = b"payload"
    req, body = _signed_stream_request([data], "STREAMING-UNSIGNED-PAYLOAD-TRAILER", None, 100)
    req.stream = body_stream(
        unsigned_trailer_body([data], {"x-amz-checksum-crc32": checksum_b64("CRC32", data)})
    )
    assert auth.authenticate(req, "s3", "PutObject") is not None
    with pytest.raises(ServiceError) as info:
        read_stream(req.stream)
    assert info.value.code == "MalformedTrailerError"

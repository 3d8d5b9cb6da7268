"""Property tests of the aws-chunked decoder: any slicing decodes the same; any corruption of a
chunk-signed body is refused before all of its data is released."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from strata.auth.chunked import ChunkedDecoder, ChunkSigner
from strata.protocol.checksums import checksum_b64
from strata.protocol.errors import ServiceError
from tests.auth.helpers import chunk_signed_body, signing_key, unsigned_trailer_body

DATE = "20260101T000000Z"
SCOPE = "20260101/us-east-1/s3/aws4_request"
SEED = "a" * 64


def _signer() -> ChunkSigner:
    return ChunkSigner(signing_key("secret", "20260101", "us-east-1", "s3"), DATE, SCOPE, SEED)


def _feed_all(decoder: ChunkedDecoder, body: bytes, cuts: list[int]) -> bytes:
    bounds = sorted({0, len(body), *(c % (len(body) + 1) for c in cuts)})
    out = b"".join(b"".join(decoder.feed(body[a:b])) for a, b in zip(bounds, bounds[1:], strict=False))
    decoder.finish()
    return out


chunk_lists = st.lists(st.binary(min_size=1, max_size=300), max_size=6)


@settings(max_examples=150, deadline=None)
@given(
    chunks=chunk_lists,
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=12),
    signed=st.booleans(),
)
def test_any_slicing_decodes_the_same(chunks: list[bytes], cuts: list[int], signed: bool) -> None:
    data = b"".join(chunks)
    name = "x-amz-checksum-crc32c"
    trailers = {name: checksum_b64("CRC32C", data)}
    if signed:
        body = chunk_signed_body(
            chunks, secret="secret", amz_date=DATE, scope=SCOPE, seed=SEED, trailers=trailers
        )
        decoder = ChunkedDecoder(
            _signer(), signed_trailer=True, expected_trailers=frozenset({name}), decoded_length=len(data)
        )
    else:
        body = unsigned_trailer_body(chunks, trailers)
        decoder = ChunkedDecoder(None, expected_trailers=frozenset({name}), decoded_length=len(data))
    assert _feed_all(decoder, body, cuts) == data
    assert decoder.trailers == trailers


@settings(max_examples=200, deadline=None)
@given(
    chunks=st.lists(st.binary(min_size=1, max_size=200), min_size=1, max_size=4),
    position=st.integers(min_value=0),
    flip=st.integers(min_value=1, max_value=255),
)
def test_any_corruption_of_a_signed_body_is_refused(chunks: list[bytes], position: int, flip: int) -> None:
    body = bytearray(chunk_signed_body(chunks, secret="secret", amz_date=DATE, scope=SCOPE, seed=SEED))
    i = position % len(body)
    body[i] ^= flip
    decoder = ChunkedDecoder(_signer(), expected_trailers=frozenset(), decoded_length=sum(map(len, chunks)))
    released = b""
    try:
        for piece in decoder.feed(bytes(body)):
            released += piece
        decoder.finish()
    except ServiceError:
        return
    # The only corruptions that may pass are in ignorable bytes (e.g. hex case of the size line).
    assert released == b"".join(chunks)

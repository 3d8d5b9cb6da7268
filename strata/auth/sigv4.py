"""AWS Signature Version 4 verification: Authorization header and presigned query strings.

`Authenticator.authenticate(request, service, operation)` returns the Principal who signed the
request, None for the few requests AWS serves unsigned (S3 browser POST uploads, CORS preflight),
or raises the ServiceError the service itself would answer with (see `strata.auth.errors`).

After the signature checks out, the request body is set up for verification as it is read:
a hex `x-amz-content-sha256` is compared with the body (buffered bodies now, streams as their
last byte arrives), and aws-chunked bodies are decoded with every chunk signature and trailer
checked (`strata.auth.chunked`). Time comes from `strata.sim.clock`: presigned URLs expire by the
simulated clock, while the 15-minute skew allowance is judged against the machine's real time
(clients sign with it, however far the simulated clock was moved).
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from strata.auth import errors, sigv2
from strata.auth.canonical import (
    ALGORITHM,
    UNSIGNED_PAYLOAD,
    canonical_query,
    canonical_request,
    canonical_uri,
    s3_reencoded_uri,
    signatures_match,
    string_to_sign,
)
from strata.auth.chunked import (
    STREAMING_MODES,
    STREAMING_SIGNED_TRAILER,
    STREAMING_UNSIGNED_TRAILER,
    ChunkedDecoder,
    ChunkSigner,
    decode_body,
    decode_stream,
    payload_mismatch,
    verify_sha256_stream,
)
from strata.auth.credentials import CredentialStore
from strata.auth.directory import CredentialProblem
from strata.auth.principal import ANONYMOUS, Principal
from strata.auth.regions import valid_region
from strata.config import Settings
from strata.protocol.errors import ServiceError
from strata.protocol.http import Headers, HttpRequest
from strata.services.registry import SERVICES
from strata.sim.clock import Clock
from strata.sim.clock import clock as default_clock

MAX_SKEW = 15 * 60  # seconds either way
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600
_HEX64 = frozenset("0123456789abcdef")
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_BODY_HASHED = "="  # marks a payload hash computed here from the buffered body
_DATES: dict[str, float | None] = {}
_WELL_FORMED = re.compile(
    ALGORITHM + r" Credential=([^,\s]+), ?SignedHeaders=([^,\s]+), ?Signature=([^,\s]+)"
).fullmatch  # parse_amz_date results: clients sign many requests a second


_PADS: dict[bytes, tuple] = {}  # signing key -> its HMAC inner/outer SHA-256 states


def _hmac_hex(key: bytes, message: str) -> str:
    """HMAC-SHA256 from the key's precomputed pad states: OpenSSL 3 sets up an HMAC context
    per call at several times the cost of hashing a canonical request."""
    pads = _PADS.get(key)
    if pads is None:
        if len(_PADS) > 256:
            _PADS.clear()
        block = key.ljust(64, b"\0")  # signing keys are 32 bytes, under SHA-256's block size
        pads = _PADS[key] = (
            hashlib.sha256(bytes(b ^ 0x36 for b in block)),
            hashlib.sha256(bytes(b ^ 0x5C for b in block)),
        )
    inner = pads[0].copy()
    inner.update(message.encode("utf-8"))
    outer = pads[1].copy()
    outer.update(inner.digest())
    return outer.hexdigest()


def parse_amz_date(text: str) -> float | None:
    """Epoch seconds of an ISO 8601 basic timestamp (20130524T000000Z), None if malformed."""
    try:
        return _DATES[text]
    except KeyError:
        pass
    if len(_DATES) > 256:
        _DATES.clear()
    epoch = _DATES[text] = _parse_amz_date(text)
    return epoch


def _parse_amz_date(text: str) -> float | None:
    # Sliced by hand: strptime would be a fifth of the cost of verifying a small request.
    if len(text) != 16 or text[8] != "T" or text[15] != "Z" or not (text[:8] + text[9:15]).isdigit():
        return None
    year, month, day = int(text[:4]), int(text[4:6]), int(text[6:8])
    hour, minute, second = int(text[9:11]), int(text[11:13]), int(text[13:15])
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        return None
    return float(calendar.timegm((year, month, day, hour, minute, second)))


def format_amz_date(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime(_AMZ_DATE)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Signed:
    """What one request's signature claims: parsed from the header or the presigned query."""

    __slots__ = (
        "access_key",
        "date",
        "region",
        "service",
        "scope",
        "signed",
        "signed_str",
        "signature",
        "principal",
    )

    def __init__(self, credential: str, signed_str: str, signature: str) -> None:
        parts = credential.split("/")
        if len(parts) != 5 or parts[4] != "aws4_request" or not parts[0]:
            raise ValueError(credential)
        self.access_key, self.date, self.region, self.service = parts[0], parts[1], parts[2], parts[3]
        self.scope = "/".join(parts[1:])
        self.signed_str = signed_str
        self.signed = signed_str.split(";")
        self.signature = signature
        self.principal: Principal | None = None  # set when the key is resolved


class Authenticator:
    """Verifies SigV4 for every service; one instance per server (it caches signing keys)."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or default_clock
        self.store = CredentialStore(settings)
        self.signing_names = {name: info.signing_name for name, info in SERVICES.items()}

    # ---- entry point

    def authenticate(self, request: HttpRequest, service: str, operation: str) -> Principal | None:
        auth = request.headers.get("authorization")
        if auth is not None:
            return self._verify_header(request, service, auth)
        qs = request.query_string
        if "X-Amz-" in qs:
            query = request.query_dict()
            if "X-Amz-Signature" in query or "X-Amz-Credential" in query or "X-Amz-Algorithm" in query:
                return self._verify_presigned(request, service, query)
        if service == "s3":
            if operation == "PostObject" or request.method == "OPTIONS":
                return None  # browser POST carries its own signed policy; CORS preflight is anonymous
            if "AWSAccessKeyId=" in qs:
                return sigv2.verify_query(request, self.store, self.clock.time())
            return ANONYMOUS  # allowed only what a bucket policy grants everyone
        raise errors.service_error(service, "missing")

    def verify_presigned_token(self, token: str, signing_name: str) -> Principal:
        """Verify a presigned URL used as a password, like RDS IAM database tokens
        (`rds.generate_db_auth_token`: `host:port/?Action=connect&DBUser=..&X-Amz-...`, signing
        name `rds-db`). Raises ServiceError (the query-protocol family's codes) when invalid."""
        host, _, rest = token.partition("/")
        path, _, query_string = ("/" + rest).partition("?")
        request = HttpRequest("GET", path, query_string, Headers([("host", host)]), host=host)
        query = request.query_dict()
        if "X-Amz-Signature" not in query:
            raise errors.service_error(signing_name, "missing")
        return self._verify_presigned(request, signing_name, query)

    # ---- Authorization header

    def _verify_header(self, request: HttpRequest, service: str, auth: str) -> Principal:
        s3 = service == "s3"
        well_formed = _WELL_FORMED(auth)  # what every SDK sends: no need to take it apart by hand
        if well_formed is not None:
            credential, signed_headers, signature = well_formed.groups()
        else:
            sigv2_principal, fields = self._header_fields(request, service, auth)
            if sigv2_principal is not None:
                return sigv2_principal
            credential, signed_headers, signature = (
                fields["Credential"],
                fields["SignedHeaders"],
                fields["Signature"],
            )
        try:
            signed = _Signed(credential, signed_headers, signature)
        except ValueError:
            if s3:
                raise errors.s3_header_malformed(
                    'the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".'
                ) from None
            raise errors.service_error(
                service,
                "incomplete",
                f"Credential must have exactly 5 slash-delimited elements, e.g. "
                f"keyid/date/region/service/term, got '{credential}'",
            ) from None
        self._check_scope_service(signed, service)
        if signed.region != self.settings.region:
            self._check_scope_region(signed, service, presigned=False)
        secret = self._secret(signed, service, request)
        amz_date, epoch = self._request_time(request, service, auth)
        if signed.date != amz_date[:8]:
            if s3:
                raise errors.s3_header_malformed(
                    "Invalid credential date. Date is not the same as X-Amz-Date."
                )
            raise _bad_sig(
                service,
                (
                    f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                    f"'{signed.date}' != '{amz_date[:8]}', from '{amz_date}'."
                ),
            )
        self._check_skew(service, amz_date, epoch)
        if not s3 and "host" not in signed.signed:
            raise _bad_sig(
                service, "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
            )

        payload_hash = self._payload_hash(request, service)
        key = self.store.signing_key(secret, signed.date, signed.region, signed.service)
        query = canonical_query(request.query_string)
        if payload_hash.startswith(_BODY_HASHED):
            # Hashed from the body itself (no x-amz-content-sha256): the signature covers the
            # body through this hash, so there is nothing left to compare it with.
            self._check_signature(request, service, signed, key, amz_date, query, payload_hash[1:])
            return signed.principal  # type: ignore[return-value]
        self._check_signature(request, service, signed, key, amz_date, query, payload_hash)
        self._prepare_body(request, service, payload_hash, signed, key, amz_date)
        return signed.principal  # type: ignore[return-value]

    def _header_fields(
        self, request: HttpRequest, service: str, auth: str
    ) -> tuple[Principal | None, dict[str, str]]:
        """An Authorization header in any form SigV4 allows (components separated by commas
        and/or spaces, in any order): its fields, or the principal of a SigV2 header (S3)."""
        s3 = service == "s3"
        algorithm, _, rest = auth.strip().partition(" ")
        if algorithm != ALGORITHM:
            if s3:
                if algorithm == "AWS":
                    return sigv2.verify_header(request, rest.strip(), self.store, self.clock.real_time()), {}
                raise ServiceError(
                    "InvalidArgument",
                    "Unsupported Authorization Type",
                    400,
                    fields={"ArgumentName": "Authorization", "ArgumentValue": auth},
                )
            raise errors.service_error(service, "incomplete", f"Unsupported AWS 'algorithm': '{algorithm}'.")
        fields: dict[str, str] = {}
        # Components are separated by commas and/or spaces; none may contain either.
        for part in rest.replace(",", " ").split():
            name, sep, value = part.partition("=")
            if not sep:
                if s3:
                    raise errors.s3_header_malformed(f"'{part}' is not a valid key=value pair.")
                raise errors.service_error(
                    service,
                    "incomplete",
                    f"'{part}' not a valid key=value pair (missing equal-sign) in Authorization header: '{auth}'.",
                )
            fields[name.strip()] = value.strip()
        missing = [k for k in ("Credential", "SignedHeaders", "Signature") if not fields.get(k)]
        if missing:
            if s3:
                raise errors.s3_header_malformed(
                    "the authorization header requires three components: Credential, SignedHeaders, and Signature."
                )
            detail = " ".join(f"Authorization header requires '{k}' parameter." for k in missing)
            raise errors.service_error(service, "incomplete", f"{detail} Authorization={auth}")
        return None, fields

    def _request_time(self, request: HttpRequest, service: str, auth: str) -> tuple[str, float]:
        value = request.headers.get("x-amz-date")
        if value is not None:
            epoch = parse_amz_date(value)
        else:
            value = request.headers.get("date")
            epoch = None
            if value is not None:
                try:
                    epoch = parsedate_to_datetime(value).timestamp()
                except (TypeError, ValueError):
                    epoch = None
        if value is None or epoch is None:
            if service == "s3":
                raise errors.s3_access_denied("AWS authentication requires a valid Date or x-amz-date header")
            raise errors.service_error(
                service,
                "incomplete",
                f"Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization={auth}",
            )
        if request.headers.get("x-amz-date") is None:
            value = format_amz_date(epoch)
        return value, epoch

    def _check_skew(self, service: str, amz_date: str, epoch: float) -> None:
        # Against real time: SDKs sign with the machine's clock, so moving the simulated clock must
        # not make every signed request "too skewed" (presigned expiry does follow the simulated one).
        now = self.clock.real_time()
        if abs(now - epoch) <= MAX_SKEW:
            return
        if service == "s3":
            raise ServiceError(
                "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.",
                403,
                fields={
                    "RequestTime": amz_date,
                    "ServerTime": _iso(now),
                    "MaxAllowedSkewMilliseconds": "900000",
                },
            )
        if epoch < now:
            detail = (
                f"Signature expired: {amz_date} is now earlier than {format_amz_date(now - MAX_SKEW)} "
                f"({format_amz_date(now)} - 15 min.)"
            )
        else:
            detail = (
                f"Signature not yet current: {amz_date} is still later than {format_amz_date(now + MAX_SKEW)} "
                f"({format_amz_date(now)} + 15 min.)"
            )
        raise errors.service_error(service, "skewed", detail)

    def _payload_hash(self, request: HttpRequest, service: str) -> str:
        value = request.headers.get("x-amz-content-sha256")
        if value is None:
            if service == "s3":
                raise ServiceError(
                    "InvalidRequest", "Missing required header for this request: x-amz-content-sha256", 400
                )
            return _BODY_HASHED + hashlib.sha256(request.body).hexdigest()
        if value == UNSIGNED_PAYLOAD or value in STREAMING_MODES:
            return value
        lowered = value.lower()
        if len(lowered) == 64 and _HEX64.issuperset(lowered):
            return lowered
        raise ServiceError(
            "InvalidArgument",
            "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, "
            "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD, STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER "
            "or a valid sha256 value.",
            400,
            fields={"ArgumentName": "x-amz-content-sha256", "ArgumentValue": value},
        )

    # ---- presigned query string

    def _verify_presigned(self, request: HttpRequest, service: str, query: dict[str, str]) -> Principal:
        s3 = service == "s3"
        required = (
            "X-Amz-Algorithm",
            "X-Amz-Credential",
            "X-Amz-Signature",
            "X-Amz-Date",
            "X-Amz-SignedHeaders",
        )
        if any(not query.get(k) for k in required) or (s3 and "X-Amz-Expires" not in query):
            if s3:
                raise errors.s3_query_error(
                    "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
                    "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters."
                )
            raise errors.service_error(service, "incomplete", "AWS query-string parameters missing.")
        if query["X-Amz-Algorithm"] != ALGORITHM:
            if s3:
                raise errors.s3_query_error('X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"')
            raise errors.service_error(
                service, "incomplete", f"Unsupported AWS 'algorithm': '{query['X-Amz-Algorithm']}'."
            )
        try:
            signed = _Signed(
                query["X-Amz-Credential"], query["X-Amz-SignedHeaders"], query["X-Amz-Signature"]
            )
        except ValueError:
            if s3:
                raise errors.s3_query_error(
                    "Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; "
                    'expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".'
                ) from None
            raise errors.service_error(service, "incomplete", "Credential is mal-formed.") from None
        expires = _presign_expires(query.get("X-Amz-Expires", str(MAX_SKEW)))
        if isinstance(expires, str):
            if s3:
                raise errors.s3_query_error(expires)
            raise errors.service_error(service, "incomplete", expires)
        amz_date = query["X-Amz-Date"]
        epoch = parse_amz_date(amz_date)
        if epoch is None:
            if s3:
                raise errors.s3_query_error(
                    "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\""
                )
            raise errors.service_error(
                service, "incomplete", "X-Amz-Date must be in the ISO8601 Long Format."
            )
        self._check_scope_service(signed, service)
        if signed.region != self.settings.region:
            self._check_scope_region(signed, service, presigned=True)
        secret = self._secret(signed, service, request)
        if signed.date != amz_date[:8]:
            if s3:
                raise errors.s3_query_error(
                    "Error parsing the X-Amz-Credential parameter; incorrect date. This should be the same as X-Amz-Date."
                )
            raise _bad_sig(service, "Date in Credential scope does not match X-Amz-Date.")
        now = self.clock.time()
        if now > epoch + expires:
            if s3:
                raise errors.s3_access_denied(
                    "Request has expired",
                    **{
                        "X-Amz-Expires": str(expires),
                        "Expires": _iso(epoch + expires),
                        "ServerTime": _iso(now),
                    },
                )
            raise errors.service_error(
                service,
                "expired",
                f"Signature expired: {amz_date} is now earlier than "
                f"{format_amz_date(now - expires)} ({format_amz_date(now)} - {expires} sec.)",
            )
        if epoch > now + MAX_SKEW:
            if s3:
                raise errors.s3_access_denied("Request is not valid yet")
            raise errors.service_error(
                service,
                "skewed",
                f"Signature not yet current: {amz_date} is still later "
                f"than {format_amz_date(now + MAX_SKEW)} ({format_amz_date(now)} + 15 min.)",
            )
        key = self.store.signing_key(secret, signed.date, signed.region, signed.service)
        canonical_qs = canonical_query(request.query_string, skip="X-Amz-Signature")
        # S3 presigns UNSIGNED-PAYLOAD; other services sign the body's hash (empty for a GET).
        if s3:
            payload_hash = (
                query.get("X-Amz-Content-Sha256")
                or request.headers.get("x-amz-content-sha256")
                or UNSIGNED_PAYLOAD
            )
        else:
            payload_hash = hashlib.sha256(request.body).hexdigest()
        self._check_signature(request, service, signed, key, amz_date, canonical_qs, payload_hash)
        if s3 and payload_hash != UNSIGNED_PAYLOAD:
            self._prepare_body(request, service, payload_hash.lower(), signed, key, amz_date)
        return signed.principal  # type: ignore[return-value]

    # ---- shared steps

    def _check_scope_service(self, signed: _Signed, service: str) -> None:
        expected = self.signing_names.get(service, service)
        if signed.service == expected:
            return
        if service == "s3":
            raise errors.s3_header_malformed(
                f'incorrect service "{signed.service}". This endpoint belongs to "s3".'
            )
        raise _bad_sig(service, f"Credential should be scoped to correct service: '{expected}'. ")

    def _check_scope_region(self, signed: _Signed, service: str, *, presigned: bool) -> None:
        """A region AWS could have (`regions.valid_region`), else the service's own refusal."""
        if valid_region(signed.region, self.settings.region):
            return
        if service == "s3":
            expecting = f"the region '{signed.region}' is wrong; expecting '{self.settings.region}'"
            fields = {"Region": self.settings.region}
            if presigned:
                raise ServiceError(
                    "AuthorizationQueryParametersError",
                    f"Error parsing the X-Amz-Credential parameter; {expecting}",
                    400,
                    fields=fields,
                )
            raise ServiceError(
                "AuthorizationHeaderMalformed",
                f"The authorization header is malformed; {expecting}",
                400,
                fields=fields,
            )
        raise _bad_sig(service, "Credential should be scoped to a valid region. ")

    def _secret(self, signed: _Signed, service: str, request: HttpRequest) -> str:
        token = request.headers.get("x-amz-security-token")
        if token is None and "X-Amz-Security-Token" in request.query_string:
            token = request.query_dict().get("X-Amz-Security-Token")
        try:
            secret, signed.principal = self.store.resolve(signed.access_key, token)
        except CredentialProblem as e:
            raise errors.credential_error(service, e.kind, signed.access_key) from None
        return secret

    def _check_signature(
        self,
        request: HttpRequest,
        service: str,
        signed: _Signed,
        key: bytes,
        amz_date: str,
        query: str,
        payload_hash: str,
    ) -> None:
        s3 = service == "s3"
        uri = canonical_uri(request.raw_path, s3)
        canonical = canonical_request(request, uri, query, signed.signed, signed.signed_str, payload_hash)
        to_sign = string_to_sign(amz_date, signed.scope, canonical)
        expected = _hmac_hex(key, to_sign)
        # (signatures_match inlined: compare_digest takes str when both are ASCII, as ours is)
        provided = signed.signature
        if provided.isascii() and hmac.compare_digest(expected, provided):
            return
        if s3:
            alt_uri = s3_reencoded_uri(request.raw_path)
            if alt_uri != uri:
                alt = canonical_request(
                    request, alt_uri, query, signed.signed, signed.signed_str, payload_hash
                )
                alt_expected = hmac.new(
                    key, string_to_sign(amz_date, signed.scope, alt).encode("utf-8"), hashlib.sha256
                ).hexdigest()
                if signatures_match(alt_expected, signed.signature):
                    return
            raise ServiceError(
                "SignatureDoesNotMatch",
                errors.S3_SIG_MISMATCH,
                403,
                fields={
                    "AWSAccessKeyId": signed.access_key,
                    "StringToSign": to_sign,
                    "SignatureProvided": signed.signature,
                    "CanonicalRequest": canonical,
                },
            )
        raise errors.service_error(service, "bad_signature")

    def _prepare_body(
        self,
        request: HttpRequest,
        service: str,
        payload_hash: str,
        signed: _Signed,
        key: bytes,
        amz_date: str,
    ) -> None:
        """Arrange for the body to be checked against what the signature says about it."""
        if payload_hash == UNSIGNED_PAYLOAD:
            return
        if payload_hash in STREAMING_MODES:
            self._prepare_chunked(request, payload_hash, signed, key, amz_date)
            return
        stream = request.stream
        if stream is not None:
            stream.source = verify_sha256_stream(stream.source, payload_hash)
            return
        computed = hashlib.sha256(request.body).hexdigest()
        if computed != payload_hash:
            if service == "s3":
                raise payload_mismatch(payload_hash, computed)
            raise errors.service_error(service, "bad_payload_hash")

    def _prepare_chunked(
        self, request: HttpRequest, mode: str, signed: _Signed, key: bytes, amz_date: str
    ) -> None:
        headers = request.headers
        decoded_text = headers.get("x-amz-decoded-content-length")
        decoded_length = None
        if decoded_text is not None:
            if not decoded_text.isdigit():
                raise ServiceError(
                    "InvalidArgument", "x-amz-decoded-content-length must be a non-negative integer", 400
                )
            decoded_length = int(decoded_text)
        trailer_header = headers.get("x-amz-trailer")
        # Trailers must be announced in x-amz-trailer (so their checksums can be computed on the way).
        expected = frozenset(n.strip().lower() for n in (trailer_header or "").split(",") if n.strip())
        signer = (
            None
            if mode == STREAMING_UNSIGNED_TRAILER
            else ChunkSigner(key, amz_date, signed.scope, signed.signature)
        )
        decoder = ChunkedDecoder(
            signer,
            signed_trailer=mode == STREAMING_SIGNED_TRAILER,
            expected_trailers=expected,
            decoded_length=decoded_length,
        )
        # S3 stores Content-Encoding without the transfer-level aws-chunked token.
        encoding = headers.get("content-encoding")
        if encoding is not None:
            rest = [
                e.strip() for e in encoding.split(",") if e.strip() and e.strip().lower() != "aws-chunked"
            ]
            if rest:
                headers.set("content-encoding", ",".join(rest))
            else:
                headers.remove("content-encoding")
        stream = request.stream
        if stream is not None:
            stream.source = decode_stream(stream.source, decoder, stream)
            stream.length = decoded_length
            # Content-Length counted the framing; what the operation sees is the decoded size.
            if decoded_length is not None:
                headers.set("content-length", str(decoded_length))
            else:
                headers.remove("content-length")
            return
        body, trailers = decode_body(request.body, decoder)
        request.body = body
        headers.set("content-length", str(len(body)))
        for name, value in trailers.items():
            headers.set(name, value)  # the model reads x-amz-checksum-* from headers


def _presign_expires(text: str) -> int | str:
    """X-Amz-Expires as seconds, or the message S3 gives for an unusable value."""
    if not text.lstrip("-").isdigit():
        return "X-Amz-Expires should be a number"
    expires = int(text)
    if expires < 0:
        return "X-Amz-Expires must be non-negative"
    if expires > MAX_PRESIGN_EXPIRES:
        return (
            "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be "
            "less than 604800 seconds"
        )
    return expires


def _bad_sig(service: str, message: str) -> ServiceError:
    """The service's bad-signature error with a more specific message."""
    code, status, _ = errors.FAMILY_BY_SERVICE.get(service, errors.FAMILY_BY_SERVICE["sts"])["bad_signature"]
    return ServiceError(code, message, status)

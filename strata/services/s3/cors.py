"""CORS: Put/Get/DeleteBucketCors, and what the gateway asks of a bucket's rules
(strata.gateway.cors answers the preflight OPTIONS and decorates actual requests).

PutBucketCors validates as S3 does: 1 to 100 rules, each with an AllowedOrigin and an
AllowedMethod (else MalformedXML); methods only GET, PUT, POST, DELETE, HEAD; at most one `*` in
an AllowedOrigin or an AllowedHeader; no wildcard in an ExposeHeader (InvalidRequest).

Matching, as S3 documents it: the first rule whose AllowedOrigin matches the request's Origin
(`*` stands for any run of characters), whose AllowedMethod holds the method, and (preflight
only) whose AllowedHeader entries cover every header named in Access-Control-Request-Headers.
A rule allowing every origin (`*`) answers `Access-Control-Allow-Origin: *` without credentials;
any other echoes the origin and allows credentials.
"""

from __future__ import annotations

import re
from functools import lru_cache

from strata.context import RequestContext
from strata.protocol.errors import ServiceError
from strata.services.s3.core import S3Core

MAX_RULES = 100
METHODS = frozenset({"GET", "PUT", "POST", "DELETE", "HEAD"})
_MALFORMED = "The XML you provided was not well-formed or did not validate against our published schema"
_NOT_ALLOWED = (
    "CORSResponse: This CORS request is not allowed. This is usually because the evalution of "
    "Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are "
    "not whitelisted by the resource's CORS spec."
)
_NOT_ENABLED = "CORSResponse: CORS is not enabled for this bucket."
_VARY = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"

Headers = list[tuple[str, str]]


def _malformed() -> ServiceError:
    return ServiceError("MalformedXML", _MALFORMED, 400)


def _invalid(message: str) -> ServiceError:
    return ServiceError("InvalidRequest", message, 400)


def forbidden(message: str, method: str, resource_type: str) -> ServiceError:
    return ServiceError(
        "AccessForbidden", message, 403, fields={"Method": method, "ResourceType": resource_type}
    )


def validate_rules(config: dict) -> list[dict]:
    """The rules to store, or S3's error for a configuration it refuses."""
    rules = config.get("CORSRules") or []
    if not rules or len(rules) > MAX_RULES:
        raise _malformed()
    stored = []
    for rule in rules:
        origins, methods = rule.get("AllowedOrigins") or [], rule.get("AllowedMethods") or []
        if not origins or not methods:
            raise _malformed()
        for m in methods:
            if m not in METHODS:
                raise _invalid(f"Found unsupported HTTP method in CORS config. Unsupported method is {m}")
        for o in origins:
            if o.count("*") > 1:
                raise _invalid(f'AllowedOrigin "{o}" can not have more than one wildcard.')
        for h in rule.get("AllowedHeaders") or []:
            if h.count("*") > 1:
                raise _invalid(f'AllowedHeader "{h}" can not have more than one wildcard.')
        for h in rule.get("ExposeHeaders") or []:
            if "*" in h:
                raise _invalid(
                    f'ExposeHeader "{h}" contains wildcard. We currently do not support wildcard for ExposeHeader.'
                )
        keep = ("ID", "AllowedHeaders", "AllowedMethods", "AllowedOrigins", "ExposeHeaders", "MaxAgeSeconds")
        stored.append({k: rule[k] for k in keep if k in rule})
    return stored


@lru_cache(maxsize=1024)
def _pattern(text: str, ignore_case: bool) -> re.Pattern[str]:
    """An AllowedOrigin/AllowedHeader with its one `*` as a regular expression."""
    body = ".*".join(re.escape(part) for part in text.split("*"))
    return re.compile(body, re.IGNORECASE if ignore_case else 0)


def _matches(patterns: list[str], value: str, ignore_case: bool = False) -> bool:
    return any(_pattern(p, ignore_case).fullmatch(value) for p in patterns)


def _first_rule(rules: list[dict], origin: str, method: str, headers: list[str] | None) -> dict | None:
    for rule in rules:
        if method not in rule["AllowedMethods"] or not _matches(rule["AllowedOrigins"], origin):
            continue
        allowed = rule.get("AllowedHeaders") or []
        if headers and not all(_matches(allowed, h, ignore_case=True) for h in headers):
            continue
        return rule
    return None


def _rule_headers(rule: dict, origin: str) -> Headers:
    """The matching rule's headers; S3 sends the same on preflights and actual requests."""
    if "*" in rule["AllowedOrigins"]:
        out = [("Access-Control-Allow-Origin", "*")]
    else:
        out = [("Access-Control-Allow-Origin", origin), ("Access-Control-Allow-Credentials", "true")]
    out.append(("Access-Control-Allow-Methods", ", ".join(rule["AllowedMethods"])))
    if rule.get("ExposeHeaders"):
        out.append(("Access-Control-Expose-Headers", ", ".join(rule["ExposeHeaders"])))
    if rule.get("MaxAgeSeconds") is not None:
        out.append(("Access-Control-Max-Age", str(rule["MaxAgeSeconds"])))
    out.append(("Vary", _VARY))
    return out


class CorsOperations(S3Core):
    async def put_bucket_cors(self, ctx: RequestContext, req: dict) -> dict:
        name = req["Bucket"]
        self._count(ctx, name)
        rules = validate_rules(req.get("CORSConfiguration") or {})

        def write() -> None:
            b = self._bucket_for_write(name)
            self.store.set_bucket_field(name, "config", {**b.config, "cors": rules})

        await self._write(write, bucket=name)
        return {}

    def get_bucket_cors(self, ctx: RequestContext, req: dict) -> dict:
        self._count(ctx, req["Bucket"])
        b = self._require_bucket(req["Bucket"])
        rules = b.config.get("cors")
        if not rules:
            raise ServiceError(
                "NoSuchCORSConfiguration",
                "The CORS configuration does not exist",
                404,
                fields={"BucketName": b.name},
            )
        return {"CORSRules": [dict(r) for r in rules]}

    async def delete_bucket_cors(self, ctx: RequestContext, req: dict) -> dict:
        name = req["Bucket"]
        self._count(ctx, name)

        def write() -> None:
            b = self._bucket_for_write(name)
            if "cors" in b.config:
                self.store.set_bucket_field(
                    name, "config", {k: v for k, v in b.config.items() if k != "cors"}
                )

        await self._write(write, bucket=name)
        return {}

    # -- gateway hooks (strata.gateway.cors) ------------------------------------------------------

    def cors_preflight(
        self, bucket: str, key: str, origin: str | None, method: str | None, headers: str | None
    ) -> Headers:
        """The headers of an allowed preflight, or S3's error (400 BadRequest without Origin;
        403 AccessForbidden when the bucket does not exist, has no CORS configuration, or no rule
        allows the origin, method and headers)."""
        if not origin:
            raise ServiceError("BadRequest", "Insufficient information. Origin request header needed.", 400)
        method = method or "OPTIONS"  # what S3 reports without Access-Control-Request-Method
        b = self.store.bucket(bucket) if bucket else None
        if b is None:
            raise forbidden("CORSResponse: Bucket not found", method, "BUCKET")
        resource_type = "OBJECT" if key else "BUCKET"
        rules = b.config.get("cors") if b is not None else None
        if not rules:
            raise forbidden(_NOT_ENABLED, method, resource_type)
        wanted = [h.strip().lower() for h in (headers or "").split(",") if h.strip()]
        rule = _first_rule(rules, origin, method, wanted)
        if rule is None:
            raise forbidden(_NOT_ALLOWED, method, resource_type)
        out = _rule_headers(rule, origin)
        if wanted:
            out.append(("Access-Control-Allow-Headers", ", ".join(wanted)))
        return out

    def cors_headers(self, bucket: str, origin: str, method: str) -> Headers:
        """The CORS headers of an actual request from `origin` (none when no rule matches)."""
        b = self.store.bucket(bucket)
        rules = b.config.get("cors") if b is not None else None
        if not rules:
            return []
        rule = _first_rule(rules, origin, method, None)
        return _rule_headers(rule, origin) if rule is not None else []

"""One codec class per AWS wire protocol, keyed by botocore's protocol name.

Each is constructed as `Codec(service_model)` and implements `strata.protocol.Codec`. S3's quirks
live in `S3Codec`, a named subclass of the rest-xml codec.
"""

from __future__ import annotations

from botocore.model import ServiceModel

from strata.protocol.codecs.json_rpc import JsonCodec
from strata.protocol.codecs.query import Ec2Codec, QueryCodec
from strata.protocol.codecs.rest_json import RestJsonCodec
from strata.protocol.codecs.rest_xml import RestXmlCodec
from strata.protocol.codecs.s3 import S3Codec


class _RestXmlForService:
    """rest-xml, with S3 answered by its named subclass (so `CODECS["rest-xml"](model)` just works)."""

    def __new__(cls, model: ServiceModel) -> RestXmlCodec:  # type: ignore[misc]
        if model.service_name == "s3":
            return S3Codec(model)
        return RestXmlCodec(model)


CODECS: dict[str, type] = {
    "rest-xml": _RestXmlForService,
    "json": JsonCodec,
    "query": QueryCodec,
    "ec2": Ec2Codec,
    "rest-json": RestJsonCodec,
}

__all__ = ["CODECS", "Ec2Codec", "JsonCodec", "QueryCodec", "RestJsonCodec", "RestXmlCodec", "S3Codec"]

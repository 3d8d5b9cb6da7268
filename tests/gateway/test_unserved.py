"""A request for a service Strata does not serve gets a 501 naming that service, in its protocol.

Such requests once fell through to S3 and got 405 MethodNotAllowed or AuthorizationHeaderMalformed.
"""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

CALLS = {
    "eventbridgev2": ("events", lambda c: c.list_event_buses()),  # smithy-rpc-v2-cbor
    "logs": ("logs", lambda c: c.describe_log_groups()),  # json
    "lambda": ("lambda", lambda c: c.list_functions()),  # rest-json
    "sns": ("sns", lambda c: c.list_topics()),  # query
    "route53": ("route53", lambda c: c.list_hosted_zones()),  # rest-xml
}


@pytest.mark.parametrize("client_name", sorted(CALLS))
def test_unserved_service_is_named(strata_server, client_name: str) -> None:
    signing_name, call = CALLS[client_name]
    with pytest.raises(ClientError) as e:
        call(strata_server.client(client_name))
    error = e.value.response["Error"]
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
    assert error["Code"] == "NotImplemented"
    assert f"does not serve the AWS service '{signing_name}'" in error["Message"]


def test_served_services_still_answer(strata_server) -> None:
    assert "Buckets" in strata_server.client("s3").list_buckets()
    assert "TableNames" in strata_server.client("dynamodb").list_tables()
    assert strata_server.client("sts").get_caller_identity()["Account"]

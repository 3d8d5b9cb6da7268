"""The console in Firefox (Debian's firefox-esr over WebDriver BiDi): one walk through what
depends on the browser: sign-in (its cookies and the origin checks of every POST), the upload
script (a file of two parts PUT to presigned URLs, with progress), a download byte-identical, a
settings form, and the DynamoDB item editor."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from tests.console.browser import firefox_fixture, signed_in_page
from tests.strata_process import StrataProcess


@pytest.fixture(scope="module")
def browser() -> Iterator:
    yield from firefox_fixture()


@pytest.fixture
def page(browser, strata_server: StrataProcess):
    yield from signed_in_page(browser, strata_server.endpoint)


def test_the_console_works_in_firefox(page, strata_server, unique, tmp_path) -> None:
    bucket = f"firefox-{unique}"
    s3 = strata_server.client("s3")
    page.fill("#new-bucket", bucket)
    page.click("text=Create bucket")
    page.wait_for_url(f"**/s3/bucket?bucket={bucket}")
    data = os.urandom(5 * 1024 * 1024 + 4096)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    page.set_input_files("#bigfiles", str(source))
    page.wait_for_selector("#dropzone[data-state]")
    assert page.get_attribute("#dropzone", "data-state") == "done", page.inner_text("#upload-status")
    assert page.eval_on_selector("#upload-progress", "p => [p.value, p.max]") == [len(data), len(data)]
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == len(data) and head["ETag"].endswith('-2"')
    page.click("#upload-refresh")
    page.click("#objects a:text-is('big.bin')")
    page.wait_for_selector("#object-key")
    with page.expect_download() as download:
        page.click("#download")
    assert open(download.value.path(), "rb").read() == data
    # a settings form: default encryption
    page.goto(f"{strata_server.endpoint}/_strata/console/s3/settings?bucket={bucket}")
    page.select_option("#algorithm", "aws:kms")
    page.check("input[name=bucket_key]")
    page.click("text=Save encryption")
    page.wait_for_selector(".flash:has-text('is now SSE-KMS')")
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert (
        rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms" and rule["BucketKeyEnabled"]
    )
    # the item editor
    table = f"ff-{unique}"
    ddb = strata_server.client("dynamodb")
    ddb.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    page.goto(f"{strata_server.endpoint}/_strata/console/dynamodb/item?table={table}")
    page.fill("#item", json.dumps({"id": {"S": "a"}, "n": {"N": "5"}, "s": {"S": "<b>x</b>"}}))
    page.click("text=Save item")
    page.wait_for_selector(".flash:has-text('Saved the item.')")
    item = ddb.get_item(TableName=table, Key={"id": {"S": "a"}})["Item"]
    assert item == {"id": {"S": "a"}, "n": {"N": "5"}, "s": {"S": "<b>x</b>"}}

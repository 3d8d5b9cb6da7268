"""The console's S3 pages in a real Chromium: sign in, create a bucket, upload a file of two parts
from the browser with a progress bar, browse, download it byte-identical, tags, metadata, versions, delete;
keys holding markup are shown as text."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.console.browser import browser_fixture, shot, signed_in_page
from tests.strata_process import StrataProcess


@pytest.fixture(scope="module")
def browser() -> Iterator:
    yield from browser_fixture()


@pytest.fixture
def page(browser, strata_server: StrataProcess):
    yield from signed_in_page(browser, strata_server.endpoint)


def test_create_upload_browse_download_tag_and_delete(page, strata_server, unique, tmp_path) -> None:
    bucket = f"console-{unique}"
    shot(page, "s3-buckets")
    page.fill("#new-bucket", bucket)
    page.click("text=Create bucket")
    page.wait_for_url(f"**/s3/bucket?bucket={bucket}")
    assert strata_server.client("s3").head_bucket(Bucket=bucket)
    # into a "folder": the upload goes under the prefix being browsed
    strata_server.client("s3").put_object(Bucket=bucket, Key="docs/readme.txt", Body=b"hello")
    page.reload()
    page.click("#objects a:text-is('docs/')")
    page.wait_for_url("**prefix=docs%2F")
    # just over 5 MiB: two parts (5 MiB and 4 KiB), each PUT by the browser to a presigned URL
    data = os.urandom(5 * 1024 * 1024 + 4096)
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    page.set_input_files("#bigfiles", str(source))
    page.wait_for_selector("#dropzone[data-state]")
    assert page.get_attribute("#dropzone", "data-state") == "done", page.inner_text("#upload-status")
    assert page.eval_on_selector("#upload-progress", "p => [p.value, p.max]") == [len(data), len(data)]
    assert "Uploaded 1 file(s)" in page.inner_text("#upload-status")
    shot(page, "s3-upload-done")
    head = strata_server.client("s3").head_object(Bucket=bucket, Key="docs/big.bin")
    assert head["ContentLength"] == len(data) and head["ETag"].endswith('-2"')
    page.click("#upload-refresh")
    page.wait_for_selector("#objects a:text-is('big.bin')")
    shot(page, "s3-prefix")
    page.click("#objects a:text-is('big.bin')")
    page.wait_for_selector("#object-key")
    with page.expect_download() as download:
        page.click("#download")
    assert download.value.suggested_filename == "big.bin"
    assert open(download.value.path(), "rb").read() == data
    page.fill("#tags", "team=storage\nstage=test")
    page.click("text=Save tags")
    page.wait_for_selector(".flash:has-text('Saved 2 tag(s)')")
    tags = strata_server.client("s3").get_object_tagging(Bucket=bucket, Key="docs/big.bin")["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("stage", "test"), ("team", "storage")]
    page.fill("#metadata", "owner=ann\nx-amz-meta-stage=<b>test</b>")
    page.fill("#content_type", "application/x-test")
    page.click("text=Save metadata")
    page.wait_for_selector(".flash:has-text('Saved 2 metadata value(s)')")
    head = strata_server.client("s3").head_object(Bucket=bucket, Key="docs/big.bin")
    assert head["Metadata"] == {"owner": "ann", "stage": "<b>test</b>"}
    assert head["ContentType"] == "application/x-test" and head["ContentLength"] == len(data)
    assert page.input_value("#metadata") == "owner=ann\nstage=<b>test</b>\n"
    tags = strata_server.client("s3").get_object_tagging(Bucket=bucket, Key="docs/big.bin")["TagSet"]
    assert len(tags) == 2  # copying onto itself kept the tags
    shot(page, "s3-object")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete-object")
    page.wait_for_selector(".flash:has-text('Deleted docs/big.bin')")
    listed = strata_server.client("s3").list_objects_v2(Bucket=bucket, Prefix="docs/")
    assert [o["Key"] for o in listed["Contents"]] == ["docs/readme.txt"]


def test_versions_and_pages_of_a_bucket(page, strata_server, unique) -> None:
    bucket = f"pages-{unique}"
    s3 = strata_server.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for i in range(105):
        s3.put_object(Bucket=bucket, Key=f"k{i:03d}", Body=b"v1")
    s3.put_object(Bucket=bucket, Key="k000", Body=b"second")
    page.goto(f"{strata_server.endpoint}/_strata/console/s3/bucket?bucket={bucket}")
    assert page.locator("#objects tbody tr").count() == 100
    page.click("a[rel=next]")
    assert [t.strip() for t in page.locator("#objects tbody td:first-child").all_inner_texts()] == [
        f"k{i:03d}" for i in range(100, 105)
    ]
    page.click("text=First page")
    page.click("text=Show versions")
    shot(page, "s3-versions")
    rows = page.locator("#objects tbody tr:has(a:text-is('k000'))")
    assert rows.count() == 2
    page.click("#objects a:text-is('k000') >> nth=1")  # the older version
    page.wait_for_selector("#object-key")
    assert "2 bytes" in page.inner_text(".facts")


def test_a_key_holding_markup_is_shown_as_text(page, strata_server, unique) -> None:
    bucket = f"markup-{unique}"
    s3 = strata_server.client("s3")
    s3.create_bucket(Bucket=bucket)
    key = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
    s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    page.goto(f"{strata_server.endpoint}/_strata/console/s3/bucket?bucket={bucket}")
    folder = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</'
    assert page.locator("#objects a").first.inner_text() == folder
    page.click("#objects a >> nth=0")
    page.click("#objects a >> nth=0")
    page.wait_for_selector("#object-key")
    assert page.inner_text("#object-key") == key
    assert page.evaluate("window.pwned") is None
    assert page.locator("main script, main img").count() == 0


def test_the_form_upload_works_without_the_script(page, strata_server, unique, tmp_path) -> None:
    bucket = f"form-{unique}"
    strata_server.client("s3").create_bucket(Bucket=bucket)
    source = tmp_path / "small.txt"
    source.write_bytes(b"small file\n" * 100)
    page.goto(f"{strata_server.endpoint}/_strata/console/s3/bucket?bucket={bucket}")
    page.click("summary")
    page.set_input_files("#file", str(source))
    page.fill("#key", "in/a form.txt")
    page.click("text=Upload >> nth=-1")
    page.wait_for_selector(".flash:has-text('Uploaded in/a form.txt (1,100 bytes)')")
    body = strata_server.client("s3").get_object(Bucket=bucket, Key="in/a form.txt")["Body"].read()
    assert body == source.read_bytes()


def test_files_dropped_on_the_page_are_uploaded(page, strata_server, unique) -> None:
    bucket = f"drop-{unique}"
    strata_server.client("s3").create_bucket(Bucket=bucket)
    page.goto(f"{strata_server.endpoint}/_strata/console/s3/bucket?bucket={bucket}&prefix=in%2F")
    transfer = page.evaluate_handle(
        """() => {
            const transfer = new DataTransfer();
            transfer.items.add(new File(["first file"], "one.txt", {type: "text/plain"}));
            transfer.items.add(new File([new Uint8Array(70000).fill(7)], "two.bin"));
            return transfer;
        }"""
    )
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})
    page.wait_for_selector("#dropzone[data-state]")
    assert page.get_attribute("#dropzone", "data-state") == "done", page.inner_text("#upload-status")
    s3 = strata_server.client("s3")
    one = s3.get_object(Bucket=bucket, Key="in/one.txt")
    assert one["Body"].read() == b"first file" and one["ContentType"] == "text/plain"
    assert s3.get_object(Bucket=bucket, Key="in/two.bin")["Body"].read() == bytes([7]) * 70000

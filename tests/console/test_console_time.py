"""The console's time and cost pages in a real Chromium, on a server of its own (the clock moves):
advance buttons and a custom step move the whole cloud's clock, the bill per service comes from
Cost Explorer, and downloads and uploads keep working after the clock has moved a month (their
presigned URLs are dated by the simulated clock, which the server checks them against); a metric's
chart over simulated time."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from tests.console.browser import browser_fixture, shot, signed_in_page
from tests.strata_process import StrataProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StrataProcess]:
    process = StrataProcess(tmp_path_factory.mktemp("console-time") / "data").start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator:
    yield from browser_fixture()


@pytest.fixture
def page(browser, server: StrataProcess):
    yield from signed_in_page(browser, server.endpoint)


def test_advance_the_clock_and_see_the_bill(page, server) -> None:
    s3 = server.client("s3")
    s3.create_bucket(Bucket="billed")
    s3.put_object(Bucket="billed", Key="data", Body=b"x" * 1024 * 1024)
    start = server.admin("/_strata/clock")["offset_seconds"]
    page.goto(f"{server.endpoint}/_strata/console/time")
    page.click("text=Advance 1d")
    page.wait_for_selector(".flash:has-text('Moved the clock forward 1d')")
    assert server.admin("/_strata/clock")["offset_seconds"] >= start + 86400
    page.fill("#step", "2h")
    page.click("#advance button:text-is('Advance')")
    page.wait_for_selector(".flash:has-text('Moved the clock forward 2h')")
    assert server.admin("/_strata/clock")["offset_seconds"] >= start + 86400 + 7200
    offset = server.admin("/_strata/clock")["offset_seconds"]
    assert page.inner_text("#clock-offset") == str(timedelta(seconds=round(offset)))
    assert "Amazon Simple Storage Service" in page.inner_text("#bill")
    assert page.locator(".chart svg").count() == 1
    shot(page, "time")
    before = server.admin("/_strata/clock")["offset_seconds"]
    page.fill("#step", "soon")
    page.click("#advance button:text-is('Advance')")
    assert "not a duration" in page.inner_text(".flash.error")
    assert server.admin("/_strata/clock")["offset_seconds"] == before
    page.goto(f"{server.endpoint}/_strata/console/health")
    assert "running" in page.inner_text("#services")
    shot(page, "health")


def test_downloads_and_uploads_after_the_clock_moved_a_month(page, server, tmp_path) -> None:
    s3 = server.client("s3")
    s3.create_bucket(Bucket="later")
    data = os.urandom(300_000)
    s3.put_object(Bucket="later", Key="before.bin", Body=data)
    server.advance_clock("30d")
    page.goto(f"{server.endpoint}/_strata/console/s3/object?bucket=later&key=before.bin")
    with page.expect_download() as download:
        page.click("#download")
    assert open(download.value.path(), "rb").read() == data
    source = tmp_path / "after.bin"
    source.write_bytes(data)
    page.goto(f"{server.endpoint}/_strata/console/s3/bucket?bucket=later")
    page.set_input_files("#bigfiles", str(source))
    page.wait_for_selector("#dropzone[data-state]")
    assert page.get_attribute("#dropzone", "data-state") == "done", page.inner_text("#upload-status")
    assert s3.get_object(Bucket="later", Key="after.bin")["Body"].read() == data


def test_a_metric_of_a_resource_as_a_chart(page, server) -> None:
    now = datetime.fromisoformat(server.admin("/_strata/clock")["now"])
    cw = server.client("cloudwatch")
    dims = [{"Name": "Queue", "Value": "<b>jobs</b>"}]
    cw.put_metric_data(
        Namespace="Console/Test",
        MetricData=[
            {
                "MetricName": "Depth",
                "Dimensions": dims,
                "Timestamp": now - timedelta(minutes=40 + 90 * i),
                "Value": float(i),
            }
            for i in range(10)
        ],
    )
    page.goto(f"{server.endpoint}/_strata/console/cloudwatch?dim=Queue%3D%3Cb%3Ejobs%3C%2Fb%3E")
    assert page.inner_text("#metrics tbody").count("Depth") == 1
    assert "Queue=<b>jobs</b>" in page.inner_text("#metrics tbody")
    page.click("#metrics a:text-is('Depth')")
    page.wait_for_selector("#metric-chart svg")
    assert page.locator("#metric-chart circle").count() == 10
    assert "10 data point(s)" in page.inner_text("main")
    page.select_option("#stat", "Maximum")
    page.select_option("#hours", "1")
    page.click("text=Show")
    page.wait_for_selector("#metric-chart svg")
    assert "Depth (Maximum" in page.inner_text("#metric-chart")
    assert page.locator("#metric-chart circle").count() == 1  # only the point 40 minutes ago
    shot(page, "cloudwatch-chart")

"""ListObjects (v1), ListObjectsV2 and their parameters through boto3 and its paginators."""

from __future__ import annotations

from urllib.parse import quote, unquote_plus

import pytest
from botocore.exceptions import ClientError

KEYS = [
    "a.txt",
    "dir/1",
    "dir/2",
    "dir/sub/3",
    "dir2/x",
    "e f+g",
    "photos/2024/jan.jpg",
    "photos/2025/feb.jpg",
    "z",
]


@pytest.fixture
def filled(s3, bucket: str) -> str:
    for k in KEYS:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    return bucket


def test_v2_prefix_delimiter(s3, filled: str) -> None:
    r = s3.list_objects_v2(Bucket=filled, Delimiter="/")
    assert [c["Key"] for c in r["Contents"]] == ["a.txt", "e f+g", "z"]
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["dir/", "dir2/", "photos/"]
    assert r["KeyCount"] == 6
    r = s3.list_objects_v2(Bucket=filled, Prefix="dir/", Delimiter="/")
    assert [c["Key"] for c in r["Contents"]] == ["dir/1", "dir/2"]
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["dir/sub/"]
    r = s3.list_objects_v2(Bucket=filled, Prefix="photos/", Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["photos/2024/", "photos/2025/"]
    r = s3.list_objects_v2(Bucket=filled, StartAfter="dir/sub/3")
    assert [c["Key"] for c in r["Contents"]] == KEYS[4:]


def test_v2_pagination_with_paginator(s3, filled: str) -> None:
    pages = list(
        s3.get_paginator("list_objects_v2").paginate(Bucket=filled, PaginationConfig={"PageSize": 2})
    )
    assert len(pages) == 5
    assert [c["Key"] for p in pages for c in p.get("Contents", [])] == KEYS
    pages = list(
        s3.get_paginator("list_objects_v2").paginate(
            Bucket=filled, Delimiter="/", PaginationConfig={"PageSize": 2}
        )
    )
    flat = [c["Key"] for p in pages for c in p.get("Contents", [])] + [
        c["Prefix"] for p in pages for c in p.get("CommonPrefixes", [])
    ]
    assert sorted(flat) == ["a.txt", "dir/", "dir2/", "e f+g", "photos/", "z"]


def test_v1_markers(s3, filled: str) -> None:
    r = s3.list_objects(Bucket=filled, MaxKeys=3)
    assert [c["Key"] for c in r["Contents"]] == KEYS[:3] and r["IsTruncated"]
    r = s3.list_objects(Bucket=filled, Marker=KEYS[2])
    assert [c["Key"] for c in r["Contents"]] == KEYS[3:] and not r["IsTruncated"]
    assert all("Owner" in c for c in r["Contents"])
    r = s3.list_objects(Bucket=filled, Delimiter="/", MaxKeys=2)
    assert r["IsTruncated"] and r["NextMarker"] == "dir/"
    pages = list(
        s3.get_paginator("list_objects").paginate(
            Bucket=filled, Delimiter="/", PaginationConfig={"PageSize": 2}
        )
    )
    assert [c["Prefix"] for p in pages for c in p.get("CommonPrefixes", [])] == ["dir/", "dir2/", "photos/"]


def test_encoding_type_url_and_fetch_owner(s3, filled: str) -> None:
    r = s3.list_objects_v2(Bucket=filled, Prefix="e", EncodingType="url")
    # asked for explicitly, the encoding reaches the caller (botocore decodes only its own default)
    assert [unquote_plus(c["Key"]) for c in r["Contents"]] == ["e f+g"]
    assert r["Contents"][0]["Key"] != "e f+g"
    raw_client_events = []
    s3.meta.events.register(
        "after-call.s3.ListObjectsV2",
        lambda http_response, **kw: raw_client_events.append(http_response.content),
    )
    s3.list_objects_v2(Bucket=filled, Prefix="e", EncodingType="url")
    assert quote("e f+g").encode() in raw_client_events[-1]
    assert "Owner" not in s3.list_objects_v2(Bucket=filled)["Contents"][0]
    assert "ID" in s3.list_objects_v2(Bucket=filled, FetchOwner=True)["Contents"][0]["Owner"]


def test_max_keys_zero_and_errors(s3, filled: str) -> None:
    r = s3.list_objects_v2(Bucket=filled, MaxKeys=0)
    assert "Contents" not in r
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket=filled, ContinuationToken="!!!not-a-token")
    assert e.value.response["Error"]["Code"] == "InvalidArgument"

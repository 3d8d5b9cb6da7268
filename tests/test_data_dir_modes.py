"""The data dir is private: 0700, and what Strata writes in it (objects, items, SQLite) is 0600."""

from __future__ import annotations

import os
import stat

from tests.strata_process import StrataProcess


def test_data_dir_and_files_are_readable_by_their_owner_only(tmp_path, unique: str) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)  # an existing data dir made with wider rights is tightened at start
    server = StrataProcess(data).start()
    try:
        s3 = server.client("s3")
        s3.create_bucket(Bucket=f"b-{unique}")
        s3.put_object(Bucket=f"b-{unique}", Key="secret.txt", Body=b"secret" * 1000)
        ddb = server.client("dynamodb")
        ddb.create_table(
            TableName="secret-table",
            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        ddb.put_item(TableName="secret-table", Item={"k": {"S": "secret"}})
        server.advance_clock("1s")
    finally:
        server.stop()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    files = 0
    for root, dirs, names in os.walk(data):
        for name in dirs + names:
            path = os.path.join(root, name)
            mode = stat.S_IMODE(os.lstat(path).st_mode)
            if name.endswith(".pem") and not name.endswith("key.pem"):
                continue  # certificates are public (and unreachable behind the 0700 data dir)
            assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
            files += 1
    assert files >= 5  # the blob, the SQLite files, clock.json ...

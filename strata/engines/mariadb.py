"""MariaDB nodes (placeholder until the MariaDB step)."""

from __future__ import annotations

from strata.engines.process import EngineError


def mariadb_version() -> str:
    raise EngineError("MariaDB is not wired yet")


class MariaNode:
    def __init__(self, *a, **k) -> None:  # noqa: ANN002, ANN003
        raise EngineError("MariaDB is not wired yet")

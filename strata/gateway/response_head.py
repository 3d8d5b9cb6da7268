"""The head of an HTTP/1.1 response: status line, headers made safe, framing, Date."""

from __future__ import annotations

from email.utils import formatdate
from http import HTTPStatus

from strata.protocol.http import HttpResponse
from strata.sim.clock import clock

_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    return line if line is not None else f"HTTP/1.1 {status} Unknown\r\n".encode()


class _DateHeader:
    """The Date header every response carries, formatted once a second (real time, as AWS sends)."""

    __slots__ = ("_second", "_line")

    def __init__(self) -> None:
        self._second = -1
        self._line = b""

    def line(self) -> bytes:
        now = int(clock.real_time())
        if now != self._second:
            self._second = now
            self._line = f"date: {formatdate(now, usegmt=True)}\r\n".encode()
        return self._line


_date = _DateHeader()
date_line = _date.line


def response_head(
    response: HttpResponse, length: int | None, head_only: bool, keep_alive: bool
) -> tuple[bytes, bool]:
    """The head for `response` whose body is `length` bytes (None: unknown, sent chunked), and
    whether the body must be sent chunked."""
    has_length = False
    lines = []
    for name, value in response.headers:
        value = str(value)
        if "\n" in value or "\r" in value:
            # Never let a value (an echoed response-content-disposition...) split the head.
            value = value.replace("\r", " ").replace("\n", " ")
        if len(name) == 14 and name.lower() == "content-length":
            has_length = True
        lines.append(f"{name}: {value}\r\n")
    chunked = False
    if not has_length:
        if length is not None:
            lines.append(f"content-length: {length}\r\n")
        elif not head_only:
            chunked = True
            lines.append("transfer-encoding: chunked\r\n")
    if not keep_alive:
        lines.append("connection: close\r\n")
    text = "".join(lines)
    try:
        encoded = text.encode("latin-1")
    except UnicodeEncodeError:  # e.g. a response-content-disposition naming a file in Chinese
        encoded = text.encode("utf-8")
    return status_line(response.status) + encoded + date_line() + b"\r\n", chunked

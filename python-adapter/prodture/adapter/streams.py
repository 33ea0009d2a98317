"""DAP framing (``Content-Length`` headers + JSON bodies) over a byte stream."""

from __future__ import annotations

import json
import threading
from typing import IO, Any


class DapStream:
    """Reads and writes DAP messages on a pair of binary file objects."""

    def __init__(self, reader: IO[bytes], writer: IO[bytes] | None, write_fn: Any = None) -> None:
        self.reader = reader
        self.writer = writer
        self._write_fn = write_fn
        self._lock = threading.Lock()

    def read(self) -> dict[str, Any] | None:
        """The next message, or None at end of stream."""
        length = None
        while True:
            line = self.reader.readline()
            if not line:
                return None
            line = line.strip()
            if not line:
                if length is None:
                    continue
                break
            name, _, value = line.decode("ascii", "replace").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        body = b""
        while len(body) < length:
            chunk = self.reader.read(length - len(body))
            if not chunk:
                return None
            body += chunk
        return json.loads(body.decode("utf-8"))

    def write(self, message: dict[str, Any]) -> None:
        body = json.dumps(message, separators=(",", ":"), default=str).encode("utf-8")
        data = b"Content-Length: %d\r\n\r\n" % len(body) + body  # one write: no Nagle stall
        with self._lock:
            if self._write_fn is not None:
                self._write_fn(data)
            else:
                assert self.writer is not None
                self.writer.write(data)
                self.writer.flush()

"""A TCP shim between librdkafka 2.0 (Debian's kcat) and the embedded broker.

librdkafka 2.0.2 cannot parse the tagged fields Tansu 0.6 writes at the end of an
ApiVersions v3+ response (SupportedFeatures, FinalizedFeaturesEpoch, ...: all
optional), and gives up with "Read underflow". The shim forwards bytes both ways
and rewrites only that: such a response loses its tagged fields (count 0). Every
other request and response passes unchanged, so kcat talks to the real broker.
"""

from __future__ import annotations

import asyncio
import struct
import threading

API_VERSIONS = 18


def strip_api_versions_tags(body: bytes) -> bytes:
    """An ApiVersions v3+ response (after the length prefix) without its trailing tagged fields."""
    i = 4 + 2  # correlation id, error code
    n, shift, count = 0, 0, 0
    while True:  # compact array length: unsigned varint, N + 1
        b = body[i]
        i += 1
        count |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    n = max(count - 1, 0)
    i += n * 7  # api_key, min, max (int16 each) and an empty tag buffer per entry
    i += 4  # throttle_time_ms
    return body[:i] + b"\x00"


class Shim:
    def __init__(self, listen_port: int, broker_port: int) -> None:
        self.listen_port, self.broker_port = listen_port, broker_port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.base_events.Server | None = None

    def start(self) -> Shim:
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._client, "127.0.0.1", self.listen_port), self.loop).result(10)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        b_reader, b_writer = await asyncio.open_connection("127.0.0.1", self.broker_port)
        versions: dict[int, tuple[int, int]] = {}

        async def upstream() -> None:
            while True:
                head = await reader.readexactly(4)
                body = await reader.readexactly(struct.unpack(">i", head)[0])
                key, version, corr = struct.unpack(">hhi", body[:8])
                versions[corr] = (key, version)
                b_writer.write(head + body)
                await b_writer.drain()

        async def downstream() -> None:
            while True:
                head = await b_reader.readexactly(4)
                body = await b_reader.readexactly(struct.unpack(">i", head)[0])
                key, version = versions.pop(struct.unpack(">i", body[:4])[0], (-1, -1))
                if key == API_VERSIONS and version >= 3:
                    body = strip_api_versions_tags(body)
                    head = struct.pack(">i", len(body))
                writer.write(head + body)
                await writer.drain()

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            for w in (writer, b_writer):
                w.close()

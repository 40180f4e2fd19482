"""The embedded broker's compatibility listener: what lets every ordinary Kafka client in.

Tansu 0.6 ends its ApiVersions v3+ response with tagged fields (SupportedFeatures,
FinalizedFeaturesEpoch, ...; all optional in the protocol). librdkafka 2.0 (Debian's kcat,
and the C, Go and Python clients built on it) cannot parse them and gives up with "Read
underflow". So the embedded broker listens behind this proxy: Tansu on a private port,
advertising the public one, and every client connection through here. The proxy runs in a
process of its own (`python compat.py PORT UPSTREAM`, standard library only), so it never
competes for the interpreter lock of the process that started the broker (a monitor, a demo
gateway). The proxy reads the
first request of a connection and the first response (clients ask ApiVersions first, and Kafka
answers a connection's requests in order); if that is an ApiVersions v3+ response it is sent on
without its tagged fields (an empty tag buffer), which every client reads. Then the connection
is a plain byte pump both ways.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading

__all__ = ["API_VERSIONS", "CompatListener", "strip_api_versions_tags"]

API_VERSIONS = 18
"""The Kafka API key of ApiVersions."""
_PUMP = 1 << 16


def _varint(body: bytes, i: int) -> tuple[int, int]:
    """An unsigned varint at `i`: its value and the index after it."""
    value, shift = 0, 0
    while True:
        b = body[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def strip_api_versions_tags(body: bytes) -> bytes:
    """An ApiVersions v3+ response (after its length prefix) without its trailing tagged
    fields; a response it cannot read (too short, or an error without the list) as it is."""
    try:
        i = 4 + 2  # correlation id, error code
        count, i = _varint(body, i)  # compact array: N + 1
        for _ in range(max(count - 1, 0)):
            i += 6  # api_key, min_version, max_version
            tags, i = _varint(body, i)
            for _ in range(tags):
                _, i = _varint(body, i)
                size, i = _varint(body, i)
                i += size
        i += 4  # throttle_time_ms
        if i > len(body):
            return body
    except IndexError:
        return body
    return body[:i] + b"\x00"


async def _frame(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readexactly(4)
    return head + await reader.readexactly(struct.unpack(">i", head)[0])


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(_PUMP):
        writer.write(data)
        await writer.drain()


class CompatListener:
    """A TCP proxy on 127.0.0.1:`port` to the broker on 127.0.0.1:`upstream`, in its own thread."""

    def __init__(self, port: int, upstream: int) -> None:
        self.port, self.upstream = port, upstream
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="kafka-compat", daemon=True)
        self.server: asyncio.base_events.Server | None = None
        self.connections = 0
        """Client connections taken so far."""

    def start(self) -> CompatListener:
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._client, "127.0.0.1", self.port), self.loop).result(10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self.server is not None:
                self.server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        if self.thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.close()
            return
        try:
            first = await _frame(reader)
            key, version = struct.unpack(">hh", first[4:8])
            up_writer.write(first)
            await up_writer.drain()
            tasks = [asyncio.create_task(_pump(reader, up_writer)),
                     asyncio.create_task(self._answer(up_reader, writer, key, version))]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in tasks:
                t.cancel()
        except (OSError, asyncio.IncompleteReadError, struct.error):
            pass  # a client or the broker went away
        finally:
            for w in (writer, up_writer):
                w.close()

    @staticmethod
    async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, key: int, version: int) -> None:
        """The first response (rewritten when it is ApiVersions v3+), then the rest as it comes."""
        frame = await _frame(reader)
        if key == API_VERSIONS and version >= 3:
            body = strip_api_versions_tags(frame[4:])
            frame = struct.pack(">i", len(body)) + body
        writer.write(frame)
        await writer.drain()
        await _pump(reader, writer)


def main(argv: list[str]) -> None:
    """`python compat.py PORT UPSTREAM`: serve until killed."""
    port, upstream = int(argv[0]), int(argv[1])
    listener = CompatListener(port, upstream)

    async def serve() -> None:
        server = await asyncio.start_server(listener._client, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])

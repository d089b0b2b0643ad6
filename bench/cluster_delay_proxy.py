"""A TCP forwarder whose replies can be held back: a host's slow link to PostgreSQL.

    python bench/cluster_delay_proxy.py ADDRESS PORT TARGET_PORT DELAY_FILE

Listens on ADDRESS:PORT and forwards each connection to 127.0.0.1:TARGET_PORT. What the target
sends back is held for as many seconds as DELAY_FILE holds, while that file exists (data read
while it held 12 leaves 12 s later, in order); what the client sends is never held. Nothing is
dropped or reordered: to the client, every round trip just takes that much longer.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from pathlib import Path

CHUNK = 65536


def _delay(flag: Path) -> float:
    try:
        return float(flag.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0.0


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, flag: Path | None) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def read() -> None:
        while True:
            data = await reader.read(CHUNK)
            await queue.put((time.monotonic() + (_delay(flag) if flag else 0.0), data))
            if not data:
                return

    async def write() -> None:
        while True:
            due, data = await queue.get()
            if due > time.monotonic():
                await asyncio.sleep(due - time.monotonic())
            if not data:
                writer.close()
                return
            writer.write(data)
            await writer.drain()

    with contextlib.suppress(ConnectionError, OSError):
        await asyncio.gather(read(), write())
    writer.close()


async def _serve(address: str, port: int, target: int, flag: Path) -> None:
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target)
        await asyncio.gather(_copy(client_reader, server_writer, None), _copy(server_reader, client_writer, flag))

    server = await asyncio.start_server(handle, address, port)
    print(f"delay proxy on {address}:{port} -> 127.0.0.1:{target}, delay from {flag}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    address, port, target, flag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    asyncio.run(_serve(address, port, target, flag))


if __name__ == "__main__":
    main()

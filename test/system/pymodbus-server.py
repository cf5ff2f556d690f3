"""A Modbus TCP device for the system test and the benchmark: Debian's python3-pymodbus (3.0)
server on a loopback port, holding the registers and bits of a JSON file, that prints one line per
request it receives on stdout, so the test can count what it was sent.

    /usr/bin/python3 pymodbus-server.py --port PORT --data FILE [--quiet] [--host ADDRESS]

FILE: {"holding": {"100": [1, 2]}, "input": {...}, "coils": {"3": [1]}, "discrete": {...},
       "illegal": {"holding": [310]}}   (addresses are protocol addresses, 0-based)

Prints "listening PORT" once it accepts connections, then "request FC ADDRESS COUNT" for each
request (with --quiet, none: the benchmark's server must not spend its time printing). An illegal
address answers with exception 2 (illegal data address). Stops on SIGTERM.
"""
import argparse
import asyncio
import json
import signal
import sys

from pymodbus.datastore import ModbusSequentialDataBlock, ModbusServerContext, ModbusSlaveContext
from pymodbus.server import StartAsyncTcpServer

TABLE_SIZE = 65536
# The context's own names for the four tables (pymodbus.datastore.context.ModbusSlaveContext).
TABLES = {"holding": "hr", "input": "ir", "coils": "co", "discrete": "di"}
# The function codes that read and write each table (Modbus Application Protocol 6.1-6.17).
TABLE_OF_FUNCTION = {1: "co", 5: "co", 15: "co", 2: "di", 3: "hr", 6: "hr", 16: "hr", 4: "ir"}


class LoggingContext(ModbusSlaveContext):
    """A slave context that refuses the illegal addresses and says what it was asked."""

    def __init__(self, illegal, quiet, **kwargs):
        super().__init__(**kwargs)
        self.illegal = illegal
        self.quiet = quiet

    def validate(self, fc_as_hex, address, count=1):
        if not self.quiet:
            print(f"request {fc_as_hex} {address} {count}", flush=True)
        refused = self.illegal.get(TABLE_OF_FUNCTION.get(fc_as_hex, ""), set())
        if any(address + offset in refused for offset in range(count)):
            return False
        return super().validate(fc_as_hex, address, count)


def build_context(data, quiet):
    blocks = {}
    for name, short in TABLES.items():
        values = [0] * TABLE_SIZE
        for start, contents in data.get(name, {}).items():
            for offset, value in enumerate(contents):
                values[int(start) + offset] = int(value)
        blocks[short] = ModbusSequentialDataBlock(0, values)
    illegal = {TABLES[name]: set(addresses) for name, addresses in data.get("illegal", {}).items()}
    # zero_mode: address N is index N (without it pymodbus 3.0 reads address 0 from index 1).
    slave = LoggingContext(illegal, quiet, zero_mode=True, **blocks)
    return ModbusServerContext(slaves=slave, single=True)


async def serve(host, port, data, quiet):
    # allow_reuse_address: a restart binds the port again while the old connections are in TIME_WAIT.
    server = await StartAsyncTcpServer(
        context=build_context(data, quiet),
        address=(host, port),
        defer_start=True,
        allow_reuse_address=True,
    )
    task = asyncio.create_task(server.serve_forever())
    # A bind that fails ends the task; without this the wait for `serving` would never end.
    await asyncio.wait([task, server.serving], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
        return
    print(f"listening {server.server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.shutdown()
    task.cancel()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data", required=True)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    with open(args.data, encoding="utf-8") as file:
        data = json.load(file)
    asyncio.run(serve(args.host, args.port, data, args.quiet))
    return 0


if __name__ == "__main__":
    sys.exit(main())

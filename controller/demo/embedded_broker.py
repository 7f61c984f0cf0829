"""``python -m controller.demo.embedded_broker HOST PORT``: amqtt, for machines without mosquitto.

MQTT 3.1.1 only (amqtt 0.12 refuses v5), state in memory. Good enough for the demo.
"""

from __future__ import annotations

import asyncio
import signal
import sys


async def main(host: str, port: int) -> None:
    from amqtt.broker import Broker

    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await broker.shutdown()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))

"""``python -m controller.demo.embedded_broker HOST PORT [--lifeline]``: amqtt, for machines
without mosquitto.

MQTT 3.1.1 only (amqtt 0.12 refuses v5), state in memory. Good enough for the demo.
Stops on SIGTERM or SIGINT and, with ``--lifeline``, when stdin closes (the demo that
started it is gone: :mod:`controller.demo.children`).
"""

from __future__ import annotations

import asyncio
import sys

from controller.core.shutdown import Shutdown


async def main(host: str, port: int, *, lifeline: bool) -> None:
    from amqtt.broker import Broker

    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    async with Shutdown(lifeline=lifeline):
        await broker.start()
        try:
            await asyncio.Event().wait()
        finally:
            await broker.shutdown()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), lifeline="--lifeline" in sys.argv[3:]))

"""The MQTT client takes in every packet waiting in its socket per turn of the event loop.

paho-mqtt 2.2 reads one packet per readable event when nothing of ours is in flight, so
a receiving client behind a busy event loop falls behind (protocols.mqtt_client.ReadingClient).
"""

from __future__ import annotations

import asyncio
import threading
import time

import paho.mqtt.publish as paho_publish

from protocols.mqtt_client import READ_BUDGET, build_client
from tests.integration.conftest import MqttBroker

BURST = 200


async def test_a_burst_waiting_in_the_socket_is_read_in_one_turn(
    mqtt_broker: MqttBroker, mqtt_prefix: str
) -> None:
    assert BURST < READ_BUDGET
    settings = mqtt_broker.settings(mqtt_prefix)
    topic = f"{mqtt_prefix}/burst"
    async with build_client(settings, client_id=f"{mqtt_prefix}-sub", persistent=False) as sub:
        await sub.subscribe(topic, qos=0)
        publisher = threading.Thread(
            target=paho_publish.multiple,
            args=([{"topic": topic, "payload": f"m{i}", "qos": 0} for i in range(BURST)],),
            kwargs={"hostname": mqtt_broker.host, "port": mqtt_broker.port},
        )
        # The event loop is blocked (as by a busy controller) while the burst arrives.
        publisher.start()
        publisher.join(10)
        time.sleep(0.5)  # noqa: ASYNC251 - the point: a blocked event loop
        queue = sub._queue
        assert queue.qsize() == 0
        for _ in range(2):  # one turn runs this task first, the next the socket's reader
            await asyncio.sleep(0)
        assert queue.qsize() == BURST
        got = [(await anext(sub.messages)).payload for _ in range(BURST)]
        assert got == [f"m{i}".encode() for i in range(BURST)]

"""The MQTT client every MQTT speaker of the project uses (the link and the fake gateways).

:func:`build_client` makes an aiomqtt client from an :class:`MqttConnection` (broker,
credentials, TLS, protocol version), with a persistent or a clean session, and with
paho-mqtt's socket reader replaced by one that takes in every waiting packet per
readable event (:class:`ReadingClient`).

:class:`MqttConnection` is structural: the controller's ``MqttSettings`` satisfies it,
and so does any object with these attributes; this package does not import the
controller's settings.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Final, Protocol

import aiomqtt
import paho.mqtt.client as mqtt
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

__all__ = ["READ_BUDGET", "MqttConnection", "ReadingClient", "build_client", "mqtt5_properties"]


class Secret(Protocol):
    """A password that is not printed by accident (pydantic's ``SecretStr``)."""

    def get_secret_value(self) -> str: ...


class MqttConnection(Protocol):
    """Where the broker is and how to talk to it (the controller's ``MqttSettings``)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def username(self) -> str | None: ...
    @property
    def password(self) -> Secret | None: ...
    @property
    def tls(self) -> bool: ...
    @property
    def ca_file(self) -> Path | None: ...
    @property
    def prefix(self) -> str:
        """First topic level of every topic of the contract."""
        ...

    @property
    def client_id(self) -> str: ...
    @property
    def protocol(self) -> str:
        """``"5"`` for MQTT 5, anything else for 3.1.1."""
        ...

    @property
    def keepalive_s(self) -> int: ...


def mqtt5_properties(packet_type: int) -> Properties:
    """Empty MQTT 5 properties for one packet type (paho's constructor is untyped)."""
    return Properties(packet_type)  # type: ignore[no-untyped-call]


READ_BUDGET: Final = 500
"""MQTT packets taken off the socket per readable event (see :class:`ReadingClient`)."""


class ReadingClient(aiomqtt.Client):
    """aiomqtt's client, reading up to ``READ_BUDGET`` packets per readable event.

    paho-mqtt 2.2's ``loop_read`` reads as many packets as it has messages in flight,
    and one when it has none (its ``max_packets`` argument is ignored). A client that
    mostly receives (acks and states from 1,000 gateways) then takes in one packet per
    turn of a busy event loop, however many wait in the socket: the acks of a fan-out
    queue up behind the controller's own work and time out. This reads every packet that
    has arrived (up to the budget, so one flood cannot starve the loop), as Home
    Assistant's MQTT client does (home-assistant/core#118222).

    It uses paho's private ``_sock``, ``_packet_read`` and ``_loop_rc_handle`` and
    aiomqtt's ``_on_socket_open``, ``_loop`` and ``_disconnected``: pinned versions
    only (tests/integration/test_mqtt_reads.py fails if they change).
    """

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        super()._on_socket_open(client, userdata, sock)
        loop = self._loop

        def read_all() -> None:
            try:
                for _ in range(READ_BUDGET):
                    if client._sock is None:
                        return
                    rc = client._packet_read()
                    if rc == mqtt.MQTT_ERR_AGAIN:
                        break
                    if rc != mqtt.MQTT_ERR_SUCCESS:
                        client._loop_rc_handle(rc)
                        return
                pending = getattr(client._sock, "pending", None)  # TLS: decoded bytes buffered
                if pending is not None and pending() > 0:
                    loop.call_soon(read_all)
            except Exception as exc:  # as aiomqtt's own reader: a broken pipe ends the session
                if not self._disconnected.done():
                    self._disconnected.set_exception(exc)

        # Replaces the reader aiomqtt registered (same order: both go through call_soon).
        loop.call_soon_threadsafe(loop.add_reader, sock.fileno(), read_all)


def build_client(
    settings: MqttConnection,
    *,
    client_id: str,
    persistent: bool,
    session_expiry_s: int = 0,
    will: aiomqtt.Will | None = None,
    timeout_s: float = 10.0,
    max_inflight: int = 1000,
) -> aiomqtt.Client:
    """An aiomqtt client for ``settings`` (protocol, credentials, TLS) under ``client_id``.

    ``persistent``: keep the broker-side session across disconnections (MQTT 5:
    clean start off + ``session_expiry_s``; 3.1.1: clean session off). Must be
    called inside a running event loop (aiomqtt's rule). The CA file, if any, is
    read by aiomqtt in its connect thread, not on the event loop.
    """
    v5 = settings.protocol == "5"
    connect_properties: Properties | None = None
    if v5 and persistent:
        connect_properties = mqtt5_properties(PacketTypes.CONNECT)
        connect_properties.SessionExpiryInterval = session_expiry_s
    tls: aiomqtt.TLSParameters | None = None
    if settings.tls:
        ca = str(settings.ca_file) if settings.ca_file is not None else None
        tls = aiomqtt.TLSParameters(ca_certs=ca)
    client = ReadingClient(
        settings.host,
        settings.port,
        username=settings.username,
        password=settings.password.get_secret_value() if settings.password else None,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
        clean_session=None if v5 else not persistent,
        # paho refuses clean_start under 3.1.1 unless left at its default.
        clean_start=(not persistent) if v5 else MQTT_CLEAN_START_FIRST_ONLY,
        keepalive=settings.keepalive_s,
        timeout=timeout_s,
        will=will,
        max_inflight_messages=max_inflight,
        properties=connect_properties,
        tls_params=tls,
        # Small QoS 1 exchanges: without it Nagle + delayed ACK add ~40 ms per round trip.
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    )
    # aiomqtt warns past 10 concurrent publishes; a link to many gateways has more.
    client.pending_calls_threshold = max_inflight
    return client

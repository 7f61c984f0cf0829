"""A DALI LoRaWAN node driven by DAPC (Zenopix-style, D4i readings): one luminaire per node.

Source: a public integration reference for the Zenopix DALI LoRaWAN controller on
The Things Network with ThingsBoard ("Zenopix DALI LoRaWAN Controller Reference";
its repository is not named, see ``/work/shared/notes/field.md`` section 3.3):

* Downlink, fPort 8: ``[0x84, address, level]``: opcode 0x84 is DALI DAPC (direct
  arc power control), address 0x01 is broadcast, level is 0..100 **percent** (not the
  DALI arc power 0..254). The reference's quick table: 50 % = ``84 01 32`` = ``hAEy``.
* Uplink: the reference publishes only the *decoded* fields (its network server's
  payload formatter runs the vendor decoder): ``supply_voltage``, ``power_factor``,
  ``internal_temp``, ``light_src_voltage``, ``light_src_current`` (mA),
  ``light_src_temp``, ``dim_value`` (%), ``operating_time`` (h), ``start_counter``,
  ``fault_light_src_failure``, ``fault_over_voltage``, ``fault_thermal_shutdown``,
  ``fault_overall_failure``, ``status_lamp_on``, ``status_lamp_failure``.
  The binary layout is not public, so :meth:`DaliDapcCodec.decode_uplink` refuses
  bytes: configure the vendor's decoder in the network server and the bridge reads
  the ``object`` / ``decoded_payload`` through :meth:`DaliDapcCodec.decode_object`.

Mapping to our reading (choices, written down because the reference has no power
or supply-current field):

* ``current_ma`` is ``light_src_current`` (the driver's output current);
* ``power_w`` is ``light_src_voltage x light_src_current``: the output power, a
  lower bound of the input power (the reference's own dashboard multiplies the
  *mains* voltage by the LED current, which overstates it several times);
* ``temperature_c`` is ``internal_temp`` (the controller's enclosure);
* flags: light-source or lamp failure -> ``lampFailure``; over-voltage ->
  ``supplyFault``; thermal shutdown -> ``thermalDerating``; "overall failure" with
  none of those -> ``controlGearFailure``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from controller.core.errors import ProtocolViolation
from controller.core.values import Address, DeviceFlag, Level
from protocols.lorawan import object_fields as f
from protocols.lorawan.codec import Frame, Telemetry, Uplink

F_PORT: Final = 8
DAPC: Final = 0x84
BROADCAST: Final = 0x01
LUMINAIRE: Final = Address(0)
"""The node's one luminaire, commanded by broadcast on its DALI bus."""

_FLAG_FIELDS: Final = (
    "fault_light_src_failure",
    "fault_over_voltage",
    "fault_thermal_shutdown",
    "fault_overall_failure",
    "status_lamp_failure",
)


class DaliDapcCodec:
    """DAPC downlinks on fPort 8; readings from the network server's decoded object."""

    NAME: Final = "dali-dapc"

    @property
    def name(self) -> str:
        return self.NAME

    @property
    def addresses(self) -> frozenset[Address]:
        return frozenset({LUMINAIRE})

    # ------------------------------------------------------------------ controller side

    def decode_uplink(self, f_port: int, payload: bytes) -> Uplink:
        raise ProtocolViolation(
            f"{self.NAME}: the node's binary uplink (fPort {f_port}, {len(payload)} bytes) has no "
            "public layout; configure the vendor's decoder in the network server so the event "
            "carries the decoded object"
        )

    def decode_object(self, obj: Mapping[str, Any]) -> Uplink:
        where = f"{self.NAME} object"
        level = f.integer(obj, "dim_value", where, minimum=0, maximum=100)
        lamp_on = f.boolean(obj, "status_lamp_on", where)
        if lamp_on is None and level is not None:
            lamp_on = level > 0
        out_v = f.number(obj, "light_src_voltage", where, minimum=0, maximum=1000)
        out_ma = f.integer(obj, "light_src_current", where, minimum=0, maximum=100_000)
        faults = {key: f.boolean(obj, key, where) for key in _FLAG_FIELDS}
        telemetry = Telemetry(
            lamp_on=lamp_on,
            level_pct=level,
            voltage_v=f.number(obj, "supply_voltage", where, minimum=0, maximum=1000),
            power_factor=f.number(obj, "power_factor", where, minimum=0, maximum=1),
            current_ma=out_ma,
            power_w=None if out_v is None or out_ma is None else round(out_v * out_ma / 1000, 3),
            temperature_c=f.number(obj, "internal_temp", where, minimum=-100, maximum=300),
            operating_hours=f.integer(obj, "operating_time", where, minimum=0),
            switch_on_count=f.integer(obj, "start_counter", where, minimum=0),
            flags=_flags(faults) if any(v is not None for v in faults.values()) else None,
        )
        return Uplink(luminaires={LUMINAIRE: telemetry})

    def encode_downlink(self, levels: Mapping[Address, Level]) -> tuple[Frame, ...]:
        if set(levels) != {LUMINAIRE}:
            raise ValueError(f"{self.NAME} drives one luminaire, address 0; got {sorted(levels)}")
        level = levels[LUMINAIRE]
        if not 0 <= level <= 100:
            raise ValueError(f"level must be 0..100 %, got {level}")
        return (Frame(F_PORT, bytes((DAPC, BROADCAST, level))),)

    # ------------------------------------------------------------------ node side

    def encode_uplink(self, uplink: Uplink) -> Frame:
        raise ValueError(f"{self.NAME} has no public binary uplink; use encode_object")

    def encode_object(self, telemetry: Telemetry) -> dict[str, Any]:
        """Node side (fakes): what the vendor's decoder would put in the event's object.

        ``power_w`` is carried as ``light_src_voltage`` over ``light_src_current``
        (so it needs a current above zero to be carried at all).
        """
        out: dict[str, Any] = {"message_type": "sensor_data"}
        if telemetry.level_pct is not None:
            out["dim_value"] = telemetry.level_pct
        if telemetry.lamp_on is not None:
            out["status_lamp_on"] = telemetry.lamp_on
        if telemetry.voltage_v is not None:
            out["supply_voltage"] = telemetry.voltage_v
        if telemetry.power_factor is not None:
            out["power_factor"] = telemetry.power_factor
        if telemetry.current_ma is not None:
            out["light_src_current"] = telemetry.current_ma
            if telemetry.power_w is not None and telemetry.current_ma > 0:
                out["light_src_voltage"] = round(telemetry.power_w * 1000 / telemetry.current_ma, 3)
        if telemetry.temperature_c is not None:
            out["internal_temp"] = telemetry.temperature_c
        if telemetry.operating_hours is not None:
            out["operating_time"] = telemetry.operating_hours
        if telemetry.switch_on_count is not None:
            out["start_counter"] = telemetry.switch_on_count
        if telemetry.flags is not None:
            flags = telemetry.flags
            out["fault_light_src_failure"] = DeviceFlag.LAMP_FAILURE in flags
            out["fault_over_voltage"] = DeviceFlag.SUPPLY_FAULT in flags
            out["fault_thermal_shutdown"] = DeviceFlag.OVER_TEMPERATURE in flags
            out["fault_overall_failure"] = bool(flags)
            out["status_lamp_failure"] = DeviceFlag.LAMP_FAILURE in flags
        return out

    def decode_downlink(self, f_port: int, payload: bytes) -> dict[Address, Level]:
        if f_port != F_PORT:
            raise ProtocolViolation(
                f"{self.NAME}: DAPC downlinks are on fPort {F_PORT}, got {f_port}"
            )
        if len(payload) != 3:
            raise ProtocolViolation(
                f"{self.NAME}: a DAPC command is 3 bytes (84 <address> <level>), "
                f"got {payload.hex() or 'nothing'}"
            )
        opcode, address, level = payload
        if opcode != DAPC:
            raise ProtocolViolation(f"{self.NAME}: opcode 0x{opcode:02x} is not DAPC (0x84)")
        if address != BROADCAST:
            raise ProtocolViolation(
                f"{self.NAME}: address 0x{address:02x} is not broadcast (0x01); this codec drives "
                "one luminaire per node"
            )
        if level > 100:
            raise ProtocolViolation(
                f"{self.NAME}: DAPC level is 0..100 percent here, got {level} (DALI arc power?)"
            )
        return {LUMINAIRE: Level(level)}


def _flags(faults: Mapping[str, bool | None]) -> frozenset[DeviceFlag]:
    flags: set[DeviceFlag] = set()
    if faults["fault_light_src_failure"] or faults["status_lamp_failure"]:
        flags.add(DeviceFlag.LAMP_FAILURE)
    if faults["fault_over_voltage"]:
        flags.add(DeviceFlag.SUPPLY_FAULT)
    if faults["fault_thermal_shutdown"]:
        flags.add(DeviceFlag.OVER_TEMPERATURE)
    if faults["fault_overall_failure"] and not flags:
        flags.add(DeviceFlag.DRIVER_FAILURE)
    return frozenset(flags)

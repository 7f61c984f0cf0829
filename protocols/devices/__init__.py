"""Modbus devices as data: profiles (YAML), a pure codec over them, and cabinet I/O wiring.

- :mod:`protocols.devices.profile`: the profile format, loaded and validated into frozen models;
- :mod:`protocols.devices.codec`: plan reads, decode registers, encode writes (no I/O);
- :mod:`protocols.devices.wiring`: what an I/O module's channels are wired to in one cabinet;
- :mod:`protocols.devices.expression`: address formulas (``7000*ch + 100*sa + 15``);
- :mod:`protocols.devices.talq`: the TALQ attribute names a point may mean.

The shipped profiles are in ``protocols/devices/profiles/``; ``docs/devices.md`` describes
the format and how to add a device.
"""

"""LoRaWAN nodes behind a network server (ChirpStack v4, The Things Stack v3)."""

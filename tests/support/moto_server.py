"""The moto_server launcher lives in canary_demo (the benchmarks use it too); tests import it from here."""

from canary_demo.moto_server import BIN, STARTUP_SECONDS, die_with_parent, free_port, reset_moto, running_moto

__all__ = ["BIN", "STARTUP_SECONDS", "die_with_parent", "free_port", "reset_moto", "running_moto"]

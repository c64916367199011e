"""An AWS emulator (STS, RDS Proxy, Resource Groups Tagging API) for tests, demos, benchmarks.

A real HTTP server (aiohttp) that botocore/aiobotocore clients reach through
``AWS_ENDPOINT_URL``. Responses and errors are serialized by moto's server-side serializers;
moto is the optional ``emulator`` extra and is imported only when an emulator is built.

The parts: ``fleet`` (the fleet and fault files), ``state`` (the fleet as AWS shows it,
credentials, faults, throttling, stats), ``wire`` (moto's serializers), ``ops_sts`` /
``ops_rds`` / ``ops_tagging`` (the operations, tabled in ``operations``), ``dispatch`` (the
dispatcher: faults, throttling, the reply ``cache``), ``control`` (the ``/_emulator/`` API),
``app`` (the aiohttp application), ``thread`` (:func:`serve`, :class:`EmulatorThread`), ``cli``.
"""

from .app import build_app
from .cli import DEMO_FLEET, main
from .dispatch import Emulator
from .fleet import (
    Account,
    Fault,
    Fleet,
    FleetError,
    ProxyEndpointSpec,
    ProxySpec,
    RegionSpec,
    Role,
    Throttle,
    generate_fleet,
    load_fleet,
    parse_faults,
    parse_fleet,
    parse_throttle,
)
from .thread import EmulatorThread, serve
from .wire import MOTO_MISSING_MESSAGE, EmulatorUnavailable

__all__ = [
    "DEMO_FLEET",
    "MOTO_MISSING_MESSAGE",
    "Account",
    "Emulator",
    "EmulatorThread",
    "EmulatorUnavailable",
    "Fault",
    "Fleet",
    "FleetError",
    "ProxyEndpointSpec",
    "ProxySpec",
    "RegionSpec",
    "Role",
    "Throttle",
    "build_app",
    "generate_fleet",
    "load_fleet",
    "main",
    "parse_faults",
    "parse_fleet",
    "parse_throttle",
    "serve",
]

"""An AWS emulator (STS, RDS Proxy, Resource Groups Tagging API) for tests, demos, benchmarks.

A real HTTP server (aiohttp) that botocore/aiobotocore clients reach through
``AWS_ENDPOINT_URL``. Responses and errors are serialized by moto's server-side serializers;
moto is the optional ``emulator`` extra and is imported only when an emulator is built.
"""

from .cli import DEMO_FLEET, main
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
from .server import Emulator, EmulatorThread, build_app, serve
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

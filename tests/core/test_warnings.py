"""Unknown statuses are kept (as Teleport does) and come back as warnings, never silently."""

from discovery.core.convert import convert_proxies
from discovery.core.model import Matching, Proxy, ProxyEndpoint

MATCH_ALL = Matching(tags={"*": ("*",)}, discovery_group="g")


def _proxy(status: str, endpoint_status: str) -> Proxy:
    return Proxy(
        name="p",
        arn="arn:aws:rds:us-east-1:123456789012:db-proxy:prx-1",
        endpoint="p.proxy-x.us-east-1.rds.amazonaws.com",
        engine_family="POSTGRESQL",
        status=status,
        require_tls=True,
        endpoints=(
            ProxyEndpoint(
                name="ro",
                proxy_name="p",
                endpoint="ro.endpoint.proxy-x.us-east-1.rds.amazonaws.com",
                status=endpoint_status,
                target_role="READ_ONLY",
                is_default=False,
            ),
        ),
    )


def test_unknown_statuses_are_kept_and_warned() -> None:
    converted = convert_proxies([_proxy("hibernating", "warming")], MATCH_ALL)
    assert len(converted.resources) == 2
    assert converted.warnings == (
        "proxy p: unknown status 'hibernating', kept",
        "endpoint p/ro: unknown status 'warming', kept",
    )


def test_known_statuses_raise_no_warning() -> None:
    converted = convert_proxies([_proxy("modifying", "available")], MATCH_ALL)
    assert converted.warnings == ()
    assert len(converted.resources) == 2

"""Speed-ups of botocore internals that the benchmark led to, each giving botocore's own answers.

A faster timestamp parser, TLS contexts shared between clients and a cached User-Agent string
(bench/RESULTS.md; checked against botocore in tests/bench/test_aws_fast_paths.py).
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from aiobotocore.httpsession import AIOHTTPSession
from aiobotocore.session import AioSession
from botocore.context import get_context
from botocore.utils import parse_timestamp


def parse_aws_timestamp(value: Any) -> datetime:
    """botocore's timestamp parser, minus dateutil for the ISO 8601 form AWS answers with.

    Same values (timezone-aware datetimes); dateutil's generic parser cost about 2 s of CPU per
    cycle over 20,000 resources (two timestamps per proxy, one per endpoint; bench/RESULTS.md).
    """
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is not None:
                return parsed
    return parse_timestamp(value)  # type: ignore[no-any-return]


def cache_user_agent(client: Any) -> None:
    """Build the client's User-Agent header once per set of request features, not per request.

    botocore rebuilds the string for every request (`UserAgentString.to_string`, called by the
    `request-created` handler and when a request is prepared): ~0.4 ms of CPU each, about a
    tenth of a call's CPU in the org-shape profile. Its inputs are the client's settings
    (fixed) and the features botocore's request context carries, which key the cache.
    """
    creator = getattr(client, "_user_agent_creator", None)
    if creator is None:
        return
    build = creator.to_string
    built: dict[frozenset[str], str] = {}

    def to_string() -> str:
        context = get_context()
        key = frozenset(context.features) if context is not None else frozenset()
        value = built.get(key)
        if value is None:
            value = built[key] = build()
        return value

    creator.to_string = to_string


def parse_timestamps_fast(session: AioSession) -> None:
    factory = session.get_component("response_parser_factory")
    factory.set_parser_defaults(timestamp_parser=parse_aws_timestamp)


def shared_tls_session_class() -> type[Any]:
    """An aiobotocore HTTP session class whose instances share their TLS contexts.

    aiobotocore builds one TLS context per client, loading the CA bundle each time (tens of
    milliseconds of CPU and about a megabyte each); a cycle has two clients per scope. The
    contexts depend only on the client settings, the same for every client of one source.
    """
    built: dict[tuple[Any, ...], Any] = {}
    lock = threading.Lock()  # contexts are built in worker threads

    class SharedTLSSession(AIOHTTPSession):  # type: ignore[misc]
        def _build_ssl_contexts(self, proxy_url: Any) -> Any:
            key = (
                repr(getattr(self, "_verify", None)),
                getattr(self, "_cert_file", None),
                getattr(self, "_key_file", None),
                proxy_url,
            )
            with lock:
                if key not in built:
                    built[key] = super()._build_ssl_contexts(proxy_url)
                return built[key]

    return SharedTLSSession

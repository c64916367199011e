"""The baseline a competent user would write: boto3 in 64 threads, a client per account-region.

One boto3 session per account (assumed-role credentials, AssumeRole once per account), one RDS
client per (account, region), one thread-pool task per scope: DescribeDBProxies (every page);
when the scope holds proxies, DescribeDBProxyEndpoints (every page) and ListTagsForResource per
proxy. It already skips the empty scopes' other calls; it only fetches (no conversion, plan or
registry), so its time is a lower bound for such a script.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

from discovery.core.config import Config
from discovery.core.model import Scope
from discovery.core.scopes import expand_scopes

THREADS = 64


def scan_threaded(config: Config, *, threads: int = THREADS) -> dict[str, Any]:
    boto_config = BotoConfig(retries={"mode": "standard"}, max_pool_connections=threads)
    calls: dict[str, int] = {}
    count_lock = threading.Lock()
    sessions: dict[str, boto3.Session] = {}
    session_lock = threading.Lock()
    sts = boto3.Session().client("sts", region_name="us-east-1", config=boto_config)

    def count(operation: str) -> None:
        with count_lock:
            calls[operation] = calls.get(operation, 0) + 1

    role_locks: dict[str, threading.Lock] = {}

    def lock_for(role: str) -> threading.Lock:
        with session_lock:
            return role_locks.setdefault(role, threading.Lock())

    def session_for(scope: Scope) -> boto3.Session:
        role = scope.assume_role_arn
        with lock_for(role):  # one AssumeRole per account; other accounts' threads do not wait
            if role not in sessions:
                count("AssumeRole")
                creds = sts.assume_role(RoleArn=role, RoleSessionName="threaded-baseline")
                c = creds["Credentials"]
                sessions[role] = boto3.Session(
                    aws_access_key_id=c["AccessKeyId"],
                    aws_secret_access_key=c["SecretAccessKey"],
                    aws_session_token=c["SessionToken"],
                )
            return sessions[role]

    def pages(method: Any, key: str, operation: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        marker = ""
        while True:
            params: dict[str, Any] = {"MaxRecords": 100}
            if marker:
                params["Marker"] = marker
            count(operation)
            response = method(**params)
            items.extend(response.get(key, []))
            marker = response.get("Marker", "")
            if not marker:
                return items

    def one(scope: Scope) -> tuple[int, int]:
        session = session_for(scope)
        # boto3: a session is not safe to create clients from concurrently (per account).
        with lock_for(scope.assume_role_arn):
            rds = session.client("rds", region_name=scope.region, config=boto_config)
        proxies = pages(rds.describe_db_proxies, "DBProxies", "DescribeDBProxies")
        if not proxies:
            return 0, 0
        endpoints = pages(
            rds.describe_db_proxy_endpoints, "DBProxyEndpoints", "DescribeDBProxyEndpoints"
        )
        for proxy in proxies:
            count("ListTagsForResource")
            rds.list_tags_for_resource(ResourceName=proxy["DBProxyArn"])
        return len(proxies), sum(1 for e in endpoints if not e.get("IsDefault"))

    with ThreadPoolExecutor(max_workers=threads) as pool:
        fetched = list(pool.map(one, expand_scopes(config)))
    return {
        "scopes": len(fetched),
        "failed_scopes": 0,
        "resources": sum(p + e for p, e in fetched),
        "client_calls": dict(sorted(calls.items())),
    }

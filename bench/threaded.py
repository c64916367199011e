"""The baseline a competent user would write: boto3 in 64 threads, a client per account-region.

One boto3 session per account (assumed-role credentials, AssumeRole once per account), one RDS
client per (account, region), one thread-pool task per scope: DescribeDBProxies (every page);
when the scope holds proxies, DescribeDBProxyEndpoints (every page) and ListTagsForResource per
proxy. It already skips the empty scopes' other calls; it only fetches (no conversion, plan or
registry), so its time is a lower bound for such a script.

An organization matcher is enumerated the same way ours is, through the APIs (not taken as
given): the Organizations tree walked from the root (ListRoots, then per parent
ListOrganizationalUnitsForParent and ListAccountsForParent, every page; ACTIVE accounts), then
per account in the pool AssumeRole and account:ListRegions (ENABLED, ENABLED_BY_DEFAULT).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

from discovery.core.config import Config
from discovery.core.matchers import Matcher
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

    def session_for(role: str) -> boto3.Session:
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

    def one(scope: tuple[str, str]) -> tuple[int, int]:
        role, region = scope
        session = session_for(role)
        # boto3: a session is not safe to create clients from concurrently (per account).
        with lock_for(role):
            rds = session.client("rds", region_name=region, config=boto_config)
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

    def org_roles(matcher: Matcher) -> list[str]:
        assert matcher.organization is not None
        org = boto3.Session().client("organizations", region_name="us-east-1", config=boto_config)

        def listed(method: Any, key: str, operation: str, **params: Any) -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = []
            while True:
                count(operation)
                response = method(**params)
                items.extend(response.get(key, []))
                params["NextToken"] = response.get("NextToken", "")
                if not params["NextToken"]:
                    return items

        parents = [r["Id"] for r in listed(org.list_roots, "Roots", "ListRoots")]
        accounts: list[str] = []
        while parents:
            parent = parents.pop()
            parents += [
                ou["Id"]
                for ou in listed(
                    org.list_organizational_units_for_parent,
                    "OrganizationalUnits",
                    "ListOrganizationalUnitsForParent",
                    ParentId=parent,
                )
            ]
            accounts += [
                a["Id"]
                for a in listed(
                    org.list_accounts_for_parent,
                    "Accounts",
                    "ListAccountsForParent",
                    ParentId=parent,
                )
                if a.get("Status") == "ACTIVE"
            ]
        return [f"arn:aws:iam::{a}:role/{matcher.assume_role_name}" for a in sorted(accounts)]

    def regions_of(role: str) -> list[tuple[str, str]]:
        session = session_for(role)
        with lock_for(role):
            account = session.client("account", region_name="us-east-1", config=boto_config)
        count("ListRegions")
        listed = account.list_regions(RegionOptStatusContains=["ENABLED", "ENABLED_BY_DEFAULT"])
        return [(role, r["RegionName"]) for r in listed.get("Regions", [])]

    scopes = [(s.assume_role_arn, s.region) for s in expand_scopes(config)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for matcher in config.aws:
            if matcher.organization is not None:
                for listed_scopes in pool.map(regions_of, org_roles(matcher)):
                    scopes += listed_scopes
        fetched = list(pool.map(one, scopes))
    return {
        "scopes": len(fetched),
        "failed_scopes": 0,
        "resources": sum(p + e for p, e in fetched),
        "client_calls": dict(sorted(calls.items())),
    }

"""deploy/: the container image, the Kubernetes base, the systemd unit, the Prometheus rules
and the Grafana dashboard, each checked by the tool that owns its format, and against the real
daemon: the probe paths, the healthcheck and the metric names must be ones it serves."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from discovery.emulator import EmulatorThread
from tests.harness.env import process_env
from tests.tools import promtool

from .conftest import DEPLOY, ROOT

KUSTOMIZE_DIR = DEPLOY / "kubernetes"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
UNIT = DEPLOY / "systemd" / "discovery.service"
ALERTS = DEPLOY / "prometheus" / "alerts.yaml"
DASHBOARD = DEPLOY / "grafana" / "dashboard.json"
METRIC_RE = re.compile(r"\brdsproxy_discovery_[a-z_]+\b")


def tool(name: str) -> str:
    """A checker from the machine image (kubectl, systemd-analyze): missing fails, never skips."""
    found = shutil.which(name)
    assert found, f"{name} not found: it is part of the project's machine image"
    return found


# --- Kubernetes -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, Any]]:
    """`kubectl kustomize deploy/kubernetes`, by kind (one object of each kind in the base)."""
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(KUSTOMIZE_DIR)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    objects = [d for d in yaml.safe_load_all(result.stdout) if d]
    kinds = [o["kind"] for o in objects]
    assert len(kinds) == len(set(kinds)), kinds
    return {o["kind"]: o for o in objects}


def test_the_base_has_every_object(rendered: dict[str, dict[str, Any]]) -> None:
    assert set(rendered) == {
        "Deployment",
        "ServiceAccount",
        "ConfigMap",
        "Service",
        "ServiceMonitor",
        "PodDisruptionBudget",
        "PersistentVolumeClaim",
        "NetworkPolicy",
    }
    for obj in rendered.values():
        assert obj["apiVersion"] and obj["metadata"]["name"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/name"] == "rdsproxy-discovery"


def container(rendered: dict[str, dict[str, Any]]) -> dict[str, Any]:
    containers = rendered["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def test_deployment_probes_resources_and_hardening(rendered: dict[str, dict[str, Any]]) -> None:
    deployment = rendered["Deployment"]
    pod = deployment["spec"]["template"]
    c = container(rendered)
    port_names = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert port_names == {"http-metrics": 9464}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-metrics"}
    assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http-metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-metrics"}
    assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
    assert c["resources"]["limits"]["memory"]
    security = c["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["runAsUser"] != 0
    # the image's entrypoint is `discovery run`: the args are its flags
    assert c["args"] == ["--config", "/etc/discovery/discovery.yaml", "--listen", "0.0.0.0:9464"]
    # selectors match the pod
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert rendered["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= (
        labels.items()
    )
    assert rendered["Service"]["spec"]["selector"].items() <= labels.items()
    assert pod["spec"]["serviceAccountName"] == rendered["ServiceAccount"]["metadata"]["name"]


def test_serviceaccount_is_annotated_for_irsa(rendered: dict[str, dict[str, Any]]) -> None:
    annotations = rendered["ServiceAccount"]["metadata"]["annotations"]
    assert re.fullmatch(
        r"arn:aws:iam::\d{12}:role/[\w+=,.@-]+", annotations["eks.amazonaws.com/role-arn"]
    )


def test_service_and_servicemonitor_reach_metrics(rendered: dict[str, dict[str, Any]]) -> None:
    service = rendered["Service"]
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == "http-metrics"
    monitor = rendered["ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == port["name"]
    assert endpoint["path"] == "/metrics"


def mounts(rendered: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """mountPath → the volume mounted there (with readOnly from the mount)."""
    volumes = {v["name"]: v for v in rendered["Deployment"]["spec"]["template"]["spec"]["volumes"]}
    return {
        m["mountPath"]: {**volumes[m["name"]], "readOnly": m.get("readOnly", False)}
        for m in container(rendered)["volumeMounts"]
    }


def configmap_config(rendered: dict[str, dict[str, Any]]) -> str:
    configmap = rendered["ConfigMap"]
    at = mounts(rendered)["/etc/discovery"]
    # the Deployment mounts the generated ConfigMap (kustomize rewrote the hashed name)
    assert at["configMap"]["name"] == configmap["metadata"]["name"]
    assert at["readOnly"] is True
    return str(configmap["data"]["discovery.yaml"])


def test_configmap_config_passes_validate(
    rendered: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    path = tmp_path / "discovery.yaml"
    path.write_text(configmap_config(rendered))
    result = subprocess.run(
        [sys.executable, "-m", "discovery", "validate", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{path}: ok")


def test_the_registry_lives_on_the_writable_volume(rendered: dict[str, dict[str, Any]]) -> None:
    config = yaml.safe_load(configmap_config(rendered))
    registry = Path(config["registry"]["path"])
    assert registry.is_absolute()  # relative paths would land in the read-only ConfigMap
    at = mounts(rendered)[str(registry.parent)]
    assert (
        at["persistentVolumeClaim"]["claimName"]
        == (rendered["PersistentVolumeClaim"]["metadata"]["name"])
    )
    assert at["readOnly"] is False


# --- Container image ------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = dockerfile()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_dockerfile_runs_the_daemon_as_a_non_root_user() -> None:
    stage = dict(final_stage())
    assert len([w for w, _ in dockerfile() if w == "FROM"]) == 2  # build stage + small runtime
    assert ("ARG", "PYTHON_IMAGE=python:3.11-slim-bookworm") in dockerfile()
    user = stage["USER"].split(":")[0]
    assert user not in {"root", "0"}
    assert json.loads(stage["ENTRYPOINT"]) == ["discovery", "run"]
    assert json.loads(stage["CMD"]) == [
        "--config",
        "/etc/discovery/discovery.yaml",
        "--listen",
        "0.0.0.0:9464",
    ]
    assert stage["EXPOSE"] == "9464"
    assert "/healthz" in stage["HEALTHCHECK"]


def test_dockerfile_copies_what_exists_and_the_ignore_file_keeps_it() -> None:
    ignore = (DEPLOY / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    for word, rest in dockerfile():
        if word == "COPY" and not rest.startswith("--from"):
            *sources, _ = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), source
                assert f"!{source.rstrip('/')}" in [i.rstrip("/") for i in ignore], source


def healthcheck_command(port: int) -> list[str]:
    """The image's HEALTHCHECK, run with this interpreter against 127.0.0.1:`port`."""
    _, _, command = dict(final_stage())["HEALTHCHECK"].partition("CMD ")
    argv = [str(a) for a in json.loads(command)]
    assert argv[0] == "python"
    assert any("http://127.0.0.1:9464/healthz" in a for a in argv)
    return [sys.executable, *(a.replace("127.0.0.1:9464", f"127.0.0.1:{port}") for a in argv[1:])]


def test_the_cli_accepts_the_entrypoint_flags() -> None:
    """`discovery run --config ... --listen ...` parses (the image's ENTRYPOINT + CMD)."""
    from discovery.cli.main import build_parser

    stage = dict(final_stage())
    argv = json.loads(stage["ENTRYPOINT"])[1:] + json.loads(stage["CMD"])
    args = build_parser().parse_args(argv)
    assert args.command == "run"
    assert args.listen == "0.0.0.0:9464"


# --- The real daemon behind the probes, the healthcheck and the metrics ------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


@pytest.fixture(scope="module")
def daemon(
    rendered: dict[str, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`discovery run` with the ConfigMap's own config (only the registry path moved), against
    an emulator that has the accounts and roles that config names."""
    config = yaml.safe_load(configmap_config(rendered))
    workdir = tmp_path_factory.mktemp("daemon")
    config["registry"]["path"] = str(workdir / "discovery.db")
    (workdir / "discovery.yaml").write_text(yaml.safe_dump(config))
    accounts: dict[str, dict[str, Any]] = {}
    for matcher in config["aws"]:
        account, role = matcher["assume_role_arn"].split(":")[4], matcher["assume_role_arn"]
        entry = accounts.setdefault(account, {"id": account, "roles": [], "regions": {}})
        entry["roles"].append(
            {"name": role.rsplit("/", 1)[1], "external_id": matcher.get("external_id")}
        )
        for region in matcher["regions"]:
            entry["regions"][region] = {"proxies": [{"name": f"pg-{region}"}]}
    port = free_port()
    with EmulatorThread({"accounts": list(accounts.values())}) as emulator:
        env = process_env(emulator.url)
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "discovery",
                "run",
                "--config",
                str(workdir / "discovery.yaml"),
                "--listen",
                f"127.0.0.1:{port}",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                try:
                    if get(f"{base}/readyz")[0] == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.2)
            else:
                raise AssertionError("the daemon did not become ready within 60 s")
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_probe_paths_are_served_by_the_daemon(
    rendered: dict[str, dict[str, Any]], daemon: str
) -> None:
    c = container(rendered)
    paths = {c[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe", "startupProbe")}
    paths.add(rendered["ServiceMonitor"]["spec"]["endpoints"][0]["path"])
    paths.add(rendered["Service"]["metadata"]["annotations"]["prometheus.io/path"])
    assert paths == {"/healthz", "/readyz", "/metrics"}
    for path in sorted(paths):
        status, _ = get(daemon + path)
        assert status == 200, path
    assert get(daemon + "/no-such-path")[0] == 404  # the check above can fail


def test_the_image_healthcheck_passes_against_the_daemon(daemon: str) -> None:
    port = int(daemon.rsplit(":", 1)[1])
    result = subprocess.run(healthcheck_command(port), capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr
    # and fails when nothing answers
    result = subprocess.run(healthcheck_command(free_port()), capture_output=True, timeout=30)
    assert result.returncode != 0


def scraped_names(daemon: str) -> set[str]:
    status, body = get(daemon + "/metrics")
    assert status == 200
    names: set[str] = set()
    for family in text_string_to_metric_families(body):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + s for s in ("_bucket", "_sum", "_count"))
    return names


def used_metrics() -> dict[str, set[str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets") or []]
    return {
        "alerts.yaml": set(METRIC_RE.findall(ALERTS.read_text())),
        "dashboard.json": set(METRIC_RE.findall("\n".join(exprs))),
    }


def test_alerts_and_dashboard_use_metrics_the_daemon_exposes(daemon: str) -> None:
    exposed = scraped_names(daemon)
    for source, names in used_metrics().items():
        assert names, source
        assert names <= exposed, f"{source} uses metrics the daemon does not expose: " + str(
            sorted(names - exposed)
        )


# --- systemd ------------------------------------------------------------------------------


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    """systemd-analyze verify, with the venv's path pointed at a stand-in executable."""
    stand_in = tmp_path / "discovery"
    stand_in.write_text("#!/bin/sh\n")
    stand_in.chmod(0o755)
    unit = tmp_path / "discovery.service"
    unit.write_text(
        UNIT.read_text().replace("/opt/rdsproxy-discovery/bin/discovery", str(stand_in))
    )
    result = subprocess.run(
        [tool("systemd-analyze"), "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr  # unknown keys are only warned about
    # the check can fail: a misspelt directive is reported
    unit.write_text(unit.read_text().replace("NoNewPrivileges=", "NoNewPrivilege="))
    result = subprocess.run(
        [tool("systemd-analyze"), "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert "Unknown key" in result.stderr


def test_systemd_unit_is_sandboxed() -> None:
    result = subprocess.run(
        [tool("systemd-analyze"), "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for discovery\.service: ([\d.]+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout


def test_systemd_unit_runs_the_daemon() -> None:
    settings = unit_settings()
    (exec_start,) = settings["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[1:] == ["run", "--config", "/etc/rdsproxy-discovery/discovery.yaml"]
    assert settings["DynamicUser"] == ["yes"]  # a transient, unprivileged user
    assert settings["StateDirectory"] == ["rdsproxy-discovery"]
    assert settings["ProtectSystem"] == ["strict"]
    assert settings["NoNewPrivileges"] == ["yes"]


# --- Prometheus and Grafana ---------------------------------------------------------------


def test_alert_rules_pass_promtool_check() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout


def test_alert_rules_unit_tests_pass() -> None:
    """promtool's own rule tests: each alert fires on its condition and stays quiet otherwise."""
    result = subprocess.run(
        [promtool(), "test", "rules", "alerts.test.yaml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ALERTS.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_runbook_anchor_exists_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "\n## Alerting and dashboards\n" in readme  # GitHub's anchor: #alerting-and-dashboards
    assert "rdsproxy_docs_url" in readme


def test_the_alerts_cover_what_issue_7_asks_for() -> None:
    rules = {r["alert"]: r for r in yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]}
    assert set(rules) == {
        "DiscoveryNoSuccessfulCycle",
        "DiscoveryScopeDown",
        "DiscoveryDeletesWithheld",
        "DiscoveryConflictsRising",
        "DiscoveryNoLeader",
    }
    assert "3 * " in rules["DiscoveryNoSuccessfulCycle"]["expr"]
    assert rules["DiscoveryScopeDown"]["for"] == "15m"
    assert rules["DiscoveryNoLeader"]["for"] == "10m"
    assert "rdsproxy_discovery_leader" in rules["DiscoveryNoLeader"]["expr"]
    assert 'reason="delete-guard"' in rules["DiscoveryDeletesWithheld"]["expr"]
    for rule in rules.values():
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        # A link that opens once the documented external label names where the README is.
        runbook = rule["annotations"]["runbook_url"]
        assert "$externalLabels.rdsproxy_docs_url" in runbook, rule["alert"]
        assert runbook.endswith("#alerting-and-dashboards"), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "rdsproxy-discovery"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "job"}
    rules = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", "5m").replace("$job", ".*")
            rules.append({"record": f"dashboard:panel_{len(rules)}", "expr": expr})
    assert len(rules) >= 15
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_only_prometheus_reaches_the_pods_port(rendered: dict[str, dict[str, Any]]) -> None:
    """The container binds 0.0.0.0: a NetworkPolicy keeps /status to the monitoring namespace."""
    policy = rendered["NetworkPolicy"]["spec"]
    labels = rendered["Deployment"]["spec"]["selector"]["matchLabels"]
    assert policy["podSelector"]["matchLabels"] == labels
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"port": "http-metrics", "protocol": "TCP"}]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]


def test_the_unit_raises_the_fd_limit() -> None:
    """The systemd default (1024) let idle HTTP connections starve the registry of fds."""
    lines = UNIT.read_text().splitlines()
    assert "LimitNOFILE=65536" in lines

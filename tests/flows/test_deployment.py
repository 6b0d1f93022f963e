from __future__ import annotations

from pathlib import Path

import yaml
from prefect.flows import load_flow_from_entrypoint

PROJECT = Path(__file__).resolve().parents[2]


def deployments() -> dict[str, dict]:
    document = yaml.safe_load((PROJECT / "prefect.yaml").read_text(encoding="utf-8"))
    return {deployment["name"]: deployment for deployment in document["deployments"]}


def test_the_nightly_delivery_report_deployment_is_declared() -> None:
    nightly = deployments()["delivery-report"]
    (schedule,) = nightly["schedules"]
    assert schedule["cron"] == "30 2 * * *"
    assert schedule["active"] is True
    assert nightly["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}


def test_every_entrypoint_loads_its_flow() -> None:
    for deployment in deployments().values():
        path, _, name = deployment["entrypoint"].partition(":")
        loaded = load_flow_from_entrypoint(str(PROJECT / path) + ":" + name)
        assert loaded.name == deployment["name"]

"""What a flow run is given: its parameters, checked before anything runs, and the moment it started."""

from __future__ import annotations

import json
from datetime import date, datetime

from prefect import runtime

from schemas.errors import SettingError

Moment = datetime | date | str | None

PARAMETER_TYPES: dict[str, tuple[type, ...]] = {
    "since": (str, datetime, date, type(None)),
    "until": (str, datetime, date, type(None)),
    "dry_run": (bool,),
    "merchant": (str, type(None)),
    "out": (str, type(None)),
    "retry_quarantined": (bool,),
    "window": (str,),
}

PARAMETER_HELP = {
    "since": "an ISO 8601 date or datetime, like 2026-11-05 or 2026-11-05T00:00:00Z",
    "until": "an ISO 8601 date or datetime, like 2026-11-06 or 2026-11-06T00:00:00Z",
    "dry_run": "true or false",
    "merchant": "a SeQura merchant id in quotes",
    "out": "a file path in quotes",
    "retry_quarantined": "true or false",
    "window": "a window width in quotes, like 1d, 12h or 30m",
}


def check_parameters(**parameters: object) -> None:
    """Raise a SettingError naming the first parameter of the wrong type (a deployment passes any JSON)."""
    for name, value in parameters.items():
        if not isinstance(value, PARAMETER_TYPES[name]):
            raise SettingError(name, f"{json.dumps(value, default=str)[:40]} is not {PARAMETER_HELP[name]}")


def run_started_at() -> datetime:
    """The flow run's scheduled start (now outside a run): the one 'now' its name and its window share."""
    scheduled = runtime.flow_run.scheduled_start_time
    return (
        datetime.fromisoformat(str(scheduled))
        if runtime.flow_run.id and scheduled
        else datetime.now().astimezone()
    )

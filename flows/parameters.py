"""What a flow run is given: its parameters, checked before anything runs, and the moment it started.

A run started from a deployment (the UI, a schedule, another run, the API) may write its file only inside
the project's output folder, and never over a file that exists; the `sequra-etl` command checks --out
itself (it replaces a file only with --force) and calls the flow in its own process, outside a deployment.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path

from prefect import runtime

from schemas.errors import SettingError
from schemas.settings import OUTPUT_DIR
from schemas.shown import shown

Moment = datetime | date | str | None

PARAMETER_TYPES: dict[str, tuple[type, ...]] = {
    "since": (str, datetime, date, type(None)),
    "until": (str, datetime, date, type(None)),
    "dry_run": (bool,),
    "merchant": (str, type(None)),
    "out": (str, type(None)),
    "retry_quarantined": (bool,),
    "window": (str,),
    "corrections": (str,),
    "apply": (bool,),
}

PARAMETER_HELP = {
    "since": "an ISO 8601 date or datetime, like 2026-11-05 or 2026-11-05T00:00:00Z",
    "until": "an ISO 8601 date or datetime, like 2026-11-06 or 2026-11-06T00:00:00Z",
    "dry_run": "true or false",
    "merchant": "a SeQura merchant id in quotes",
    "out": "a file path in quotes",
    "retry_quarantined": "true or false",
    "window": "a window width in quotes, like 1d, 12h or 30m",
    "corrections": "a file path or an http(s) URL in quotes",
    "apply": "true or false",
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


def started_from_deployment() -> bool:
    """Whether this flow run was started from a deployment, or runs inside one that was; reads Prefect's."""
    return bool(runtime.deployment.id)


def check_out(
    name: str, files: Sequence[Path], *, replace: bool, folder: Path | None = None, force: str | None = None
) -> None:
    """Refuse, naming `name`, a file that is a folder, lies outside `folder`, or exists unless `replace`.

    `..` and symlinks are resolved before `folder` is compared, and a symlink counts as a file that exists;
    `force` names the option that replaces a file, if there is one.
    """
    for file in files:
        path = shown(str(file), 200)
        try:
            resolved, is_folder, taken = file.resolve(), file.is_dir(), file.exists() or file.is_symlink()
            outside = folder is not None and folder.resolve() not in resolved.parents
        except (OSError, ValueError) as error:  # a NUL byte, a name longer than the file system takes
            problem = getattr(error, "strerror", None) or error
            raise SettingError(name, f"'{path}' is no path a file can have ({problem})") from None
        if is_folder:
            raise SettingError(name, f"{path} is a folder; give the path of a file")
        if outside:
            raise SettingError(
                name,
                f"{path} is outside the output folder {folder.resolve()}: a run started from a deployment "
                f"writes only there; give a path inside it, like {folder}/{shown(file.name, 80)}",
            )
        if taken and not replace:
            raise SettingError(
                name,
                f"{path} already exists; give a file that does not"
                + (f", or {force} to replace it" if force else ""),
            )


def check_deployment_out(out: str | None, *beside: Callable[[Path], Path]) -> None:
    """A deployment run's `out`, and the files `beside` name next to it: new files inside OUTPUT_DIR.

    A run called in this process (by `sequra-etl`, which checked --out itself) is left as it is.
    """
    if out and started_from_deployment():
        file = Path(out)
        check_out("out", [file, *(companion(file) for companion in beside)], replace=False, folder=OUTPUT_DIR)

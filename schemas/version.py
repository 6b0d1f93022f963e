"""The version of sequra-etl, as the platform block and `--version` say it."""

from __future__ import annotations

from importlib import metadata


def package_version() -> str:
    """The installed version of sequra-etl."""
    try:
        return metadata.version("sequra-etl")
    except metadata.PackageNotFoundError:
        return "0+unknown"

"""Settings of the SeQura sandbox: the credentials and merchants it accepts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SandboxConfig:
    """The HTTP Basic credentials and merchant ids the sandbox accepts."""

    username: str = "demo"
    password: str = "demo-secret"
    merchants: tuple[str, ...] = ("demo_merchant", "demo_merchant_pt")

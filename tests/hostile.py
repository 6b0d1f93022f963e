"""How many hostile inputs each property tries: a derandomised few hundred in make test, 1,000 in reliability.

`make test` runs HOSTILE_EXAMPLES=200 (the default) with a fixed seed, so CI is repeatable; `make reliability`
runs 1,000 random ones. Every property that uses `hostile` is marked `pytest.mark.hostile`.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("HOSTILE_EXAMPLES", "200"))

hostile = settings(
    max_examples=EXAMPLES,
    derandomize=EXAMPLES <= 200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)

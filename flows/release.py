"""The release flow: what `sequra-etl release` does, as a deployment a person starts from the Prefect UI."""

from __future__ import annotations

from prefect import flow, get_run_logger, runtime
from prefect.artifacts import create_markdown_artifact

from flows.artifacts import publish_open_quarantine
from schemas.errors import SettingError
from schemas.masking import masked_url
from schemas.settings import Settings
from tasks.delivery.run import quietly
from tasks.delivery.summary import artifact_key
from tasks.inert import markdown_text
from tasks.resources import RunResources
from tasks.state.releases import NotReleasableError, release_orders


def run_name() -> str:
    """release-{the orders}, or release-run-{run id}."""
    parameters = runtime.flow_run.parameters
    refs = parameters.get("order_refs") or []
    named = [str(ref) for ref in refs][:3] if isinstance(refs, list) else []
    run = parameters.get("run")
    parts = named + ([f"run-{run}"] if run else []) + (["more"] if len(refs) > 3 else [])
    return "release-" + "-".join(parts or ["nothing"])


def publish_result(merchant: str, lines: list[str]) -> None:
    """Publish what the release did, or why it did nothing, as the run's artifact; writes to Prefect."""
    create_markdown_artifact(
        "\n".join(
            [
                f"# Release for merchant {markdown_text(merchant)}",
                "",
                *(f"- {markdown_text(line)}" for line in lines),
            ]
        ),
        key=artifact_key("release-result", merchant),
        description="What the release did",
    )


@flow(name="release", flow_run_name=run_name, validate_parameters=False)
def release(
    order_refs: list[str] | None = None,
    run: str | None = None,
    resend: bool = False,
    merchant: str | None = None,
) -> list[str]:
    """Settle orders held without a clear answer from SeQura, or send refused order updates again.

    Args:
        order_refs: orders as SeQura knows them (order_ref_1).
        run: every order this run (its run id in the summary) left without a clear answer.
        resend: SeQura does not have them (you checked): report them again; without it a held order is
            recorded as SeQura's and confirmed by an order update, which can never report it twice.
        merchant: SeQura merchant id; default SEQURA_MERCHANT_ID.
    """
    if not isinstance(order_refs, list | type(None)) or not all(isinstance(r, str) for r in order_refs or []):
        raise SettingError("order_refs", 'is not a list of order references in quotes, like ["AAAAAAAAA"]')
    settings = Settings.from_env(merchant_id=merchant)
    settings.require("merchant_id")
    with RunResources.open(settings) as resources:
        merchant_id = resources.merchant
        try:
            lines = release_orders(
                resources.store, merchant_id, order_refs or [], run_id=run, resend=bool(resend)
            )
        except NotReleasableError as refused:
            publish_result(merchant_id, [str(refused)])
            raise
        publish_result(merchant_id, lines)
        get_run_logger().info("%s (state store %s)", "; ".join(lines), masked_url(settings.state_url()))
        quietly(
            "publish the orders still in quarantine",
            lambda: publish_open_quarantine(resources.store, merchant_id, resources.shop_timezone()),
        )
    return lines

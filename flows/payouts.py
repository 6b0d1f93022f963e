"""The payouts flow: did SeQura pay what it was told shipped? One merchant's check, or every merchant's.

A check reads the disbursements SeQura lists that the state store has not read, compares every order SeQura
was told shipped with what they paid, writes each order that differs to a CSV, and shows the money at stake
in the Prefect UI. It ends Completed when every order was paid as reported, and PayoutsDiffer (a Completed
state the alert automation matches) with the counts when some were not. With several merchants and none
named, each merchant's check is a subflow of its own, and the parent ends as its worst check.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from prefect import flow, get_run_logger, runtime
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.states import Completed, State

from flows.alerts import PAYOUTS_DIFFER
from flows.backfill import merchants_of
from flows.history import rename_run, tag_run
from flows.parameters import check_deployment_out, check_parameters, run_started_at
from schemas.errors import SettingError, TerminalError
from schemas.masking import masked_url
from schemas.outcomes import ROWS_SHOWN
from schemas.settings import OUTPUT_DIR, Settings
from tasks.delivery.summary import artifact_key
from tasks.payouts.check import PayoutSummary, check_payouts
from tasks.payouts.summary import (
    finding_rows,
    findings_in_words,
    payouts_markdown,
    stopped_markdown,
)
from tasks.resources import RunResources
from tasks.window import shop_minute


class PayoutChecksError(TerminalError):
    """Some merchants' payout checks did not finish; the message names them and why."""


def run_name() -> str:
    """payouts-{merchant or every-merchant}-{day of the start}, until the shop's time zone is read."""
    merchant = runtime.flow_run.parameters.get("merchant") or "every-merchant"
    return f"payouts-{merchant}-{run_started_at():%Y-%m-%d}"


def default_out(merchant: str) -> Path:
    """The CSV a check writes when not told where: .sequra-etl/payouts-{merchant}-{start}.csv."""
    slug = artifact_key("payouts", merchant)
    return OUTPUT_DIR / f"{slug}-{run_started_at():%Y-%m-%dT%H-%M}.csv"


@flow(name="payouts", flow_run_name=run_name, validate_parameters=False)
def payouts(merchant: str | None = None, out: str | None = None) -> PayoutSummary | State:
    """Check what SeQura paid against what it was told shipped, order by order; write the findings to a CSV.

    Args:
        merchant: one SeQura merchant; default every configured merchant (SEQURA_MERCHANTS, else
            SEQURA_MERCHANT_ID), each checked in a subflow of its own.
        out: the CSV of the findings; default .sequra-etl/payouts-{merchant}-{start}.csv. A run started from a
            deployment writes only new files inside .sequra-etl/. Only with one merchant.
    """
    check_parameters(merchant=merchant, out=out)
    merchants = merchants_of(merchant)
    if len(merchants) > 1:
        if out:
            raise SettingError(
                "out",
                f"names one CSV, and the check is for {len(merchants)} merchants: name one merchant too, or "
                "leave out out (each merchant's CSV goes to .sequra-etl/)",
            )
        return every_merchants_check(merchants)
    check_deployment_out(out)
    return merchant_check(merchants[0], out)


def merchant_check(merchant: str, out: str | None) -> PayoutSummary | State:
    """One merchant's payout check, published in the UI; PayoutsDiffer when some orders were not paid as told.

    Reads SeQura and the state store, writes the store (the disbursements read) and the CSV.
    """
    logger = get_run_logger()
    settings = Settings.from_env(merchant_id=merchant)
    settings.require("merchant_id", "username", "password")
    tag_run([f"merchant:{settings.merchant_id}"])
    out_file = Path(out) if out else default_out(merchant)
    logger.info("Merchant %s; state store %s", settings.merchant_id, masked_url(settings.state_url()))
    with RunResources.open(settings, log=logger) as resources:
        timezone = "UTC"
        try:
            timezone = resources.shop_timezone()
            rename_run(f"payouts {merchant} {shop_minute(run_started_at(), timezone)} {timezone}")
            summary = check_payouts(resources, out_file)
        except Exception as error:
            create_markdown_artifact(
                stopped_markdown(merchant, f"{type(error).__name__}: {error}", run_started_at(), timezone),
                key=artifact_key("payouts-summary", merchant),
                description="Why the payout check stopped",
            )
            raise
    summary = replace(summary, started_at=run_started_at())
    publish(summary)
    logger.info(
        "%d disbursements read (%d new): %s",
        summary.periods.count,
        summary.read.new,
        findings_in_words(summary) or "every order paid as reported",
    )
    return final_state(summary)


def publish(summary: PayoutSummary) -> None:
    """Show the check in the Prefect UI: its summary in words and the table of its findings."""
    create_markdown_artifact(
        payouts_markdown(summary),
        key=artifact_key("payouts-summary", summary.merchant),
        description="What SeQura paid, what was expected, and the money at stake per finding",
    )
    create_table_artifact(
        finding_rows(summary),
        key=artifact_key("payouts-findings", summary.merchant),
        description=f"Orders not paid as reported (the first {ROWS_SHOWN:,}), and what to do about each",
    )


def final_state(summary: PayoutSummary) -> PayoutSummary | State:
    """Plain Completed when every order was paid as reported; else PayoutsDiffer, with the counts in words."""
    if summary.all_paid:
        return summary
    return Completed(
        name=PAYOUTS_DIFFER,
        message=f"{findings_in_words(summary)}; the payouts-findings artifact says what to do about each",
        data=summary,
    )


def every_merchants_check(merchants: tuple[str, ...]) -> State:
    """Each merchant's check as a subflow; the parent ends as its worst: Failed, PayoutsDiffer, Completed.

    Raises PayoutChecksError naming the merchants whose check did not finish, after running the others.
    """
    states = {merchant: payouts(merchant=merchant, return_state=True) for merchant in merchants}
    failed = {merchant: state for merchant, state in states.items() if not state.is_completed()}
    if failed:
        said = "; ".join(f"{merchant}: {state.message}" for merchant, state in failed.items())
        raise PayoutChecksError(
            f"{len(failed)} of {len(merchants)} payout checks did not finish ({said}); each run says why"
        )
    summaries: list[PayoutSummary] = [state.result() for state in states.values()]
    differing = [summary for summary in summaries if not summary.all_paid]
    if differing:
        return Completed(
            name=PAYOUTS_DIFFER,
            message="; ".join(f"{summary.merchant}: {findings_in_words(summary)}" for summary in differing),
            data=summaries,
        )
    return Completed(message=f"{len(summaries)} merchants: every order paid as reported", data=summaries)


if __name__ == "__main__":
    payouts()

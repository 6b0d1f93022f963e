from __future__ import annotations

from dataclasses import replace

from schemas.reports import Change
from tasks.delivery.diff import classify, of_kind
from tests.cases import built_report


def test_a_report_never_sent_is_new() -> None:
    (item,) = classify([built_report("AAA")], {})
    assert (item.change, item.previous_fingerprint) == (Change.NEW, None)


def test_a_report_sent_as_it_is_now_is_unchanged() -> None:
    built = built_report("AAA")
    (item,) = classify([built], {"AAA": built.fingerprint})
    assert item.change is Change.UNCHANGED


def test_a_report_that_differs_from_what_was_sent_is_changed() -> None:
    before, after = built_report("AAA"), built_report("AAA", total=3000)
    (item,) = classify([after], {"AAA": before.fingerprint})
    assert (item.change, item.previous_fingerprint) == (Change.CHANGED, before.fingerprint)


def test_an_order_the_php_module_already_reported_is_not_new() -> None:
    built = replace(built_report("AAA"), reported_by_module=True)
    (item,) = classify([built], {})
    assert item.change is Change.UNCHANGED


def test_of_kind_keeps_one_verdict() -> None:
    items = classify([built_report("NEW1"), built_report("OLD1")], {"OLD1": built_report("OLD1").fingerprint})
    assert [i.built.order_ref_1 for i in of_kind(items, Change.NEW)] == ["NEW1"]

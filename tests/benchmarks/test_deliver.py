from pathlib import Path

from benchmarks.deliver import report_digest
from tasks.delivery.dry_run import add_to_dry_run_file, finish_dry_run_file, start_dry_run_file
from tests.cases import built_report


def dry_run_file(path: Path, uname: str, version: str = "8.0.0") -> str:
    """A dry run's file of one order, with the platform block given; its path."""
    start_dry_run_file(path, "demo_merchant")
    add_to_dry_run_file(path, [built_report("R1")])
    platform = {"name": "PrestaShop", "version": version, "uname": uname, "db_name": "shop"}
    finish_dry_run_file(path, None, platform)  # type: ignore[arg-type]
    return str(path)


def test_report_digest_is_the_same_whatever_the_machines_kernel(tmp_path: Path) -> None:
    one = dry_run_file(tmp_path / "one.json", "Linux-6.18.44-fc-v1252-x86_64")
    other = dry_run_file(tmp_path / "other.json", "Linux-6.18.44-fc-v1272-x86_64")
    assert Path(one).read_bytes() != Path(other).read_bytes()
    assert report_digest(one) == report_digest(other)


def test_report_digest_still_tells_another_platform_block(tmp_path: Path) -> None:
    one = dry_run_file(tmp_path / "one.json", "Linux", version="8.0.0")
    other = dry_run_file(tmp_path / "other.json", "Linux", version="9.1.0")
    assert report_digest(one) != report_digest(other)


def test_report_digest_of_a_real_run_is_none() -> None:
    assert report_digest(None) is None

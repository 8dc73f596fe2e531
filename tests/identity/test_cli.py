"""`medsign staff ...` and `medsign sms outbox` against an initialised data directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner

from medsign.cli.main import main
from tests.identity.support import make_national_id


def invoke(installation: tuple[Any, str], *args: str) -> Any:
    runtime = installation[0]
    env = {
        "MEDSIGN_DATABASE_URL": runtime.settings.resolved_database_url,
        "MEDSIGN_LOG_LEVEL": "ERROR",
    }
    return CliRunner().invoke(
        main, [*args, "--data-dir", str(runtime.settings.data_dir)], env=env, catch_exceptions=False
    )


def test_import_list_state_outbox_and_unlock(installation: tuple[Any, str], tmp_path: Path) -> None:
    national_id = make_national_id("19920202")
    source = tmp_path / "staff.csv"
    source.write_text(
        "employee_no,name,national_id,phone,department\n"
        f"C001,刘医生,{national_id},13512340001,眼科\n"
        "C002,,,,\n",
        encoding="utf-8-sig",
    )
    result = invoke(installation, "staff", "import", str(source))
    assert result.exit_code == 0, result.output
    assert "created=1" in result.output and "row 2: name [invalid-input]" in result.output
    listed = invoke(installation, "staff", "list")
    assert "C001" in listed.output and "135****0001" in listed.output
    assert national_id not in listed.output and "13512340001" not in listed.output
    shown = invoke(installation, "staff", "show", "C001")
    staff_id = shown.output.split("\t")[1]
    runtime = installation[0]
    runtime.codes.issue_code(staff_id, "intent", "chl_cli")
    outbox = invoke(installation, "sms", "outbox", "--phone-last4", "0001")
    assert "135****0001" in outbox.output and "验证码" in outbox.output
    assert invoke(installation, "sms", "outbox", "--phone-last4", "12").exit_code == 2
    frozen = invoke(installation, "staff", "set-state", "C001", "freeze")
    assert "\tfrozen\t" in frozen.output
    again = invoke(installation, "staff", "set-state", "C001", "freeze")
    assert again.exit_code == 2 and "[staff-state]" in again.output
    unlocked = invoke(installation, "staff", "unlock-pin", staff_id)
    assert unlocked.exit_code == 0 and "unlocked" in unlocked.output
    missing = invoke(installation, "staff", "show", "NOPE")
    assert missing.exit_code == 2 and "[not-found]" in missing.output

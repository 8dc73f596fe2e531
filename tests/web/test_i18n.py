"""Every text the phone pages ask for exists in both languages."""

from __future__ import annotations

import re
from pathlib import Path

import medsign.web
from medsign.intake.requests import CANCELLED, EXPIRED, PENDING, REJECTED, SIGNED, VOIDED
from medsign.web.i18n import MESSAGES, catalogue, translator

WEB = Path(medsign.web.__file__).parent


def test_every_key_used_by_templates_and_script_exists() -> None:
    used: set[str] = set()
    for template in (WEB / "templates").rglob("*.html"):
        used |= set(re.findall(r"""\bt\(["']([a-z_.-]+)["']""", template.read_text()))
        used |= set(re.findall(r"""message_key=["']([a-z_.-]+)["']""", template.read_text()))
    for script in (WEB / "static").glob("*.js"):
        used |= set(re.findall(r"""\bmsg\(["']([a-z_.-]+)["']""", script.read_text()))
    for page in (WEB / "phone.py", WEB / "verify.py"):
        used |= set(re.findall(r"""message_key=["']([a-z_.-]+)["']""", page.read_text()))
    assert used, "the patterns found nothing: the test would pass vacuously"
    dynamic = {k for k in used if k.endswith(".")}  # prefixes completed at run time
    assert sorted(used - dynamic - set(MESSAGES)) == []
    # Keys built at run time: every request state has a label.
    for state in (PENDING, SIGNED, REJECTED, CANCELLED, EXPIRED, VOIDED):
        assert f"state.{state}" in MESSAGES


def test_both_languages_are_filled_and_placeholders_agree() -> None:
    for key, (zh, en) in MESSAGES.items():
        assert zh and en, key
        assert set(re.findall(r"\{(\w+)\}", zh)) == set(re.findall(r"\{(\w+)\}", en)), key


def test_translator_and_catalogue() -> None:
    assert translator("en")("home.sign_selected", n=3) == "Sign selected (3)"
    assert translator("zh-CN")("home.sign_selected", n=3) == "签署所选（3）"
    assert translator("fr")("nav.pending") == "待签"  # unknown language: Chinese
    assert translator("en")("no.such.key") == "no.such.key"  # a gap shows, never crashes
    assert set(catalogue("en", ("error.",))) == {k for k in MESSAGES if k.startswith("error.")}

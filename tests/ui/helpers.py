"""Helpers shared by the browser tests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

# What a no-code user must never be told to type.
CLI_TEXT = ("nocodetune ", "--set", "pip install", "huggingface-cli")


def assert_no_cli_text(page: Any) -> None:
    """No text the page shows (body text, tooltips, placeholders) sends the user to a command line."""
    shown = page.inner_text("body") + "\n" + "\n".join(page.eval_on_selector_all("[title], [placeholder]", "els => els.map(e => (e.title || '') + ' ' + (e.placeholder || ''))"))
    found = [t for t in CLI_TEXT if t in shown]
    assert not found, f"the page shows command-line text {found}: {shown[max(0, shown.find(found[0]) - 200):shown.find(found[0]) + 200]!r}"


def upload_csv(url: str, name: str, header: str, rows: list[str]) -> None:
    body = header + "\n" + "\n".join(rows) + "\n"
    resp = httpx.post(f"{url}/api/files", data={"name": name}, files={"file": (f"{name}.csv", body.encode(), "text/csv")}, timeout=60)
    assert resp.status_code in (200, 201), resp.text


def review_rows(n: int) -> list[str]:
    words = [("great product, works well", "positive"), ("terrible, broke after a day", "negative"), ("I love it", "positive"), ("waste of money", "negative")]
    return [f"\"{words[i % 4][0]} #{i}\",{words[i % 4][1]}" for i in range(n)]


def axe_path() -> Path:
    return Path(__file__).resolve().parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"


def axe_violations(page: Any) -> list[dict]:
    """Serious and critical axe-core findings on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(axe_path()))
    result = page.evaluate("async () => (await axe.run(document, { resultTypes: ['violations'] })).violations")
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result
        if v["impact"] in ("serious", "critical")
    ]


def words_broken_mid_word(page: Any, selector: str) -> bool:
    """Whether the elements may break a word in the middle (overflow-wrap: anywhere / word-break: break-all)."""
    styles = page.eval_on_selector_all(selector, "els => els.map(e => { const s = getComputedStyle(e); return s.overflowWrap + ' ' + s.wordBreak; })")
    return any(re.search(r"anywhere|break-all", s) for s in styles)

"""memfit report: one self-contained HTML page; it renders in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from memfit.cli import main

MODEL = "zoo:ds-cnn-int8"


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> tuple:
    folder = tmp_path_factory.mktemp("report")
    plan, out = folder / "plan.json", folder / "report.html"
    argv = ["optimize", MODEL, "--max-mac-overhead", "0.2", "-o", str(plan)]
    assert main(argv) == 0
    assert main(["report", MODEL, "--plan", str(plan), "-o", str(out)]) == 0
    return out, json.loads(plan.read_text())


def test_the_page_is_self_contained(page):
    out, _ = page
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>")
    # Nothing is loaded from elsewhere: no scripts, links, images or URLs to fetch.
    assert not re.search(r"<(script|link|img|iframe)\b", text)
    assert not re.search(r"(src|href)=\"(https?:)?//", text)
    for section in ("memory", "layout", "front"):
        assert re.search(rf'<div class="figure" id="{section}"><svg', text), section


def test_the_page_lists_every_decision(page):
    out, plan = page
    text = out.read_text()
    for record in plan["rewrites"]:
        assert record["ops"][0] in text
    assert f"{plan['arena_bytes']:,}" in text
    assert "TFLite Micro&#x27;s method" in text or "TFLite Micro's method" in text


def test_bad_output_name_exits_2(tmp_path, capsys):
    assert main(["report", MODEL, "-o", str(tmp_path / "report.pdf")]) == 2
    assert "expected an .html file" in capsys.readouterr().err


def _browser() -> str | None:
    return next((b for b in ("chromium", "chromium-browser") if shutil.which(b)), None)


@pytest.mark.skipif(_browser() is None, reason="no Chromium installed (Debian package chromium)")
def test_renders_in_headless_chromium(page, tmp_path):
    out, _ = page
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    dom = subprocess.run(
        [_browser(), *flags, "--dump-dom", out.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "memfit report" in dom and dom.count("<svg") >= 3
    shot = tmp_path / "shot.png"
    subprocess.run(
        [_browser(), *flags, f"--screenshot={shot}", "--window-size=1200,2400", out.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 20_000  # charts and tables drew something

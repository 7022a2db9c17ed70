"""docs/screenshot.py, the README's image: its Chromium command line, its refusal of a report
that loads from the network, and (where Chromium is installed) a real first screen."""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("docs_screenshot", ROOT / "docs" / "screenshot.py")
screenshot = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(screenshot)


def test_the_command_takes_the_first_screen_at_1280_by_900_after_plotly_draws(tmp_path):
    report = tmp_path / "a report.html"
    command = screenshot.chromium_command("/usr/bin/chromium", report, tmp_path / "out.png")
    assert command[0] == "/usr/bin/chromium" and "--headless" in command
    assert "--window-size=1280,900" in command and "--hide-scrollbars" in command
    assert f"--virtual-time-budget={screenshot.WAIT_MS}" in command
    assert f"--screenshot={tmp_path / 'out.png'}" in command
    assert command[-1] == report.as_uri() and "%20" in command[-1]  # a file URL, quoted


def test_a_report_that_loads_plotly_from_a_cdn_is_refused(tmp_path):
    report = tmp_path / "cdn.html"
    report.write_text('<html><head><script src="https://cdn.plot.ly/plotly-2.js"></script>')
    assert screenshot.remote_assets(report)
    with pytest.raises(RuntimeError, match="network"):
        screenshot.take(report, tmp_path / "out.png")
    inline = tmp_path / "inline.html"
    inline.write_text('<script>var url = "https://cdn.plot.ly/un/";</script>')  # in plotly.js
    assert screenshot.remote_assets(inline) == []


def test_a_page_becomes_a_small_png_of_1280_by_900(tmp_path):
    if screenshot.browser() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium package")
        pytest.skip("chromium is not installed")
    report = tmp_path / "report.html"
    report.write_text("<html><body><h1>Headline</h1>" + "<p>text</p>" * 200 + "</body></html>")
    start = time.monotonic()
    png = screenshot.take(report, tmp_path / "shot" / "first.png", wait_ms=500)
    assert time.monotonic() - start < 30
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(png.read_bytes()[16:20]), int.from_bytes(png.read_bytes()[20:24])
    assert (width, height) == (1280, 900)
    assert png.stat().st_size < 300_000

"""The README's image: the first screen of a report, as a reader sees it at 1280x900, taken by
headless Chromium and written as a small PNG.

    python docs/screenshot.py reports/quickstart.html  # writes docs/assets/report-first-screen.png
    python docs/screenshot.py REPORT.html --out other.png --wait 20000
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "assets" / "report-first-screen.png"
WIDTH, HEIGHT = 1280, 900  # the screen the reader used
WAIT_MS = 15_000  # virtual time for plotly to draw every figure (it does in ~2 s)
COLORS = 64  # the palette the PNG is reduced to: a report is flat colours, and it stays small
# a script or stylesheet fetched from the network: offline, the screenshot would lack it
REMOTE = re.compile(r"<(?:script|link)\b[^>]*\b(?:src|href)=[\"']?(?:https?:)?//", re.I)


def browser() -> str | None:
    """Chromium's path, or None where it is not installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def remote_assets(report: Path) -> list[str]:
    """The tags of the report that load from the network (a report should have none)."""
    return [m.group(0) for m in REMOTE.finditer(report.read_text(errors="replace"))]


def chromium_command(chromium: str, report: Path, png: Path, wait_ms: int = WAIT_MS) -> list[str]:
    """The command line that makes headless Chromium write the report's first screen."""
    return [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        "--disable-background-networking", f"--window-size={WIDTH},{HEIGHT}",
        f"--virtual-time-budget={wait_ms}", f"--screenshot={png}", report.resolve().as_uri(),
    ]  # fmt: skip


def shrink(png: Path, colors: int = COLORS) -> None:
    """Rewrite the PNG with a palette of `colors` (about a fifth of its size; PIL if present)."""
    try:
        from PIL import Image
    except ImportError:  # the full-colour PNG stays
        return
    with Image.open(png) as image:
        small = image.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    small.save(png, optimize=True)


def take(report: Path, out: Path, wait_ms: int = WAIT_MS) -> Path:
    """Write the report's first screen to `out`; raises where the report loads from the
    network (checked first: no browser is needed to refuse it), or Chromium is missing or fails."""
    remote = remote_assets(report)
    if remote:
        raise RuntimeError(f"{report} loads from the network, offline it lacks: {remote[0]}")
    chromium = browser()
    if chromium is None:
        raise RuntimeError("chromium is not installed (Debian: apt-get install chromium)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:  # Chromium's profile, not the user's
        command = chromium_command(chromium, report, out, wait_ms)
        command.insert(1, f"--user-data-dir={tmp}")
        subprocess.run(command, capture_output=True, timeout=120, check=True)
    if not out.exists():
        raise RuntimeError(f"chromium wrote no screenshot to {out}")
    shrink(out)
    return out


def main(argv: list[str] | None = None) -> int:
    """The command line: a report in, a PNG out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="the report's HTML (reports/NAME.html)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the PNG to write")
    parser.add_argument("--wait", type=int, default=WAIT_MS, help="ms plotly may take to draw")
    args = parser.parse_args(argv)
    try:
        png = take(args.report, args.out, args.wait)
    except (RuntimeError, subprocess.SubprocessError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{png} ({png.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

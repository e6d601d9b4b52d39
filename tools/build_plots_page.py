"""Write .dvc/plots_offline.html: the page template of `dvc plots show` with vega inlined.

DVC's own page loads vega, vega-lite and vega-embed from a CDN, so it is blank offline. This
template (set as ``plots.html_template`` in .dvc/config) carries the same versions dvc-render
asks the CDN for, inlined with their licenses, and no ``{scripts}`` placeholder, so DVC adds
no CDN tag. Run it again (``.venv/bin/python tools/build_plots_page.py``) only to change the
versions: it fetches the packages with ``npm pack`` and checks their sha256 before use.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / ".dvc" / "plots_offline.html"
# (package, version, sha256 of the npm tarball, the browser build inside it)
PACKAGES = (
    (
        "vega",
        "5.20.2",
        "d77deab01d6104b1239228720721f93003e60797d2faced7ffdd759fa70f989d",
        "build/vega.min.js",
    ),
    (
        "vega-lite",
        "5.2.0",
        "f64ca4745f043447ac86b67dc9e9592ec2b85ac8b8dafc35faf970f142463e4b",
        "build/vega-lite.min.js",
    ),
    (
        "vega-embed",
        "6.18.2",
        "93aeee312e92077b0252ef026c0fe0ec8fa430c19825aeada6cd3a6804e68e1b",
        "build/vega-embed.min.js",
    ),
)
# dvc-render's placeholders: the page must keep {plot_divs} and {refresh_tag} and must not have
# {scripts} (DVC would put its CDN tags there).
HEAD = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <!-- Made by tools/build_plots_page.py: %s inlined, so this page needs no network. -->
"""
TAIL = """    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""
PLACEHOLDERS = ("{scripts}", "{plot_divs}", "{refresh_tag}")


def fetch(name: str, version: str, sha256: str, folder: Path) -> Path:
    subprocess.run(
        ["npm", "pack", "--silent", f"{name}@{version}", "--pack-destination", str(folder)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    tarball = folder / f"{name}-{version}.tgz"
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    if digest != sha256:
        sys.exit(f"{tarball.name}: sha256 {digest}, expected {sha256}; not used")
    return tarball


def member(tarball: Path, path: str) -> str:
    with tarfile.open(tarball) as archive:
        handle = archive.extractfile(f"package/{path}")
        assert handle is not None, f"{tarball.name} has no {path}"
        return handle.read().decode("utf-8")


def script(name: str, version: str, tarball: Path, build: str) -> str:
    code = member(tarball, build)
    for forbidden in ("</script", *PLACEHOLDERS):
        if forbidden in code:
            sys.exit(f"{name} {build} contains {forbidden!r}: it cannot be inlined as is")
    license_text = member(tarball, "LICENSE").strip().replace("--", "- -")
    return (
        f"    <!-- {name} {version} ({build}), its license:\n{license_text}\n    -->\n"
        f"    <script>{code.strip()}</script>\n"
    )


def main() -> int:
    names = ", ".join(f"{name} {version}" for name, version, _, _ in PACKAGES)
    with tempfile.TemporaryDirectory() as tmp:
        parts = [HEAD % names]
        for name, version, sha256, build in PACKAGES:
            tarball = fetch(name, version, sha256, Path(tmp))
            parts.append(script(name, version, tarball, build))
    parts.append(TAIL)
    OUT.write_text("".join(parts), encoding="utf-8")
    print(f"{OUT.relative_to(ROOT)}: {OUT.stat().st_size} bytes ({names})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``make audit``: pip-audit over the pinned requirements, failing only on what can be fixed.

Exit 1 when a pinned package has a known vulnerability with a fixed version (upgrade it);
a vulnerability without a fix is reported, not failed on. pip-audit needs a vulnerability
database from the internet (PyPI's per-version JSON API, or OSV): a package it could not look
up is listed as NOT AUDITED, and when none could be, the run says so plainly and exits 0, unless
MLREPO_AUDIT_STRICT=1 asks for exit 2 then (no silent "no known vulnerabilities").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

EXIT_FIXABLE = 1
EXIT_NOT_AUDITED = 2


def main(argv: list[str]) -> int:
    requirements = argv[0] if argv else "requirements.txt"
    pip_audit = Path(sys.executable).with_name("pip-audit")
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "audit.json"
        # --no-deps --disable-pip: the file is fully pinned (pip-compile), so no resolver run.
        done = subprocess.run(
            [str(pip_audit), "-r", requirements, "--no-deps", "--disable-pip",
             "--progress-spinner", "off", "--format", "json", "--output", str(report)],
            capture_output=True, text=True, check=False, timeout=900,
        )  # fmt: skip
        if not report.exists():
            print(done.stdout + done.stderr, file=sys.stderr)
            print(f"audit: pip-audit failed (exit {done.returncode}) before writing a report")
            return done.returncode or 1
        result = json.loads(report.read_text(encoding="utf-8"))
    deps = result.get("dependencies", [])
    skipped = [d for d in deps if d.get("skip_reason")]
    audited = [d for d in deps if not d.get("skip_reason")]
    fixable, unfixed = [], []
    for dep in audited:
        for vuln in dep.get("vulns") or []:
            aliases = ", ".join(vuln.get("aliases") or [])
            line = f"{dep['name']}=={dep['version']}: {vuln['id']}" + (
                f" ({aliases})" if aliases else ""
            )
            if vuln.get("fix_versions"):
                fixable.append(f"{line}; fixed in {', '.join(vuln['fix_versions'])}")
            else:
                unfixed.append(f"{line}; no fixed version yet")
    print(f"audit: {len(audited)} of {len(deps)} pinned packages audited by pip-audit")
    for line in unfixed:
        print(f"  known, no fix available (not failing): {line}")
    for line in fixable:
        print(f"  VULNERABLE, fix available: {line}")
    if skipped:
        names = ", ".join(f"{d['name']}" for d in skipped[:15])
        more = f" and {len(skipped) - 15} more" if len(skipped) > 15 else ""
        print(f"  NOT AUDITED ({len(skipped)}): {names}{more}")
        print(f"  pip-audit's reason, e.g.: {skipped[0]['skip_reason']}")
    if fixable:
        print(f"audit: FAILED: {len(fixable)} vulnerability(ies) with a fix; upgrade the pins in "
              "requirements.in and run `make requirements`")  # fmt: skip
        return EXIT_FIXABLE
    if deps and not audited:
        print(
            "audit: NOT DONE: no package could be looked up. pip-audit needs a vulnerability "
            "database from the internet (PyPI's per-version JSON API or OSV), which this "
            "machine cannot reach. Nothing is known to be vulnerable, but nothing was checked."
        )
        return EXIT_NOT_AUDITED if os.environ.get("MLREPO_AUDIT_STRICT") == "1" else 0
    print("audit: ok: no known vulnerability with a fix available")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

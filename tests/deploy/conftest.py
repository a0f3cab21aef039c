"""Make skipped deployment checks impossible to overlook.

A skipped check here means a tool was missing and part of the deployment was
not verified. pytest's `-q` summary only counts skips, so this prints every
skip reason in a banner at the end of the run.
"""

from __future__ import annotations


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: ARG001
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if "tests/deploy" in str(getattr(report, "fspath", "")) or "deploy" in report.nodeid
    ]
    if not skipped:
        return
    terminalreporter.write_sep("!", "DEPLOYMENT CHECKS SKIPPED: NOT VERIFIED", red=True, bold=True)
    for report in skipped:
        reason = ""
        if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
            reason = report.longrepr[2]
        elif report.longrepr is not None:
            reason = str(report.longrepr)
        terminalreporter.write_line(f"{report.nodeid}: {reason}", yellow=True)
    terminalreporter.write_line(
        "Install the test tools with `make venv` (tests/requirements.txt), or set "
        "AGYN_TEST_REQUIRE_ALL=1 to turn these skips into failures.",
        yellow=True,
    )

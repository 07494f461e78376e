"""The benchmark harness, run small so it cannot rot: N = 500, every part, no timings asserted."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("knotd", "nginx", "prometheus-blackbox-exporter", "wrk", "dnsperf")


def test_bench_runs_end_to_end_at_n_500(tmp_path: Path) -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None and os.geteuid() != 0]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, so missing bench tools are an error: {missing}")
        pytest.skip(f"bench tools missing and not root to install them: {missing}")
    output = tmp_path / "smoke.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--n",
            "500",
            "--concurrency",
            "50",
            "--raw-seconds",
            "1",
            "--output",
            str(output),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(output.read_text())
    rechecker = figures["rechecker"]
    assert (rechecker["sites"], rechecker["checked"], rechecker["up"]) == (500, 500, 500)
    assert rechecker["domains_per_s"] > 0 and rechecker["peak_rss_mib_max"] > 0
    assert figures["blackbox"] and figures["raw"]
    assert figures["ratio_rechecker_to_blackbox_http"] > 0
    assert "ratio Rechecker / blackbox HTTP" in done.stdout

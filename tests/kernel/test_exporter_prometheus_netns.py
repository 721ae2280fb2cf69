"""End to end on the real engine (issue 18): the real ``prometheus`` server scrapes
``ctguard exporter``, both on 127.0.0.1 of a namespace the test made, and evaluates the
shipped alert rules, unmodified, every second. Its HTTP API shows that a table filled until
packets drop (design §10's recipe) fires CtguardConntrackPacketsDropped and leaves the fill
alerts pending (their ``for`` is minutes), and that restoring a changed timeout takes the
drift series from 1 to 0.

The exporter runs inside the namespace (``ip netns exec``), so it reads that namespace as
its live host, and inside a private mount namespace where a directory of the test's is
bind-mounted over /etc/sysctl.d: the sysctl file it compares with is the test's, and the
machine's /etc is never written. Every wait is a bounded poll.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from helpers import ctguard_bin
from netns_helpers import ASSURED_TCP, SEND_UDP, Netns, fill, stat_totals

pytestmark = pytest.mark.kernel

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "ctguard-alerts.yml"
EXPORTER_PORT = 9659  # the exporter's default --listen, 127.0.0.1:9659
PROMETHEUS_PORT = 9090
KEY = "net.netfilter.nf_conntrack_tcp_timeout_established"
CONFIGURED = 600  # what the test's sysctl file sets
CHANGED = 1200  # the running value that drifted from it
PHASE = 60.0  # seconds any one wait may take
POLL = 0.5

# Once the table is full, a new connection (every scrape: the exporter's server speaks
# HTTP/1.0, one connection per request) would be dropped like any new flow. The scrape and
# API ports are left untracked, before conntrack's own hooks (priority raw < conntrack).
NOTRACK_RULESET = f"""table inet ctguard_e2e_notrack {{
    chain pre {{
        type filter hook prerouting priority raw; policy accept;
        tcp dport {{ {EXPORTER_PORT}, {PROMETHEUS_PORT} }} notrack
        tcp sport {{ {EXPORTER_PORT}, {PROMETHEUS_PORT} }} notrack
    }}
    chain out {{
        type filter hook output priority raw; policy accept;
        tcp dport {{ {EXPORTER_PORT}, {PROMETHEUS_PORT} }} notrack
        tcp sport {{ {EXPORTER_PORT}, {PROMETHEUS_PORT} }} notrack
    }}
}}
"""

PROMETHEUS_CONFIG = """global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - {rules}
scrape_configs:
  - job_name: ctguard
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""

# Run by `unshare --mount --propagation private`: bind-mounts DIR over /etc/sysctl.d in that
# private mount namespace only, then becomes `ip netns exec NS ARGV...` (which keeps it).
LAUNCH = """
import os, subprocess, sys
conf_dir, ns, *argv = sys.argv[1:]
subprocess.run(["mount", "--bind", conf_dir, "/etc/sysctl.d"], check=True, timeout=30)
os.execvp("ip", ["ip", "netns", "exec", ns, *argv])
"""

# An API call from inside the namespace, where Prometheus listens: prints the JSON body.
GET = """
import sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with opener.open(sys.argv[1], timeout=5) as reply:
    print(reply.read().decode())
"""


def why_no_prometheus() -> str | None:
    for tool in ("prometheus", "unshare", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install prometheus util-linux)"
    return None


@contextmanager
def server(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``argv`` running while inside; stopped (SIGTERM, then SIGKILL) on the way out."""
    with log.open("wb") as out:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        try:
            yield child
        finally:
            child.terminate()
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=15)


def api(netns: Netns, path: str, **params: str) -> Any:
    """``/api/v1/PATH``'s data, or None while Prometheus does not answer."""
    url = f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    done = subprocess.run(
        ["ip", "netns", "exec", netns.name, "python3", "-c", GET, url],
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        return None
    body = json.loads(done.stdout)
    assert body["status"] == "success", body
    return body["data"]


def wait_for(what: str, probe: Callable[[], tuple[bool, Any]], logs: list[Path]) -> Any:
    """Poll ``probe`` (-> done, what it saw) for at most PHASE seconds; what it saw last."""
    deadline = time.monotonic() + PHASE
    seen: Any = None
    for _ in range(int(PHASE / POLL) + 1):
        done, seen = probe()
        if done:
            return seen
        if time.monotonic() > deadline:
            break
        time.sleep(POLL)
    tails = "\n".join(f"--- {log.name}:\n{log.read_text()[-2000:]}" for log in logs)
    pytest.fail(f"{what}: not within {PHASE:g} s; last seen: {seen!r}\n{tails}")


def query(netns: Netns, expr: str) -> list[dict[str, Any]] | None:
    data = api(netns, "query", query=expr)
    return None if data is None else list(data["result"])


def value_of(netns: Netns, expr: str) -> tuple[bool, str | None]:
    """(one series, its value) of an instant query."""
    result = query(netns, expr)
    if not result or len(result) != 1:
        return False, None
    return True, result[0]["value"][1]


def alerts(netns: Netns) -> dict[str, dict[str, Any]]:
    data = api(netns, "alerts")
    return {} if data is None else {a["labels"]["alertname"]: a for a in data["alerts"]}


def rule(netns: Netns, name: str) -> dict[str, Any] | None:
    data = api(netns, "rules", type="alert")
    if data is None:
        return None
    found = [r for g in data["groups"] for r in g["rules"] if r["name"] == name]
    assert len(found) == 1, found
    return dict(found[0])


def epoch(rfc3339: str) -> float:
    """Prometheus' nanosecond RFC 3339 time as seconds (fromisoformat takes microseconds)."""
    return datetime.fromisoformat(
        re.sub(r"(\.\d{6})\d*", r"\1", rfc3339).replace("Z", "+00:00")
    ).timestamp()


@pytest.fixture
def monitored(netns: Netns, tmp_path: Path) -> Iterator[list[Path]]:
    """The exporter and Prometheus serving inside ``netns`` while the test runs; their logs.

    The test's sysctl file configures KEY = CONFIGURED; the namespace runs CHANGED."""
    why = why_no_prometheus()
    if why:
        pytest.skip(why)
    sysctl_d = tmp_path / "sysctl.d"
    sysctl_d.mkdir()
    (sysctl_d / "99-ctguard-e2e.conf").write_text(f"{KEY} = {CONFIGURED}\n")
    netns.run("nft", "-f", "-", input=NOTRACK_RULESET)
    netns.set_sysctl(KEY, CHANGED)  # per namespace: the initial namespace's stays as it is
    config = tmp_path / "prometheus.yml"
    config.write_text(PROMETHEUS_CONFIG.format(rules=json.dumps(str(RULES)), port=EXPORTER_PORT))
    exporter = ["unshare", "--mount", "--propagation", "private", "python3", "-c", LAUNCH,
                str(sysctl_d), netns.name,
                ctguard_bin(), "exporter", "--doctor-interval", "86400"]  # fmt: skip
    prometheus = ["ip", "netns", "exec", netns.name, "prometheus", f"--config.file={config}",
                  f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                  f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}"]  # fmt: skip
    logs = [tmp_path / "exporter.log", tmp_path / "prometheus.log"]
    with server(exporter, logs[0]), server(prometheus, logs[1]):
        yield logs
    assert "99-ctguard-e2e.conf" not in os.listdir("/etc/sysctl.d")  # the bind mount stayed put


def test_prometheus_fires_the_drop_alert_and_sees_drift_restored(
    netns: Netns, tmp_path: Path, monitored: list[Path]
) -> None:
    logs = monitored
    dropped, reverted = "CtguardConntrackPacketsDropped", "CtguardConntrackSettingReverted"
    drift = f'ctguard_conntrack_setting_drift{{key="{KEY}"}}'

    # before the fill: drift seen, and the drop rule evaluated over scraped counters
    assert wait_for("drift 1", lambda: value_of(netns, drift), logs) == "1"
    wait_for("3 scrapes", lambda: value_of(netns, "count_over_time(up[5m]) >= 3"), logs)
    after = time.time()
    before = wait_for(
        "an evaluation of the drop rule after 3 scrapes",
        lambda: ((r := rule(netns, dropped)) is not None and epoch(r["lastEvaluation"]) > after, r),
        logs,
    )
    assert (before["health"], before["state"], before["alerts"]) == ("ok", "inactive", [])
    assert value_of(netns, "increase(ctguard_conntrack_stat_drop_total[5m])") == (True, "0")
    active = alerts(netns)
    assert dropped not in active
    assert (active[reverted]["state"], active[reverted]["labels"]["key"]) == ("pending", KEY)

    entries = fill(netns, tmp_path, ASSURED_TCP)
    assert int(netns.run("python3", "-c", SEND_UDP, "5").stdout) == 5  # all refused
    drops = stat_totals(netns)["drop"]
    assert drops >= 5

    fill_alerts = ("CtguardConntrackTableNearlyFull", "CtguardConntrackTableFull")
    seen = wait_for(
        "drop alert firing, fill alerts pending",
        lambda: (
            (a := alerts(netns)).get(dropped, {}).get("state") == "firing"
            and all(name in a for name in fill_alerts),
            a,
        ),
        logs,
    )
    assert {k: seen[dropped]["labels"][k] for k in ("ctguard_id", "severity", "job")} == {
        "ctguard_id": "CT102", "severity": "critical", "job": "ctguard",
    }  # fmt: skip
    for name in fill_alerts:  # `for: 5m` and `for: 2m`: pending all through the test
        assert seen[name]["state"] == "pending", seen[name]
        assert seen[name]["labels"]["ctguard_id"] == "CT101"
    assert value_of(netns, "ctguard_conntrack_entries") == (True, str(entries))
    assert value_of(netns, "ctguard_conntrack_stat_drop_total") == (True, str(drops))

    # restore the configured value: the next scrape shows no drift, the drift alert goes
    assert value_of(netns, drift) == (True, "1")
    netns.set_sysctl(KEY, CONFIGURED)
    restored = wait_for("drift 0", lambda: ((v := value_of(netns, drift)[1]) == "0", v), logs)
    assert restored == "0"
    wait_for(f"{reverted} gone", lambda: (reverted not in (a := alerts(netns)), a), logs)

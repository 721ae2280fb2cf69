"""``report --format html``: one self-contained page, to mail or open from a share.

No network at all: the CSS and the script are inline, the fonts are the reader's own, and
a Content-Security-Policy forbids any fetch, so the page opens the same offline. Every
word from an input (hostnames, evidence, paths) is escaped: a hostile hostname shows as
text. The fleet numbers come first, then each finding across the fleet, then one table of
every host and finding (a host with nothing found has one "ok" row): click a header to
sort it, type in the box or pick a severity to filter. On a phone (390 px) the table keeps
its four main columns and wraps; nothing scrolls sideways.
"""

from __future__ import annotations

from html import escape

from ctguard.catalogue import fleet_answers
from ctguard.findings import Severity
from ctguard.output.report_words import headline, host_name, hosts, mix
from ctguard.usecases.report import FleetReport, HostReading

# nothing is fetched, whatever a page of ours would hold: the policy forbids every source
_CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
_RANK = {"unknown": 0, "ok": 1, "info": 2, "warning": 3, "critical": 4}

_CSS = """
:root { color-scheme: light dark; --crit: #c62828; --warn: #b26a00; --info: #1565c0;
  --ok: #2e7d32; --unk: #6a1b9a; --line: #8884; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
  padding: 12px; max-width: 1200px; margin-inline: auto; overflow-wrap: anywhere; }
h1 { font-size: 1.3em; margin: 0 0 4px; } h2 { font-size: 1.1em; margin: 20px 0 6px; }
.sub { color: #888; margin: 0 0 12px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 8px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 8px 10px; }
.card .n { font-size: 1.8em; font-weight: 700; display: block; }
.card.hot .n { color: var(--crit); }
ul.findings { padding-left: 1.1em; margin: 0; } ul.findings li { margin: 4px 0; }
.sev { font-weight: 700; text-transform: uppercase; font-size: .85em; }
.critical { color: var(--crit); } .warning { color: var(--warn); } .info { color: var(--info); }
.ok { color: var(--ok); } .unknown { color: var(--unk); }
.controls { display: flex; flex-wrap: wrap; gap: 8px; margin: 8px 0; align-items: center; }
.controls input { flex: 1 1 180px; min-width: 0; font: inherit; padding: 6px 8px; }
.controls select { font: inherit; padding: 6px; }
table { width: 100%; border-collapse: collapse; table-layout: fixed; }
th, td { text-align: left; vertical-align: top; padding: 6px 4px;
  border-bottom: 1px solid var(--line); }
th { cursor: pointer; user-select: none; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; }
th[aria-sort=ascending]::after { content: " \\25B2"; }
th[aria-sort=descending]::after { content: " \\25BC"; }
col.c-host { width: 24%; } col.c-sev { width: 12%; } col.c-id { width: 9%; }
col.c-title { width: 33%; } col.c-time { width: 11%; } col.c-input { width: 11%; }
details summary { cursor: pointer; }
details ul { margin: 4px 0; padding-left: 1.1em; font-size: .9em; }
.mid { color: #888; font-size: .85em; }
.list { font-size: .9em; }
@media (max-width: 700px) {
  body { padding: 8px; font-size: 14px; }
  .wide { display: none; }
  col.c-host { width: 32%; } col.c-sev { width: 22%; } col.c-id { width: 16%; }
  col.c-title { width: 30%; }
}
"""

_JS = """
(function () {
  var table = document.getElementById('rows');
  var body = table.tBodies[0];
  var q = document.getElementById('q');
  var sev = document.getElementById('sev');
  var shown = document.getElementById('shown');
  function key(row, i) {
    var cell = row.cells[i];
    return cell.hasAttribute('data-sort') ? cell.getAttribute('data-sort') : cell.textContent;
  }
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
    th.addEventListener('click', function () {
      var dir = th.getAttribute('aria-sort') === 'ascending' ? -1 : 1;
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (other) {
        other.removeAttribute('aria-sort');
      });
      th.setAttribute('aria-sort', dir === 1 ? 'ascending' : 'descending');
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a, i), y = key(b, i);
        var nx = Number(x), ny = Number(y);
        var c = (x !== '' && y !== '' && !isNaN(nx) && !isNaN(ny)) ? nx - ny
          : x.localeCompare(y);
        return c * dir;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
  function filter() {
    var words = q.value.toLowerCase().split(/\\s+/).filter(Boolean);
    var level = sev.value, n = 0;
    Array.prototype.forEach.call(body.rows, function (row) {
      var text = row.textContent.toLowerCase();
      var ok = (!level || row.getAttribute('data-severity') === level) &&
        words.every(function (w) { return text.indexOf(w) >= 0; });
      row.hidden = !ok;
      if (ok) { n += 1; }
    });
    shown.textContent = n + ' of ' + body.rows.length + ' rows';
  }
  q.addEventListener('input', filter);
  sev.addEventListener('change', filter);
  filter();
})();
"""


NAMED = 50  # hosts named per finding; the table below has every one


def _names(readings: list[HostReading]) -> str:
    more = len(readings) - NAMED
    shown = ", ".join(host_name(h) for h in readings[:NAMED])
    return f"{shown}, and {more:,} more (filter the table)" if more > 0 else shown


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _host_cell(host: HostReading) -> str:
    short = f' <span class="mid">{_e(host.short_id)}</span>' if host.short_id else ""
    return f"{_e(host.label)}{short}"


def _row(host: HostReading, level: str, ident: str, title: str, evidence: tuple[str, ...]) -> str:
    detail = _e(title)
    if evidence:
        items = "".join(f"<li>{_e(line)}</li>" for line in evidence)
        detail = f"<details><summary>{_e(title)}</summary><ul>{items}</ul></details>"
    return (
        f'<tr data-severity="{level}">'
        f'<td data-sort="{_e(host.label)}">{_host_cell(host)}</td>'
        f'<td data-sort="{_RANK[level]}"><span class="sev {level}">{level}</span></td>'
        f"<td>{_e(ident)}</td>"
        f"<td>{detail}</td>"
        f'<td class="wide">{_e(host.created_utc or "")}</td>'
        f'<td class="wide">{_e(host.path)}</td>'
        "</tr>"
    )


def _rows(report: FleetReport) -> list[str]:
    rows = []
    for h in report.hosts:
        if not h.findings:
            level = h.state
            what = "every check skipped" if level == "unknown" else "nothing found"
            rows.append(_row(h, level, "", what, ()))
        for f in h.findings:
            rows.append(_row(h, f.severity.value, f.id, f.title, f.evidence))
    return rows


def render_report_html(report: FleetReport) -> str:
    cards = [
        f'<div class="card{" hot" if a.hosts else ""}" data-question="{_e(a.question.key)}">'
        f'<span class="n">{len(a.hosts):,}</span>{_e(a.question.label)}'
        f' <span class="mid">({_e(", ".join(a.question.ids))})</span></div>'
        for a in report.answers
    ]
    cards.append(
        f'<div class="card" data-question="hosts"><span class="n">{len(report.hosts):,}</span>'
        f"{'host' if len(report.hosts) == 1 else 'hosts'} counted</div>"
    )
    findings = []
    for s in report.findings:
        answers = set(fleet_answers(s.id, s.worst))
        marks = "".join(
            f" [{_e(a.question.label)}]" for a in report.answers if a.question.key in answers
        )
        mixed = f" ({_e(mix(s))})" if len({sev for _, sev in s.hosts}) > 1 else ""
        findings.append(
            f'<li><span class="sev {s.worst.value}">{s.worst.value}</span> '
            f"{_e(headline(s))}{mixed}{marks}"
            f'<div class="list">{_e(_names([h for h, _ in s.hosts]))}</div></li>'
        )
    counts = ", ".join(
        f"{report.hosts_at(s):,} {s.value}"
        for s in (Severity.CRITICAL, Severity.WARNING, Severity.INFO, Severity.OK)
    )
    if report.hosts_unknown:
        counts += f", {report.hosts_unknown:,} unknown"
    notes = []
    if report.duplicates:
        items = "".join(
            f"<li>{_e(host_name(d.reading))}: {_e(d.reading.path)}"
            f" ({_e(d.reading.created_utc or 'time unknown')}); counted:"
            f" {_e(d.kept.path)} ({_e(d.kept.created_utc or 'time unknown')})</li>"
            for d in report.duplicates
        )
        notes.append(
            f'<h2>Duplicates (older readings, not counted)</h2><ul id="duplicates">{items}</ul>'
        )
    if report.unreadable:
        items = "".join(f"<li>{_e(u.path)}: {_e(u.reason)}</li>" for u in report.unreadable)
        notes.append(f'<h2>Unreadable (not counted)</h2><ul id="unreadable">{items}</ul>')
    options = "".join(
        f'<option value="{v}">{v}</option>'
        for v in ("critical", "warning", "info", "ok", "unknown")
    )
    status = f'<span class="{report.status.lower()}">{report.status}</span>'
    summary = f"{hosts(len(report.hosts))} from {report.inputs:,} inputs: {counts}"
    spread = "".join(findings) or "<li>nothing found on any host</li>"
    body = f"""<h1>ctguard report: {status}</h1>
<p class="sub" id="summary">{_e(summary)}</p>
<div class="cards" id="fleet">{"".join(cards)}</div>
<h2>By finding (worst first)</h2>
<ul class="findings" id="by-finding">{spread}</ul>
<h2>By host</h2>
<div class="controls">
<input id="q" type="search" placeholder="filter: host, ID, words" aria-label="filter rows">
<select id="sev" aria-label="severity"><option value="">every severity</option>{options}</select>
<span id="shown" class="mid"></span>
</div>
<table id="rows">
<colgroup><col class="c-host"><col class="c-sev"><col class="c-id"><col class="c-title">
<col class="c-time wide"><col class="c-input wide"></colgroup>
<thead><tr><th>Host</th><th>Severity</th><th>ID</th><th>Finding</th>
<th class="wide">Read (UTC)</th><th class="wide">Input</th></tr></thead>
<tbody>
{chr(10).join(_rows(report))}
</tbody>
</table>
{"".join(notes)}"""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<title>ctguard report: {report.status}, {_e(hosts(len(report.hosts)))}</title>
<style>{_CSS}</style>
</head>
<body>
{body}
<script>{_JS}</script>
</body>
</html>
"""

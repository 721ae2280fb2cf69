"""``analyze --format csv``: ``breakdown,key,count`` rows of the JSON document."""

from __future__ import annotations

import csv
import io

from ctguard.output.analyze_json import analyze_document
from ctguard.output.analyze_text import row_key
from ctguard.usecases.analyze import AnalyzeReport


def render_analyze_csv(report: AnalyzeReport) -> str:
    """``breakdown,key,count`` rows; keys as in the text view (``tcp/443``)."""
    doc = analyze_document(report)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["breakdown", "key", "count"])
    writer.writerow(["total", "entries", doc["entries"]])
    writer.writerow(["total", "bad_lines", doc["bad_lines"]["count"]])
    for name, rows in doc["by"].items():
        if isinstance(rows, dict):
            for key, count in rows.items():
                writer.writerow([name, key, count])
        elif name == "timeout":
            for row in rows:
                state = "/".join(v for v in (row["protocol"], row["state"]) if v)
                for label, count in row["histogram"].items():
                    writer.writerow([name, f"{state} {label}", count])
        else:
            for row in rows:
                writer.writerow([name, row_key(row), row["count"]])
                if row.get("nat"):
                    writer.writerow([f"{name}_nat", row_key(row), row["nat"]])
    for row in doc.get("what_if", []):
        writer.writerow(["what_if", f"{row['timeout']}={row['proposed']}", row["expired"]])
    return buf.getvalue()

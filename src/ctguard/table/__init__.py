"""The conntrack table: read it in one pass (C scanner, or pure Python), tally, summarize."""

"""Fixing a host: changes.py (what), plan.py (pure: Facts -> Plan), apply.py (the only writer)."""

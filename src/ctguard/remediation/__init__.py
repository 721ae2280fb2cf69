"""Fixing a host: changes.py (what), plan.py (pure: Facts -> Plan), apply.py and rollback.py
(the only writers, through tree_fs.py; docs/trust-model.md)."""

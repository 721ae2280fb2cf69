"""Fixing a host: changes.py (what), plan.py (pure: Facts -> Plan) with host_changes.py
(where the values go on this host, one module per step), apply.py and rollback.py (the only
writers, through tree_fs.py; docs/trust-model.md)."""

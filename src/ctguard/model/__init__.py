"""Domain knowledge shared by the rules and the planners, each fact in one place.

Sizing and the memory model (``sizing``), configured-vs-runtime values (``values``), what
re-applies settings on a module load (``reapply``), what keeps the hash size and which keys tuned
owns (``boot_hashsize``), the RHEL iptables service
(``rhel_iptables``), firewall queries (``firewall``), ctguard's own NOTRACK rule shapes
(``notrack_rules``), counter rates (``rates``) and units (``units``).
"""

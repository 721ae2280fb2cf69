#!/bin/bash
# Regenerates the captures in this directory (run as root; nft 1.0.6, iptables 1.8.9 nf_tables).
# Each ruleset is loaded into a throw-away network namespace, so the machine's own ruleset
# is never involved; the namespace is deleted on exit.
set -euo pipefail
cd "$(dirname "$0")"
NS=ctg-capture-$$
ip netns add "$NS"
trap 'ip netns del "$NS"' EXIT
in_ns() { ip netns exec "$NS" "$@"; }
fresh() { in_ns nft flush ruleset; }
strip_dates() { sed -E 's/ on [A-Z][a-z]{2} [A-Z][a-z]{2} .*$/ on (date)/'; }

for name in stateful output-drop firewalld kube-proxy all-port; do
    fresh
    in_ns nft -f "nft-$name.nft"
    in_ns nft -j list ruleset > "nft-$name.json"
done
# NAT next to the stateful filter: nft-stateful.nft plus the file's nat table.
for name in dnat redirect dnat-to-port masquerade; do
    fresh
    in_ns nft -f nft-stateful.nft
    in_ns nft -f "nft-$name.nft"
    in_ns nft -j list ruleset > "nft-$name.json"
done

# ctguard's own nft transaction for `notrack --port 8983` on nft-stateful, as nft echoes it,
# and the ruleset it leaves.
fresh
in_ns nft -f nft-stateful.nft
in_ns nft --echo --handle -f - > nft-stateful-add.echo <<'NFT'
add table inet ctguard
add chain inet ctguard prerouting { type filter hook prerouting priority raw; policy accept; }
add chain inet ctguard output { type filter hook output priority raw; policy accept; }
add rule inet ctguard prerouting tcp dport 8983 notrack comment "ctguard"
add rule inet ctguard output tcp sport 8983 notrack comment "ctguard"
insert rule inet filter input position 6 tcp dport 8983 ct state untracked accept comment "ctguard"
NFT
in_ns nft -j list ruleset > nft-stateful-applied.json
# A second transaction: an existing chain of another table declared again (nft echoes it),
# a rule added to it, and a rule added to ctguard's existing table.
in_ns nft --echo --handle -f - > nft-second-add.echo <<'NFT'
add chain inet filter input { type filter hook input priority filter; policy drop; }
insert rule inet filter input tcp dport 9200 ct state untracked accept comment "ctguard"
add rule inet ctguard prerouting tcp dport 9200 notrack comment "ctguard"
NFT
in_ns nft -j list ruleset > nft-second-applied.json

# ctguard's transaction when its table exists with the prerouting chain only.
fresh
in_ns nft -f nft-stateful.nft
in_ns nft -f - <<'NFT'
add table inet ctguard
add chain inet ctguard prerouting { type filter hook prerouting priority raw; policy accept; }
NFT
in_ns nft --echo --handle -f - > nft-partial-add.echo <<'NFT'
add chain inet ctguard output { type filter hook output priority raw; policy accept; }
add rule inet ctguard prerouting tcp dport 8983 notrack comment "ctguard"
add rule inet ctguard output tcp sport 8983 notrack comment "ctguard"
insert rule inet filter input position 6 tcp dport 8983 ct state untracked accept comment "ctguard"
NFT

# An IPv4-only filter (its IPv6 side is legacy ip6tables, unseen by nft) and ctguard's
# IPv4-only transaction for `notrack --port 8983` on it (meta nfproto ipv4), as nft echoes it,
# and the ruleset it leaves.
fresh
in_ns nft -f nft-ipv4-filter.nft
in_ns nft -j list ruleset > nft-ipv4-filter.json
in_ns nft --echo --handle -f - > nft-ipv4-only-add.echo <<'NFT'
add table inet ctguard
add chain inet ctguard prerouting { type filter hook prerouting priority raw; policy accept; }
add chain inet ctguard output { type filter hook output priority raw; policy accept; }
add rule inet ctguard prerouting meta nfproto ipv4 tcp dport 8983 notrack comment "ctguard"
add rule inet ctguard output meta nfproto ipv4 tcp sport 8983 notrack comment "ctguard"
insert rule ip filter input position 6 tcp dport 8983 ct state untracked accept comment "ctguard"
NFT
in_ns nft -j list ruleset > nft-ipv4-only-applied.json

for name in stateful output-drop source-only nat; do
    fresh
    in_ns iptables-restore < "ipt-$name.rules"
    in_ns iptables-save | strip_dates > "ipt-$name.iptables-save"
done
fresh
in_ns ip6tables-restore < ip6t-stateful.rules
in_ns ip6tables-save | strip_dates > ip6t-stateful.ip6tables-save

# ctguard's iptables transactions for `notrack --port 8983` on ipt-stateful + ip6t-stateful.
fresh
in_ns iptables-restore < ipt-stateful.rules
in_ns ip6tables-restore < ip6t-stateful.rules
in_ns iptables-restore --noflush <<'IPT'
*raw
-I OUTPUT 1 -p tcp -m tcp --sport 8983 -m comment --comment ctguard -j CT --notrack
-I PREROUTING 1 -p tcp -m tcp --dport 8983 -m comment --comment ctguard -j CT --notrack
COMMIT
*filter
-I INPUT 4 -p tcp -m tcp --dport 8983 -m conntrack --ctstate UNTRACKED -m comment --comment ctguard -j ACCEPT
COMMIT
IPT
in_ns ip6tables-restore --noflush <<'IPT'
*raw
-I OUTPUT 1 -p tcp -m tcp --sport 8983 -m comment --comment ctguard -j CT --notrack
-I PREROUTING 1 -p tcp -m tcp --dport 8983 -m comment --comment ctguard -j CT --notrack
COMMIT
*filter
-I INPUT 3 -p tcp -m tcp --dport 8983 -m conntrack --ctstate UNTRACKED -m comment --comment ctguard -j ACCEPT
COMMIT
IPT
in_ns iptables-save | strip_dates > ipt-stateful-applied.iptables-save
in_ns ip6tables-save | strip_dates > ip6t-stateful-applied.ip6tables-save

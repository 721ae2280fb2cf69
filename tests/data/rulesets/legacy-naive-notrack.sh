set -e
iptables-legacy -t raw -A PREROUTING -p tcp --dport 8983 -j NOTRACK
iptables-legacy -t raw -A OUTPUT -p tcp --sport 8983 -j NOTRACK
iptables-legacy -P INPUT DROP
iptables-legacy -A INPUT -i lo -j ACCEPT
iptables-legacy -A INPUT -m state --state ESTABLISHED,RELATED -j ACCEPT
iptables-legacy -A INPUT -p tcp -m tcp --dport 22 -m state --state NEW -j ACCEPT
iptables-legacy -A INPUT -p tcp -m tcp --dport 8983 -m state --state NEW -j ACCEPT
iptables-legacy -A INPUT -p icmp -j ACCEPT
iptables-legacy -t nat -A POSTROUTING -o eth0 -j MASQUERADE

set -e
I=${IPT:-iptables}
I6=${IPT6:-ip6tables}
$I -t raw -A PREROUTING -p tcp --dport 8983 -j NOTRACK
$I -t raw -A OUTPUT -p tcp --sport 8983 -j CT --notrack
$I -t raw -A PREROUTING -p udp -m multiport --dports 53,5353,6000:6010 -j CT --notrack
$I -t raw -A PREROUTING -p tcp --dport 21 -j CT --helper ftp
$I -t raw -A PREROUTING -i lo -j CT --zone 1
$I -P INPUT DROP
$I -P FORWARD DROP
$I -A INPUT -i lo -j ACCEPT
$I -A INPUT -m state --state ESTABLISHED,RELATED -j ACCEPT
$I -A INPUT -m conntrack --ctstate UNTRACKED -j ACCEPT
$I -A INPUT -m conntrack ! --ctstate NEW,ESTABLISHED,RELATED,INVALID -j ACCEPT
$I -A INPUT -m conntrack --ctstate INVALID -j DROP
$I -A INPUT -s 10.0.0.0/8 -p tcp -m tcp --dport 22 -m comment --comment "ssh from the office" -j ACCEPT
$I -A INPUT -p tcp -m multiport --dports 80,443,8000:8100 -j ACCEPT
$I -A INPUT -p udp --sport 53 --dport 1024:65535 -j ACCEPT
$I -A INPUT -p 6 --destination-port 8983 -j ACCEPT
$I -N SERVICES
$I -N LOGDROP
$I -A INPUT -p tcp -j SERVICES
$I -A INPUT -j LOGDROP
$I -A SERVICES -p tcp --dport 9200 -j ACCEPT
$I -A SERVICES -p tcp ! --dport 9300 -j RETURN
$I -A SERVICES -p tcp --dport 9300 -j REJECT --reject-with tcp-reset
$I -A LOGDROP -m limit --limit 5/min -j LOG --log-prefix "dropped: "
$I -A LOGDROP -j DROP
$I -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
$I -A FORWARD -i eth1 -o eth0 -g SERVICES
$I -A FORWARD -m conntrack --ctstatus CONFIRMED -m conntrack --ctorigdst 192.0.2.10 -j ACCEPT
$I -A OUTPUT -m mark --mark 0x1 -j CONNMARK --save-mark
$I -t nat -A PREROUTING -i eth0 -p tcp --dport 8080 -j DNAT --to-destination 10.0.0.5:80
$I -t nat -A PREROUTING -p tcp --dport 2222 -j REDIRECT --to-ports 22
$I -t nat -A OUTPUT -d 127.0.0.1 -p udp --dport 5353 -j DNAT --to-destination 127.0.0.1:53
$I -t nat -A POSTROUTING -o eth0 -j MASQUERADE
$I -t nat -A POSTROUTING -s 192.168.1.0/24 -o eth1 -j SNAT --to-source 203.0.113.1
$I -t mangle -A PREROUTING -m connmark --mark 0x2 -j MARK --set-mark 0x2
$I -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu
$I6 -t raw -A PREROUTING -p tcp --dport 8983 -j NOTRACK
$I6 -P INPUT DROP
$I6 -A INPUT -i lo -j ACCEPT
$I6 -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
$I6 -A INPUT -p ipv6-icmp -j ACCEPT
$I6 -A INPUT -p tcp --dport 8983 -m conntrack --ctstate UNTRACKED -j ACCEPT
$I6 -t nat -A POSTROUTING -o eth0 -j MASQUERADE

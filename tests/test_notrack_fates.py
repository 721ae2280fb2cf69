"""What a NOTRACK changes: the fates of tracked and untracked packets compared
(model.notrack_effect, doctor rule CT501).

The expectations are an operator's reading of each ruleset: packets the filter accepted while
tracked and drops untracked are the trap; packets accepted either way, or dropped either way,
lose nothing, and no accept may be suggested for the latter (it would open a closed port).
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from dataclasses import replace
from pathlib import Path

from ctguard.cli import main
from ctguard.model.firewall import notrack_rules, packet_of
from ctguard.model.notrack_effect import CLOSED, DROPPED, UNCHANGED, Effect, notrack_effect
from ctguard.sources.ruleset import Chain, PortSet, Ruleset, parse_iptables_save, parse_nft_json
from helpers import doctor_finding

ROOTS = Path(__file__).parent / "roots" / "doctor"
EPHEMERAL = PortSet.of((32768, 60999))  # the kernel's default ip_local_port_range
# The Cloudflare-only web server (tests/realworld/firewall/makhomed-nftables-tool-nftables.conf
# loaded with nft; see the root's README entry).
MAKHOMED = ROOTS / "ct501-allowlist-nft" / "ctguard_commands" / "nft-json"


def save(raw: str, *filter_rules: str, chains: str = "") -> str:
    """An iptables-save with a raw table and a stateful INPUT (policy DROP)."""
    return (
        "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        f"{raw}\nCOMMIT\n"
        f"*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n{chains}"
        "-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT\n"
        + "".join(f"{rule}\n" for rule in filter_rules)
        + "COMMIT\n"
    )


SOLR = "-A PREROUTING -p tcp -m tcp --dport 8983 -j NOTRACK"


def effect(text: str, hook: str = "input") -> Effect:
    rs = parse_iptables_save(text)
    ((notrack, _),) = notrack_rules(rs)
    return notrack_effect(rs, hook, packet_of(notrack), EPHEMERAL)


def test_accepted_new_then_established_tracked_is_dropped_untracked() -> None:
    new = "-A INPUT -p tcp -m tcp --dport 8983 -m state --state NEW -j ACCEPT"
    got = effect(save(SOLR, new))
    assert got.outcome == DROPPED
    ((_, loss),) = got.losses
    assert loss.accept[-1].text == new
    assert loss.untracked.evidence == ("policy drop of chain ip filter INPUT",)


def test_an_allow_list_accept_without_state_accepts_them_untracked_too() -> None:
    allow = "-A INPUT -s 10.0.0.0/8 -p tcp -m tcp --dport 8983 -j ACCEPT"
    assert effect(save(SOLR, allow)).outcome == UNCHANGED


def test_an_allow_list_accept_for_new_only_loses_the_allow_list() -> None:
    allow = "-A INPUT -s 10.0.0.0/8 -p tcp -m tcp --dport 8983 -m state --state NEW -j ACCEPT"
    got = effect(save(SOLR, allow))
    assert got.outcome == DROPPED
    ((_, loss),) = got.losses
    assert loss.region.saddrs == frozenset({"10.0.0.0/8"})


def test_a_port_the_filter_closes_loses_nothing() -> None:
    # only ESTABLISHED is accepted, and 8983 is no ephemeral port: no connection to or from
    # it was ever set up, so there were no tracked packets to lose
    got = effect(save(SOLR, "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"))
    assert got.outcome == CLOSED
    assert got.losses == ()


def test_replies_to_this_hosts_own_queries_were_accepted_as_established() -> None:
    dns = "-A PREROUTING -p udp -m udp --sport 53 -j NOTRACK"
    got = effect(save(dns))
    assert got.outcome == DROPPED and got.surely_dropped
    ((_, loss),) = [(c, loss) for c, loss in got.losses if not loss.assumption]
    assert "RELATED,ESTABLISHED" in loss.accept[-1].text
    # replies to this host's queries come back to its ephemeral ports for sure
    assert loss.region.dports == EPHEMERAL
    # and to port 53 only if it queries from 53 itself (BIND's query-source port 53)
    ((_, guess),) = [(c, loss) for c, loss in got.losses if loss.assumption]
    assert (str(guess.region.sports), str(guess.region.dports)) == ("53", "53")
    assert "udp/53" in guess.assumption


def test_no_replies_when_the_output_filter_drops_the_queries() -> None:
    dns = "-A PREROUTING -p udp -m udp --sport 53 -j NOTRACK"
    text = save(dns).replace(":OUTPUT ACCEPT [0:0]\n-A INPUT", ":OUTPUT DROP [0:0]\n-A INPUT")
    assert effect(text).outcome == CLOSED


def test_an_accept_behind_a_jump_with_a_source_keeps_the_source() -> None:
    text = save(
        SOLR,
        "-A INPUT -s 10.0.0.0/8 -j SVC",
        "-A SVC -p tcp -m tcp --dport 8983 -m state --state NEW -j ACCEPT",
        chains=":SVC - [0:0]\n",
    )
    got = effect(text)
    assert got.outcome == DROPPED
    ((_, loss),) = got.losses
    assert loss.region.saddrs == frozenset({"10.0.0.0/8"})
    assert [rule.chain for rule in loss.accept] == ["INPUT", "SVC"]


# -- the real allow-list ruleset --------------------------------------------------------------
def makhomed(edit_allow: bool = False) -> Ruleset:
    rs = parse_nft_json(MAKHOMED.read_text())
    if not edit_allow:
        return rs
    chains: list[Chain] = []
    for chain in rs.chains:
        rules = tuple(
            replace(rule, match=replace(rule.match, ct_states=frozenset({"new"})))
            if "@allowed_ipv6" in rule.text
            else rule
            for rule in chain.rules
        )
        chains.append(replace(chain, rules=rules))
    return Ruleset(rs.backend, tuple(chains), rs.warnings, rs.missing)


def test_makhomed_allow_list_loses_nothing_to_its_notracks() -> None:
    rs = makhomed()
    notracks = notrack_rules(rs)
    assert len(notracks) == 4
    for notrack, hook in notracks:
        filter_hook = "input" if hook == "prerouting" else "output"
        got = notrack_effect(rs, filter_hook, packet_of(notrack), EPHEMERAL)
        assert got.outcome == UNCHANGED, notrack.text


def test_makhomed_allow_list_for_new_only_loses_the_allow_list() -> None:
    rs = makhomed(edit_allow=True)
    web = next(rule for rule, _ in notrack_rules(rs) if "dport { 80, 443 }" in rule.text)
    got = notrack_effect(rs, "input", packet_of(web), EPHEMERAL)
    assert got.outcome == DROPPED
    ((_, loss),) = got.losses
    assert loss.region.saddrs == frozenset({"ip6 @allowed_ipv6"})
    assert str(loss.region.dports) == "80,443"


# -- CT501 on a snapshot ----------------------------------------------------------------------
def ct501(root: Path) -> dict[str, object]:
    return doctor_finding(root, "CT501")


def solr_root(tmp_path: Path, new_accept: str | None) -> Path:
    """ct501-notrack-iptables with Solr's NEW accept replaced (None: removed)."""
    copy = tmp_path / "root"
    shutil.copytree(ROOTS / "ct501-notrack-iptables", copy, symlinks=True)
    saved = copy / "ctguard_commands" / "iptables-save"
    old = "-A INPUT -p tcp -m tcp --dport 8983 -m state --state NEW -j ACCEPT\n"
    text = saved.read_text()
    assert old in text
    saved.write_text(text.replace(old, "" if new_accept is None else new_accept + "\n"))
    (copy / "ctguard_commands" / "nft-json").unlink()  # the iptables-nft copy of the old rules
    return copy


def test_ct501_a_closed_port_is_info_and_suggests_no_accept(tmp_path: Path) -> None:
    got = ct501(solr_root(tmp_path, None))
    assert (got["status"], got["severity"]) == ("found", "info")
    assert any("the NOTRACK rule has no effect on them" in str(line) for line in got["evidence"])  # type: ignore[attr-defined]
    fix = str(got["fix"])
    assert "ACCEPT" not in fix and "-I INPUT" not in fix


def test_ct501_an_allow_list_for_new_only_is_critical_and_keeps_the_list(tmp_path: Path) -> None:
    allow = "-A INPUT -s 192.0.2.0/24 -p tcp -m tcp --dport 8983 -m state --state NEW -j ACCEPT"
    got = ct501(solr_root(tmp_path, allow))
    assert (got["status"], got["severity"]) == ("found", "critical")
    fixes = [line for line in str(got["fix"]).splitlines() if line.startswith("iptables ")]
    assert fixes == [  # right before the allow-list accept, the 2nd INPUT rule
        "iptables -t filter -I INPUT 2 -s 192.0.2.0/24 -p tcp -m tcp --dport 8983 -m conntrack"
        " --ctstate UNTRACKED -m comment --comment ctguard -j ACCEPT"
    ]


def test_ct501_the_accept_goes_after_a_drop_that_came_before_the_tracked_accept(
    tmp_path: Path,
) -> None:
    """10.0.0.0/8 is dropped before 8983's NEW accept: an untracked accept inserted first
    would open 8983 to it. Right before the accept it mirrors (3rd), it stays closed."""
    rules = (
        "-A INPUT -s 10.0.0.0/8 -j DROP\n"
        "-A INPUT -p tcp -m tcp --dport 8983 -m state --state NEW -j ACCEPT"
    )
    got = ct501(solr_root(tmp_path, rules))
    assert (got["status"], got["severity"]) == ("found", "critical")
    fixes = [line for line in str(got["fix"]).splitlines() if line.startswith("iptables ")]
    assert fixes == [
        "iptables -t filter -I INPUT 3 -p tcp -m tcp --dport 8983 -m conntrack"
        " --ctstate UNTRACKED -m comment --comment ctguard -j ACCEPT"
    ]


def test_ct501_packets_accepted_only_as_replies_get_no_paste_rule(tmp_path: Path) -> None:
    """The NOTRACK's port moved to 40000, an ephemeral port no rule accepts NEW packets
    for: tracked, its packets came in only as replies to this host's own connections
    (RELATED,ESTABLISHED). Untracked, they cannot be told apart from new ones: no accept
    to paste, and the reason says so."""
    copy = solr_root(tmp_path, None)
    for name in ("iptables-save",):
        saved = copy / "ctguard_commands" / name
        saved.write_text(saved.read_text().replace("8983", "40000"))
    got = ct501(copy)
    fix = str(got["fix"])
    assert "UNTRACKED" not in fix and "-I INPUT" not in fix
    assert "only as replies" in fix


def test_ct501_an_allow_list_without_state_passes(tmp_path: Path) -> None:
    allow = "-A INPUT -s 192.0.2.0/24 -p tcp -m tcp --dport 8983 -j ACCEPT"
    assert ct501(solr_root(tmp_path, allow))["status"] == "passed"


def test_ct501_the_real_allow_list_root_passes() -> None:
    assert ct501(ROOTS / "ct501-allowlist-nft")["status"] == "passed"


def test_a_loopback_only_accept_does_not_open_the_port_to_the_network() -> None:
    # lo traffic is accepted tracked and untracked alike; from the network 8983 is closed
    text = save(SOLR, "-A INPUT -i lo -j ACCEPT")
    assert effect(text).outcome == CLOSED


def test_one_family_closed_and_the_other_losing_packets_is_the_loss() -> None:
    v4 = parse_iptables_save(
        save(SOLR, "-A INPUT -p tcp -m tcp --dport 8983 -m state --state NEW -j ACCEPT")
    )
    v6 = parse_iptables_save(save(SOLR), "ip6tables")
    both = Ruleset("merged", v4.chains + v6.chains)
    packet = packet_of(notrack_rules(v4)[0][0])
    inet = replace(packet, family="inet")
    # IPv6 packets to 8983 were dropped tracked too; IPv4 ones were accepted, and are lost
    assert notrack_effect(both, "input", inet, EPHEMERAL).outcome == DROPPED
    only_v6 = Ruleset("merged", v6.chains)
    assert notrack_effect(only_v6, "input", inet, EPHEMERAL).outcome == CLOSED


def test_an_accept_with_a_mark_does_not_cover_the_whole_class() -> None:
    marked = "-A INPUT -p tcp -m tcp --dport 8983 -m mark --mark 0x1 -m state --state NEW -j ACCEPT"
    got = effect(save(SOLR, marked))
    assert got.outcome == DROPPED
    ((_, loss),) = got.losses
    assert not loss.covers(got.packet)


def test_a_rule_that_drops_untracked_packets_first_is_seen_before_a_stateless_accept() -> None:
    drop = "-A INPUT -m conntrack --ctstate UNTRACKED -j DROP"
    allow = "-A INPUT -s 10.0.0.0/8 -p tcp -m tcp --dport 8983 -j ACCEPT"
    got = effect(save(SOLR, drop, allow))
    assert got.outcome == DROPPED
    ((_, loss),) = got.losses
    assert loss.untracked.evidence == (f"iptables -t filter {drop}",)


def test_a_big_allow_list_behind_a_broad_notrack_is_dropped() -> None:
    # a 3000-entry NEW-only allow-list behind a broad NOTRACK (its cost: bench/ct501.py)
    accepts = [
        f"-A INPUT -s 10.{i // 250}.{i % 250}.0/24 -p tcp -m tcp --dport {1000 + i}"
        " -m state --state NEW -j ACCEPT"
        for i in range(3000)
    ]
    text = save("-A PREROUTING -s 10.0.0.0/8 -j NOTRACK", *accepts)
    got = effect(text)
    assert got.outcome == DROPPED


# -- a chain entered twice --------------------------------------------------------------------
TWO_DOORS = (
    "-A INPUT -i eth0 -j C0",
    "-A INPUT -i eth1 -j C0",
    "-A C0 -p tcp -m tcp --dport 8983 -m state --state NEW -j ACCEPT",
)


def test_a_chain_entered_by_two_jumps_loses_packets_through_both() -> None:
    # eth0 and eth1 both reach Solr's NEW accept in C0: untracked, both are dropped
    got = effect(save(SOLR, *TWO_DOORS, chains=":C0 - [0:0]\n"))
    assert got.outcome == DROPPED
    ifaces = sorted(str(loss.region.iif) for _, loss in got.losses)
    assert ifaces == ["eth0", "eth1"]
    for _, loss in got.losses:
        assert [rule.chain for rule in loss.accept] == ["INPUT", "C0"]


def test_ct501_accepting_one_door_of_two_does_not_pass(tmp_path: Path) -> None:
    root = solr_root(tmp_path, "\n".join(TWO_DOORS))
    saved = root / "ctguard_commands" / "iptables-save"
    text = saved.read_text().replace(":INPUT DROP [0:0]\n", ":INPUT DROP [0:0]\n:C0 - [0:0]\n", 1)
    assert ":C0 -" in text
    saved.write_text(text)
    got = ct501(root)
    assert (got["status"], got["severity"]) == ("found", "critical")
    fixes = [line for line in str(got["fix"]).splitlines() if line.lstrip().startswith("iptables ")]
    assert sorted("-i eth0" in f for f in fixes) == [False, True]
    assert all("-i eth" in f and "--dport 8983" in f for f in fixes)
    # with only eth0's accept added, eth1's packets are still dropped
    eth0 = (
        "-A INPUT -i eth0 -p tcp -m tcp --dport 8983 -m conntrack --ctstate UNTRACKED -j ACCEPT\n"
    )
    saved.write_text(text.replace("-A INPUT -m state", eth0 + "-A INPUT -m state", 1))
    got = ct501(root)
    assert (got["status"], got["severity"]) == ("found", "critical")
    fixes = [line for line in str(got["fix"]).splitlines() if line.lstrip().startswith("iptables ")]
    assert len(fixes) == 1 and "-i eth1" in fixes[0]


# -- clients that send from their service's own UDP port --------------------------------------
NTP = (
    "-A PREROUTING -p udp -m udp --dport 123 -j NOTRACK\n"
    "-A OUTPUT -p udp -m udp --sport 123 -j NOTRACK"
)


def test_ntpd_replies_to_its_own_port_are_a_guessed_loss_not_no_effect() -> None:
    # ntpd sends from 123 to 123: its servers' replies were ESTABLISHED; untracked, the
    # policy drops them. Not "closed": that would tell the operator to remove the NOTRACK.
    rs = parse_iptables_save(save(NTP, "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT"))
    (prerouting,) = [rule for rule, hook in notrack_rules(rs) if hook == "prerouting"]
    got = notrack_effect(rs, "input", packet_of(prerouting), EPHEMERAL)
    assert got.outcome == DROPPED
    assert not got.surely_dropped  # it rests on ntpd sending from 123 (outside 32768-60999)
    ((_, loss),) = got.losses
    assert "ntpd" in loss.assumption
    # the lost packets are 123 -> 123 only, never any packet from source port 123
    assert (str(loss.region.sports), str(loss.region.dports)) == ("123", "123")


def test_a_udp_port_inside_the_ephemeral_range_needs_no_guess() -> None:
    got = effect(save("-A PREROUTING -p udp -m udp --dport 40000 -j NOTRACK"))
    assert got.surely_dropped
    assert not any(loss.assumption for _, loss in got.losses)


def test_a_tcp_service_port_is_no_reply_to_this_host() -> None:
    # tcp clients do not bind their service port: a closed tcp port stays closed
    assert effect(save(SOLR)).outcome == CLOSED


def test_ct501_ntp_notracked_both_ways_is_a_warning_with_its_reason(tmp_path: Path) -> None:
    root = solr_root(tmp_path, None)
    saved = root / "ctguard_commands" / "iptables-save"
    text = saved.read_text()
    assert SOLR in text
    saved.write_text(text.replace(SOLR, NTP))
    got = ct501(root)
    assert (got["status"], got["severity"]) == ("found", "warning")
    evidence = "\n".join(str(line) for line in got["evidence"])  # type: ignore[attr-defined]
    assert "no effect" not in evidence
    assert "if this host sends from udp/123 itself, e.g. ntpd" in evidence
    fixes = [line for line in str(got["fix"]).splitlines() if line.lstrip().startswith("iptables ")]
    # INPUT took them only as ESTABLISHED replies: an untracked accept cannot tell ntpd's
    # replies from unsolicited packets sent from port 123, so no rule is offered, and why
    assert fixes == []
    assert "took them only as replies" in str(got["fix"])


# -- ip_local_port_range: one fact, read with or without the table ----------------------------
def wide_range_root(tmp_path: Path) -> Path:
    """A snapshot without the table, ip_local_port_range 1024-65000 and udp/20000 (inside it)
    notracked both ways: replies to this host's own connections arrive on 20000."""
    root = solr_root(tmp_path, None)
    saved = root / "ctguard_commands" / "iptables-save"
    udp = (
        "-A PREROUTING -p udp -m udp --dport 20000 -j NOTRACK\n"
        "-A OUTPUT -p udp -m udp --sport 20000 -j NOTRACK"
    )
    saved.write_text(saved.read_text().replace(SOLR, udp))
    name = "/proc/sys/net/ipv4/ip_local_port_range"
    (root / name[1:]).parent.mkdir(parents=True)
    (root / name[1:]).write_text("1024\t65000\n")
    manifest_path = root / "ctguard_manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["table"] is False
    manifest["captured"].append(name)
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return root


def test_ct501_and_notrack_weigh_one_ip_local_port_range_without_the_table(
    tmp_path: Path,
) -> None:
    root = wide_range_root(tmp_path)
    got = ct501(root)
    # 20000 is an ephemeral port here: replies to this host's own connections are surely lost
    assert (got["status"], got["severity"]) == ("found", "critical")
    evidence = "\n".join(str(line) for line in got["evidence"])  # type: ignore[attr-defined]
    assert "itself" not in evidence  # no guess about fixed source ports needed
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["notrack", "--root", str(root), "--port", "20000", "--proto", "udp"])
    # notrack weighs the same range: the replies on 20000 are lost (not "dropped whether
    # tracked or not"), and as INPUT took them only as replies it refuses to open the port
    assert "whether tracked or not" not in out.getvalue()
    assert "accept its NEW packets" in out.getvalue()


# -- big allow-lists ----------------------------------------------------------------------------
def test_twenty_notracks_over_a_big_new_only_allow_list_lose_each_entry() -> None:
    # 20 ports notracked, 8000 NEW-only /32 accepts spread over them (the walk's cost is
    # bench/ct501.py's, measured against parsing the same ruleset)

    notracks = "\n".join(
        f"-A PREROUTING -p tcp -m tcp --dport {8000 + i} -j NOTRACK" for i in range(20)
    )
    accepts = [
        f"-A INPUT -s 10.{i // 250}.{i % 250}.1/32 -p tcp -m tcp --dport {8000 + i % 20}"
        " -m state --state NEW -j ACCEPT"
        for i in range(8000)
    ]
    rs = parse_iptables_save(save(notracks, *accepts))
    lost = 0
    for notrack, _ in notrack_rules(rs):
        got = notrack_effect(rs, "input", packet_of(notrack), EPHEMERAL)
        assert got.outcome == DROPPED
        lost += len(got.losses)
    assert lost == 8000  # one per allow-list entry: each needs its own untracked accept


def test_a_walk_of_part_of_a_class_with_its_candidates_decides_as_a_full_walk() -> None:
    from ctguard.model.firewall import Candidates, chain_fate

    text = save(
        SOLR,
        "-A INPUT -s 10.0.0.0/8 -p tcp -m tcp --dport 8983 -m state --state NEW -j ACCEPT",
        "-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT",
        "-A INPUT -s 10.1.0.0/16 -m conntrack --ctstate UNTRACKED -j ACCEPT",
        "-A INPUT -i eth1 -p tcp -m tcp --dport 8983 -j DROP",
    )
    rs = parse_iptables_save(text)
    ((notrack, _),) = notrack_rules(rs)
    whole = packet_of(notrack)
    (chain,) = [c for c in rs.chains if c.name == "INPUT" and c.table == "filter"]
    candidates = Candidates(whole, "untracked")
    parts = [
        whole,
        replace(whole, saddrs=frozenset({"10.1.2.0/24"})),
        replace(whole, saddrs=frozenset({"192.0.2.0/24"})),
        replace(whole, iif="eth1"),
    ]
    fates = [chain_fate(rs, chain, part, "untracked", candidates=candidates) for part in parts]
    assert fates == [chain_fate(rs, chain, part, "untracked") for part in parts]
    assert [f.outcome for f in fates] == ["conditional", "accepted", "dropped", "conditional"]


def test_ct501_a_big_allow_list_shows_ten_accepts_and_pastes_each_before_its_accept(
    tmp_path: Path,
) -> None:
    sources = [f"192.0.2.{i}/32" for i in range(1, 31)]
    allow = "\n".join(
        f"-A INPUT -s {source} -p tcp -m tcp --dport 8983 -m state --state NEW -j ACCEPT"
        for source in sources
    )
    got = ct501(solr_root(tmp_path, allow))
    assert (got["status"], got["severity"]) == ("found", "critical")
    evidence = [str(line) for line in got["evidence"]]  # type: ignore[attr-defined]
    assert sum("accepted while tracked by" in line for line in evidence) == 10
    assert any("... and 20 more accepts" in line for line in evidence)
    fixes = [line for line in str(got["fix"]).splitlines() if line.lstrip().startswith("iptables ")]
    # each untracked accept goes right before the accept it mirrors (INPUT's rules 2-31),
    # the highest position first so that pasting them in order shifts no later one
    assert len(fixes) == 30
    at = [int(line.split(" -I INPUT ")[1].split(" ")[0]) for line in fixes]
    assert at == list(range(31, 1, -1))
    pasted = [line.split(" -s ")[1].split(" ")[0] for line in fixes]
    assert pasted == sources[::-1]
    tail = " --dport 8983 -m conntrack --ctstate UNTRACKED -m comment --comment ctguard -j ACCEPT"
    assert all(line.endswith(tail) for line in fixes)


def test_notrack_opens_no_whole_port_for_replies_to_this_hosts_own_fixed_port(
    tmp_path: Path,
) -> None:
    # INPUT takes udp/123 only as ESTABLISHED (replies to ntpd's own 123 -> 123 queries):
    # an untracked accept for all of udp dport 123 would open it to every host
    root = solr_root(tmp_path, None)
    saved = root / "ctguard_commands" / "iptables-save"
    saved.write_text(saved.read_text().replace(SOLR, NTP))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["notrack", "--root", str(root), "--port", "123", "--proto", "udp"])
    assert "--dport 123 -m conntrack --ctstate UNTRACKED" not in out.getvalue()
    assert "if this host sends from udp/123 itself" in out.getvalue()
    # planned, not refused on a guess; the check says when the replies would be dropped
    assert code == 0
    assert "dropped only if this host sends from udp/123 itself" in out.getvalue()


def test_ct501_an_accept_behind_a_conditioned_jump_keeps_the_jumps_condition(
    tmp_path: Path,
) -> None:
    """The same rule `ctguard notrack` offers for it (one function builds both): the jump's
    -i eth0, right before that jump (INPUT's 2nd rule)."""
    copy = solr_root(tmp_path, None)
    (copy / "ctguard_commands" / "iptables-save").write_text(
        "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        "-A PREROUTING -p tcp -m tcp --dport 8983 -j NOTRACK\nCOMMIT\n"
        "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:C0 - [0:0]\n"
        "-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT\n"
        "-A INPUT -i eth0 -j C0\n"
        "-A C0 -p tcp -m tcp --dport 8983 -m state --state NEW -j ACCEPT\nCOMMIT\n"
    )
    got = ct501(copy)
    fixes = [line for line in str(got["fix"]).splitlines() if line.startswith("iptables ")]
    assert fixes == [
        "iptables -t filter -I INPUT 2 -i eth0 -p tcp -m tcp --dport 8983 -m conntrack"
        " --ctstate UNTRACKED -m comment --comment ctguard -j ACCEPT"
    ]


def test_notrack_lists_rules_to_add_yourself_highest_position_first(tmp_path: Path) -> None:
    # the same pasting order as CT501: -I INPUT 31 before -I INPUT 30 ... (no shift)
    allow = "\n".join(
        f"-A INPUT -s 192.0.2.{i}/32 -p tcp -m tcp --dport 8983 -m state --state NEW -j ACCEPT"
        for i in range(1, 6)
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["notrack", "--root", str(solr_root(tmp_path, allow)), "--port", "8983"])
    at = [
        int(line.split(" -I INPUT ")[1].split(" ")[0])
        for line in out.getvalue().splitlines()
        if "add it yourself" in line and " -I INPUT " in line
    ]
    assert at == [6, 5, 4, 3, 2]

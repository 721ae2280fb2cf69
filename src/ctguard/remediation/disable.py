"""``plan_disable(facts) -> DisablePlan``: what keeps nf_conntrack loaded, and a plan that
really keeps it out, or a refusal that lists what still needs it (pure).

The chain has three kinds of links:

- modules: every loaded module that uses nf_conntrack, directly or through another one,
  from ``/proc/modules``' "used by" column and ``/sys/module/nf_conntrack/holders``::

      nf_conntrack 176128 4 xt_MASQUERADE,nf_nat,xt_conntrack, Live 0xffffffffc0a2e000

- rules that need conntrack (``firewall.conntrack_users``, plus NOTRACK rules, whose
  xt_CT / nft_ct module needs it too), each with its fate: ``replace`` by the stateless
  rule where that is obvious, ``delete`` where the rule means nothing without conntrack,
  else ``blocker``;
- agents that put such rules back: kube-proxy, dockerd, firewalld, libvirt, Open vSwitch.

Any blocker refuses the plan. Otherwise the plan is: change the rules, write
``install MOD /bin/false`` lines to modprobe.d (``blacklist`` only stops loading by alias,
modprobe.d(5)), then unload the modules, users before what they use. A built-in
nf_conntrack cannot be unloaded: that is refused, pointing to ``ctguard notrack --all``,
unless nothing needs it (then, since 4.10, it tracks nothing and there is nothing to do).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from pathlib import PurePosixPath

from ctguard.errors import CtguardError
from ctguard.exit_codes import REFUSED, ExitCode
from ctguard.facts import Facts
from ctguard.missing import Missing
from ctguard.model.firewall import conntrack_users
from ctguard.model.ipv6_filter import IP6TABLES_SAVE, ipv6_filter_unread
from ctguard.model.values import NF_CONNTRACK, hooks_on_demand
from ctguard.remediation.changes import OURS, Note, WriteFile
from ctguard.remediation.host_settings import FileReader
from ctguard.sources.agents import Process
from ctguard.sources.kernel import KernelVersion
from ctguard.sources.modprobe_conf import (
    LEGACY_MODPROBE_CONF,
    MODPROBE_D,
    ModprobeConfig,
    ModprobeDirective,
)
from ctguard.sources.modules import SILENT_USERS, ModuleLine
from ctguard.sources.ruleset import (
    CONNTRACK_MATCHES,
    NAT_VERDICTS,
    Rule,
    Ruleset,
    describe,
    parse_iptables_save,
)

# kmod reads modprobe.d files sorted by name and runs the first install command whose
# pattern matches (libkmod-module.c kmod_module_get_install_commands: "find only the first
# command"), so our file must sort before any other install line for these modules.
FILE_NAMES = ("00-ctguard-disable-conntrack.conf", "0-ctguard-disable-conntrack.conf")
HEADER = "# Written by 'ctguard disable': keeps nf_conntrack out. 'ctguard rollback' undoes it.\n"
REPLACE, DELETE, BLOCKER = "replace", "delete", "blocker"


# Programs that write rules needing conntrack, and put them back when they restart.
AGENTS = {
    "kube-proxy": "kube-proxy programs Service NAT and conntrack cleanup; it loads nf_conntrack"
    " again",
    "dockerd": "docker masquerades container traffic and DNATs published ports, and NAT needs"
    " conntrack",
    "firewalld": "firewalld accepts replies with 'ct state established,related' and rewrites its"
    " rules on reload",
    "libvirtd": "libvirt's NAT networks (virbr0) masquerade through conntrack",
    "virtnetworkd": "libvirt's NAT networks (virbr0) masquerade through conntrack",
    "ovs-vswitchd": "Open vSwitch's ct() action (OVN, Neutron security groups) needs conntrack",
}
_CT_MODULES = "|".join(sorted(CONNTRACK_MATCHES))
_CT_XT = f"{_CT_MODULES}|CT|CONNMARK|SYNPROXY"
_CT_TERM = re.compile(
    rf"(?:^|\s)(?:ct|-m (?:{_CT_MODULES})|xt (?:match|target) (?:{_CT_XT}))(?:\s|$)"
)
_NFT_STATE = re.compile(r"(?:^|\s)ct state (?:!= )?(?:\{[^}]*\}|\S+)(?=\s|$)")
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\S+')
_STATE_OPTION = {"state": "--state", "conntrack": "--ctstate"}


class DisableInputError(CtguardError):
    """An input the plan cannot do without is unreadable (not merely absent)."""


@dataclass(frozen=True)
class Holder:
    """A module that keeps nf_conntrack loaded; ``chain`` runs from nf_conntrack to it."""

    module: str
    chain: tuple[str, ...]  # ("nf_conntrack", "nf_nat", "nft_chain_nat")
    refcount: int | None  # None: seen only in /sys/module/nf_conntrack/holders
    used_by: tuple[str, ...]


@dataclass(frozen=True)
class RuleFate:
    rule: str  # as describe() shows it; a nat table's base chains for a nat table
    verdict: str  # REPLACE, DELETE or BLOCKER
    reason: str
    replacement: str | None = None  # REPLACE: the rule in its own syntax, stateless


@dataclass(frozen=True)
class Agent:
    pid: int
    program: str
    args: str
    why: str


@dataclass(frozen=True)
class DisablePlan:
    live: bool
    netns: str | None
    kernel: str | None
    presence: str  # module | builtin | absent
    evidence: str  # how the presence was seen
    holders: tuple[Holder, ...]
    rules: tuple[RuleFate, ...]
    agents: tuple[Agent, ...]
    unload_order: tuple[str, ...]  # modprobe -r, one by one, in this order
    modprobe_file: WriteFile | None
    existing: tuple[str, ...]  # modprobe.d lines about these modules, and what they do
    refusals: tuple[str, ...]
    notes: tuple[Note, ...]

    @property
    def refused(self) -> bool:
        return bool(self.refusals)

    @property
    def nothing_to_do(self) -> bool:
        changes = [r for r in self.rules if r.verdict != BLOCKER]
        return not (self.refusals or changes or self.unload_order or self.modprobe_file)

    @property
    def status(self) -> str:
        return "refused" if self.refused else "nothing-to-do" if self.nothing_to_do else "plan"

    @property
    def exit_code(self) -> int:
        """A refusal exits like a CRITICAL (something still needs conntrack)."""
        return REFUSED if self.refused else ExitCode.OK


# -- modules ------------------------------------------------------------------------------
def module_chain(
    modules: Mapping[str, ModuleLine], direct: Sequence[str] = ()
) -> tuple[Holder, ...]:
    """Every module that uses nf_conntrack, nearest first (breadth first, then by name).

    ``direct``: /sys/module/nf_conntrack/holders, added to nf_conntrack's "used by".

    >>> from ctguard.sources.modules import parse_proc_modules
    >>> mods = parse_proc_modules(
    ...     "nf_nat 49152 2 nft_chain_nat,xt_MASQUERADE, Live 0xffffffffc0a64000\\n"
    ...     "nf_conntrack 172032 3 nf_nat,xt_MASQUERADE,xt_conntrack, Live 0xffffffffc0a2e000\\n")
    >>> [" <- ".join(h.chain) for h in module_chain(mods)]  # doctest: +NORMALIZE_WHITESPACE
    ['nf_conntrack <- nf_nat', 'nf_conntrack <- xt_MASQUERADE', 'nf_conntrack <- xt_conntrack',
     'nf_conntrack <- nf_nat <- nft_chain_nat']
    """

    def users(name: str) -> tuple[str, ...]:
        line = modules.get(name)
        found = line.used_by if line is not None else ()
        return tuple(sorted({*found, *direct})) if name == NF_CONNTRACK else tuple(sorted(found))

    paths: dict[str, tuple[str, ...]] = {NF_CONNTRACK: (NF_CONNTRACK,)}
    level = [NF_CONNTRACK]
    while level:
        following: list[str] = []
        for name in level:
            for user in users(name):
                if user not in paths:
                    paths[user] = (*paths[name], user)
                    following.append(user)
        level = following
    return tuple(
        Holder(name, path, modules[name].refcount if name in modules else None, users(name))
        for name, path in paths.items()
        if name != NF_CONNTRACK
    )


def unload_order(modules: Mapping[str, ModuleLine], names: Sequence[str]) -> tuple[str, ...]:
    """``names`` ordered so that each module comes after every module using it (a module
    cannot be removed while another uses it); ties by name.

    >>> from ctguard.sources.modules import parse_proc_modules
    >>> mods = parse_proc_modules(
    ...     "nf_nat 49152 1 xt_MASQUERADE, Live 0x0\\n"
    ...     "nf_conntrack 172032 2 nf_nat,xt_MASQUERADE, Live 0x0\\n"
    ...     "xt_MASQUERADE 16384 1 - Live 0x0\\n")
    >>> unload_order(mods, ["nf_conntrack", "nf_nat", "xt_MASQUERADE"])
    ('xt_MASQUERADE', 'nf_nat', 'nf_conntrack')
    """
    left = set(names)
    order: list[str] = []
    while left:
        ready = sorted(
            name
            for name in left
            if not (set(modules[name].used_by) if name in modules else set()) & left
        )
        batch = ready or sorted(left)  # a cycle cannot be loaded; never loop on one
        order.extend(batch)
        left -= set(batch)
    return tuple(order)


def _module_notes(holders: Sequence[Holder], conntrack: ModuleLine | None) -> list[str]:
    """References a module has beyond other modules: rules, sockets or a namespace."""
    notes: list[str] = []
    lines = [(h.module, h.refcount, h.used_by) for h in holders]
    if conntrack is not None:
        lines.insert(0, (NF_CONNTRACK, conntrack.refcount, conntrack.used_by))
    for name, refcount, used_by in lines:
        extra = (refcount or 0) - len(used_by)
        if extra > 0:
            notes.append(
                f"{name}: {extra} reference(s) besides modules (rules or sockets using it):"
                f" 'modprobe -r {name}' fails until they are gone"
            )
    return notes


def _silent_refusals(holders: Sequence[Holder]) -> list[str]:
    return [
        f"module {h.module} is in use (refcount {h.refcount}): it uses conntrack without any"
        " firewall rule (Open vSwitch, IPVS, flowtables, tc act_ct); stop what uses it first"
        for h in holders
        if h.module.startswith(SILENT_USERS) and (h.refcount or 0) > len(h.used_by)
    ]


# -- rules --------------------------------------------------------------------------------
def _drop_iptables_state(line: str) -> str | None:
    """The iptables-save line without its ``-m state --state X`` / ``-m conntrack --ctstate
    X`` block; None when that block has other options (``--ctstatus``, ``--ctorigdst``).

    >>> _drop_iptables_state("-A INPUT -p tcp -m state --state NEW -m tcp --dport 22 -j ACCEPT")
    '-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT'
    """
    tokens = list(_TOKEN.finditer(line))
    words = [t.group() for t in tokens]
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(words):
        if words[i] not in ("-m", "--match") or words[i + 1 : i + 2] not in (
            ["state"],
            ["conntrack"],
        ):
            i += 1
            continue
        allowed = _STATE_OPTION[words[i + 1]]
        j = i + 2
        while j < len(words):
            if words[j] == "!" and words[j + 1 : j + 2] == [allowed]:
                j += 1
            if not words[j].startswith("--"):
                break
            if words[j] != allowed:
                return None
            j += 1
            if j < len(words) and words[j] == "!":  # old form: --state ! INVALID
                j += 1
            if j < len(words) and not words[j].startswith("-"):
                j += 1
        spans.append((tokens[i].start(), tokens[j].start() if j < len(tokens) else len(line)))
        i = j
    if not spans:
        return None
    kept, start = [], 0
    for begin, end in spans:
        kept.append(line[start:begin])
        start = end
    kept.append(line[start:])
    return "".join(kept).strip()


def _stateless(rule: Rule) -> str | None:
    """The rule in its own syntax without the ct state match, or None when more than that
    match needs conntrack."""
    if rule.backend == "nft":
        text, count = _NFT_STATE.subn("", rule.text, count=1)
        text = text.strip()
        opaque = _CT_TERM.search(text) or " xt " in f" {text} "  # nft cannot print xt options
        return text if count and not opaque else None
    line = _drop_iptables_state(rule.text)
    if line is None:
        return None
    parsed = parse_iptables_save(f"*{rule.table}\n{line}\nCOMMIT\n", rule.backend).rules()
    if len(parsed) != 1 or parsed[0].match.uses_conntrack or parsed[0].verdict != rule.verdict:
        return None
    return line


def _states(rule: Rule) -> str:
    return ",".join(sorted(s.upper() for s in rule.match.ct_states or ()))


def _fate(rule: Rule) -> RuleFate:
    shown = describe(rule)
    if rule.verdict in NAT_VERDICTS:
        return RuleFate(shown, BLOCKER, f"NAT ({rule.verdict.upper()}) lives in conntrack entries")
    if rule.verdict == "notrack":
        return RuleFate(shown, DELETE, "NOTRACK means nothing without conntrack, and its module"
                        " (xt_CT, nft_ct) needs nf_conntrack")  # fmt: skip
    if rule.verdict == "ct":
        return RuleFate(shown, BLOCKER, "sets a conntrack helper, zone or timeout")
    m = rule.match
    other = [term for term in m.other if _CT_TERM.search(f" {term} ")]
    if m.ct_states is None or rule.vmap or other:
        what = ", ".join(other) or ("a ct state vmap" if rule.vmap else "conntrack")
        return RuleFate(shown, BLOCKER, f"uses {what}; no stateless equivalent to offer")
    states = _states(rule)
    if rule.verdict in ("drop", "reject") and m.ct_states <= {"invalid"}:
        return RuleFate(shown, DELETE, "without conntrack no packet is INVALID; it never matches")
    narrowed = m.protos is not None or m.dports is not None or m.sports is not None
    if rule.verdict == "accept" and m.ct_states & {"new", "untracked"} and narrowed:
        replacement = _stateless(rule)
        if replacement is not None:
            why = (f"accepts {states} packets; without conntrack the rule without its state match"
                   " accepts the same packets, and the later packets of their flows")  # fmt: skip
            return RuleFate(shown, REPLACE, why, replacement)
    replies = m.ct_states & {"established", "related"} and "new" not in m.ct_states
    if rule.verdict == "accept" and replies:
        why = (f"accepts {states} replies; a stateless firewall accepts them by port, which"
               " only you can write")  # fmt: skip
        return RuleFate(shown, BLOCKER, why)
    return RuleFate(shown, BLOCKER, f"matches ct state {states}; no obvious stateless equivalent")


def rule_fates(rs: Ruleset) -> tuple[RuleFate, ...]:
    """The fate of every rule that needs conntrack; a nat table counts once, as a blocker.

    ``conntrack_users`` lists each nat base chain as a pseudo-rule (not in any chain): an
    empty nat table still makes the kernel track every flow.
    """
    real = set(rs.rules())
    entries: list[RuleFate | tuple[str, str, str]] = []
    nat_chains: dict[tuple[str, str, str], list[str]] = {}
    for rule in conntrack_users(rs):
        if rule in real:
            entries.append(_fate(rule))
            continue
        key = (rule.backend, rule.family, rule.table)
        if key not in nat_chains:
            entries.append(key)
        nat_chains.setdefault(key, []).append(rule.chain)
    entries += [_fate(rule) for rule in rs.rules() if rule.verdict == "notrack"]
    return tuple(e if isinstance(e, RuleFate) else _nat_table(*e, nat_chains[e]) for e in entries)


def _nat_table(backend: str, family: str, table: str, chains: Sequence[str]) -> RuleFate:
    where = f"nft table {family} {table}" if backend == "nft" else f"{backend} -t {table}"
    why = "a nat table makes the kernel track every flow, and NAT needs conntrack"
    return RuleFate(f"{where} (nat base chains {', '.join(chains)})", BLOCKER, why)


# -- agents -------------------------------------------------------------------------------
def _program(args: str) -> str | None:
    """The program a ps line runs; for an interpreter, the script it runs
    (``/usr/bin/python3 -s /usr/sbin/firewalld --nofork`` is firewalld)."""
    words = args.split()
    if not words:
        return None
    name = PurePosixPath(words[0]).name
    if name.startswith(("python", "perl")) or name == "hyperkube":
        script = next((w for w in words[1:] if not w.startswith("-")), None)
        if script is not None:
            name = PurePosixPath(script).name
    return "kube-proxy" if name == "proxy" else name


def find_agents(processes: Sequence[Process]) -> tuple[Agent, ...]:
    """Running agents that manage rules needing conntrack.

    >>> find_agents([Process(812, "/usr/bin/dockerd -H fd:// --containerd=/run/c.sock")])[0].program
    'dockerd'
    """
    found: list[Agent] = []
    for process in processes:
        program = _program(process.args)
        if program in AGENTS:
            found.append(Agent(process.pid, program, process.args, AGENTS[program]))
    return tuple(found)


# -- modprobe.d ---------------------------------------------------------------------------
def _blocks(directive: ModprobeDirective) -> bool:
    return directive.install_program in ("false", "true")


def _where(d: ModprobeDirective) -> str:
    return f"{d.path}:{d.line}: {d.text.strip()}"


@dataclass(frozen=True)
class _Placement:
    name: str | None  # None: no name of ours is surely read first (``problem`` says why)
    existing: tuple[str, ...]
    blocked: bool  # nf_conntrack's first install line already stops every load
    problem: str | None = None


def _place(config: ModprobeConfig | Missing, blocked: Sequence[str]) -> _Placement:
    """A file name read before every other install line for ``blocked`` (kmod runs the
    first one it meets, files in name order), and what those lines are."""
    unread = (
        [config.reason]
        if isinstance(config, Missing)
        else [f"{path}: {why}" for path, why in config.unreadable]
    )
    if isinstance(config, Missing) or unread:
        why = f"modprobe.d not read ({'; '.join(unread)}): an install line read before ours"
        return _Placement(None, (), False, f"{why} would win, unseen")
    ours = {f"{MODPROBE_D}/{name}" for name in FILE_NAMES}
    existing: list[str] = []
    rivals: list[ModprobeDirective] = []
    for d in config.directives:
        hits = [m for m in blocked if fnmatchcase(m, d.module)]
        if not hits or d.path in ours or d.kind not in ("install", "blacklist"):
            continue
        if d.kind == "blacklist":
            existing.append(f"{_where(d)} (blacklist only stops loading by alias; the install"
                            " line does the job, this one can go)")  # fmt: skip
        elif _blocks(d):
            existing.append(f"{_where(d)} (already stops every load of {', '.join(hits)})")
        else:
            rivals.append(d)
    first = next(
        (
            d
            for d in config.directives
            if d.kind == "install" and fnmatchcase(NF_CONNTRACK, d.module)
        ),
        None,
    )
    already = first is not None and _blocks(first)
    for name in FILE_NAMES:
        if all(
            d.path != LEGACY_MODPROBE_CONF and name <= PurePosixPath(d.path).name for d in rivals
        ):
            existing += [f"{_where(d)} (read after {name}: ours wins)" for d in rivals]
            return _Placement(name, tuple(existing), already)
    existing += [f"{_where(d)} (read before any file ctguard can name)" for d in rivals]
    problem = "an install line for these modules is read before any file ctguard can name"
    return _Placement(None, tuple(existing), already, f"{problem} (see above): remove it first")


def _file(name: str, modules: Sequence[str], read: FileReader) -> WriteFile | None:
    path = f"{MODPROBE_D}/{name}"
    content = HEADER + "".join(f"install {m} /bin/false\n" for m in modules)
    after = content.encode()
    before = read(path)
    if before == after:
        return None
    why = "keeps nf_conntrack and what needs it out: every load fails (modprobe.d(5) install)"
    return WriteFile(path, before, after, 0o644, why, OURS, ("CT503", "CT504"))


# -- the plan -----------------------------------------------------------------------------
def _absent(_path: str) -> bytes | None:
    return None


def _modules(facts: Facts) -> Mapping[str, ModuleLine]:
    """/proc/modules; absent only where nothing is a module (DisableInputError otherwise)."""
    presence = facts.presence
    if presence.kind == "unknown":
        raise DisableInputError(f"cannot tell how nf_conntrack is present: {presence.evidence}")
    modules = facts.modules
    if isinstance(modules, Missing):
        absent = modules.reason.endswith("does not exist")
        if presence.kind == "module" or not absent:
            raise DisableInputError(f"{modules.reason}: the modules holding nf_conntrack are"
                                    " unknown")  # fmt: skip
        return {}
    return modules


def _rule_part(facts: Facts) -> tuple[tuple[RuleFate, ...], list[str]]:
    """Rule fates, and refusals for rules that could not be read."""
    if isinstance(facts.ruleset, Missing):
        return (), [f"rules not read ({facts.ruleset.reason}): what needs conntrack is unknown"]
    refusals = [
        f"rules not read ({gap}): what needs conntrack is unknown"
        for gap in facts.ruleset_gaps
        if not gap.endswith("is not installed")
        and not (IP6TABLES_SAVE in gap and _nft_covers_ipv6(facts))
    ]
    return rule_fates(facts.ruleset), refusals


def _nft_covers_ipv6(facts: Facts) -> bool:
    """An unreadable ip6tables-save hides no rule (model/ipv6_filter: nft was read and no
    legacy ip6tables table can exist)."""
    modules = facts.modules
    known = None if isinstance(modules, Missing) else frozenset(modules)
    return ipv6_filter_unread(facts.ruleset_gaps, known) is None


def _scope_note(facts: Facts) -> str:
    where = f"namespace {facts.netns}" if facts.netns else "the initial namespace"
    return (
        f"rules were read in {where} only; modules are global: a rule needing conntrack in"
        " any other namespace (containers) keeps it loaded too (check: ctguard disable"
        " --netns NAME)"
    )


def plan_disable(facts: Facts, read: FileReader = _absent) -> DisablePlan:
    """What keeps nf_conntrack loaded, and the plan that keeps it out (or why not).

    ``read``: current bytes of the modprobe.d file the plan writes (the caller reads it
    through HostRoot); the default assumes it does not exist.
    """
    modules = _modules(facts)
    presence = facts.presence
    holders = module_chain(modules, presence.holders) if presence.loaded else ()
    rules, refusals = _rule_part(facts)
    processes = facts.processes
    agents = () if isinstance(processes, Missing) else find_agents(processes)
    notes = [_scope_note(facts)]
    if isinstance(processes, Missing):
        notes.append(f"processes not read ({processes.reason}): agents unknown")
    elif facts.processes_cut:
        notes.append(facts.processes_cut)
    blocked = (NF_CONNTRACK, *(h.module for h in holders))
    placement = _place(facts.modprobe, blocked)
    chain = DisablePlan(
        live=facts.live,
        netns=facts.netns,
        kernel=facts.kernel.release if isinstance(facts.kernel, KernelVersion) else None,
        presence=presence.kind,
        evidence=presence.evidence,
        holders=holders,
        rules=rules,
        agents=agents,
        unload_order=(),
        modprobe_file=None,
        existing=placement.existing,
        refusals=(),
        notes=(),
    )
    if presence.kind == "builtin":
        if not (rules or agents or refusals) and hooks_on_demand(facts):
            notes.insert(0, "nf_conntrack is built into this kernel and cannot be unloaded, but"
                         " no rule needs it: this kernel registers conntrack hooks only for a"
                         " ruleset that needs them, so nothing is tracked and there is nothing"
                         " to do (should a rule need it later: ctguard notrack --all)")  # fmt: skip
            return replace(chain, notes=_notes(notes))
        why = (f"nf_conntrack is built into this kernel ({presence.evidence}): it cannot be"
               " unloaded and no modprobe.d line keeps it out; stop tracking instead:"
               " ctguard notrack --all")  # fmt: skip
        if any(r.verdict == BLOCKER and "NAT" in r.reason for r in rules):
            notes.append("NAT needs conntrack: notrack --all cannot cover NATed flows")
        return replace(chain, refusals=(why,), notes=_notes(notes))
    refusals += [f"{r.rule}: {r.reason}" for r in rules if r.verdict == BLOCKER]
    refusals += [f"{a.program} (pid {a.pid}) is running: {a.why}" for a in agents]
    refusals += _silent_refusals(holders)
    if placement.problem is not None:
        refusals.append(placement.problem)
    if refusals:
        return replace(chain, refusals=tuple(refusals), notes=_notes(notes))
    if not presence.loaded and placement.blocked:
        notes.insert(0, "nf_conntrack is not loaded and an install line keeps it out:"
                     " nothing to do")  # fmt: skip
        return replace(chain, notes=_notes(notes))
    notes += _module_notes(holders, modules.get(NF_CONNTRACK))
    notes += _boot_notes(facts, blocked)
    notes.append("afterwards whatever asks for conntrack (conntrack -L, an iptables -m state"
                 " rule, docker) fails to load it: that is the point")  # fmt: skip
    name = placement.name or FILE_NAMES[0]
    file = _file(name, blocked, read)
    if file is None:
        notes.insert(0, f"{MODPROBE_D}/{name} is already in place")
    return replace(
        chain,
        unload_order=unload_order(modules, blocked) if presence.loaded else (),
        modprobe_file=file,
        notes=_notes(notes),
    )


def _notes(texts: Sequence[str]) -> tuple[Note, ...]:
    return tuple(Note(text) for text in texts)


def _boot_notes(facts: Facts, blocked: Sequence[str]) -> list[str]:
    """Lines that load a module at boot: with install /bin/false that load fails loudly."""
    if isinstance(facts.boot_modules, Missing):
        return []
    return [
        f"{b.path}:{b.line} loads {b.module} at boot: remove that line (the load would fail)"
        for b in facts.boot_modules
        if b.module in blocked
    ]

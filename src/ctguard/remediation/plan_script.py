"""A plan as a POSIX shell script, for a host that cannot run ctguard (pure: plan in, text out).

The script carries the bytes ``apply`` would write (each ``WriteFile.after``, made by the
same planner), never editing logic of its own: the shell only checks, backs up, writes the
precomputed bytes, renames, sets the runtime values and reads them back. The steps are
``apply``'s (docs/design.md §9), in its order:

1. check every file and runtime value: each must still be what the plan was made from (its
   checksum: ``sha256sum``, else POSIX ``cksum``), or already what the plan makes it (then
   it is skipped, so a second run changes nothing); otherwise nothing is changed and one
   line names what moved (exit 2);
2. make the backup directory and write ``undo.sh`` there, before the first change;
3. back up every file and runtime value about to change (a backup is never replaced: a run
   after an interrupted one keeps the first backups);
4. write each file through a temporary file in its own directory (the old file's mode,
   owner and SELinux label, checked against the planned checksum, flushed to disk), then
   ``mv`` it over the file (a new file gets its label from ``restorecon``);
5. set the runtime values, then read each back; a value the kernel does not take runs the
   undo script (exit 3).

With ``CTGUARD_ROOT=DIR`` the script works on a copy of the host's tree: its files, and the
runtime values in ``DIR/proc/sys`` and ``DIR/sys`` (replaced like files, as
``apply --root`` does); the real ``/proc/sys`` is never touched then.

POSIX sh only (dash, bash, busybox ash): ``printf`` with octal escapes carries any bytes.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence

from ctguard import __version__
from ctguard.remediation.changes import HASH_SIZE_FILES, SetSysctl, WriteFile, sha256
from ctguard.remediation.plan import Plan
from ctguard.remediation.plan_file import HostIdentity
from ctguard.remediation.posix_cksum import posix_cksum

STATE_BASE = "/var/lib/ctguard/plan-sh"  # under the root prefix; CTGUARD_BACKUP_DIR moves it
UNDO_END = "CTGUARD_UNDO_END"
_CHUNK = 96  # input bytes per printf: lines stay short enough to read and review

# Exit codes, as ctguard's: 2 refused (the host is not the one planned), 3 error.
REFUSED = 2
ERROR = 3


def q(text: str) -> str:
    """One shell word for ``text``."""
    return shlex.quote(text)


def _printf_word(chunk: bytes) -> str:
    """A single-quoted printf format that prints exactly ``chunk``: printable ASCII as is,
    every other byte (and ``'``, ``\\``, ``%`` and a leading ``-``) as a 3-digit octal
    escape, which POSIX printf formats support in every shell."""
    out = []
    for index, byte in enumerate(chunk):
        char = chr(byte)
        if char == "%":
            out.append("%%")
        elif 0x20 <= byte < 0x7F and char not in "'\\" and not (index == 0 and char == "-"):
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return "'" + "".join(out) + "'"


def printf_lines(data: bytes) -> list[str]:
    """``printf`` commands that together print ``data``, one per line of it (long lines
    split); ``:`` for nothing."""
    lines: list[str] = []
    for line in data.splitlines(keepends=True):
        for start in range(0, len(line), _CHUNK):
            lines.append(f"printf {_printf_word(line[start : start + _CHUNK])}")
    return lines or [":"]


def _sums(data: bytes | None) -> tuple[str, str]:
    """(sha256, cksum) as the script's ``sum_of`` prints them; "absent" for no file."""
    if data is None:
        return "absent", "absent"
    return str(sha256(data)), posix_cksum(data)


def _mirror(change: SetSysctl) -> str:
    """The other file a tree keeps for the same kernel variable (the hash size has two)."""
    others = [p for p in HASH_SIZE_FILES if change.path in HASH_SIZE_FILES and p != change.path]
    return others[0] if others else ""


def _parents(path: str) -> list[str]:
    """The directories above a host path, outermost first, without ``/``."""
    parts = path.split("/")[1:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


# -- the script's shell functions --------------------------------------------------------
_COMMON = r"""
# as root from cron or su, PATH may lack sbin, where selinuxenabled and restorecon live
PATH=$PATH:/usr/sbin:/sbin
export PATH
say() { printf 'ctguard: %s\n' "$*"; }
die() { code=$1; shift; printf 'ctguard: %s\n' "$*" >&2; exit "$code"; }
if command -v sha256sum >/dev/null 2>&1; then SUM="sha256"
elif command -v cksum >/dev/null 2>&1; then SUM="cksum"
else die 3 "neither sha256sum nor cksum is here: nothing was changed"; fi
# sum_of FILE: its checksum (sha256, or POSIX cksum "CRC LENGTH"), "absent" when missing
sum_of() {
  if [ ! -e "$1" ] && [ ! -h "$1" ]; then echo absent; return 0; fi
  if [ "$SUM" = sha256 ]; then s=$(sha256sum < "$1"); echo "${s%% *}"
  else s=$(cksum < "$1"); echo "$s" | tr -s ' \t' '  '; fi
}
# value_of FILE: the number in a runtime file, blanks removed, in V
value_of() {
  [ -r "$1" ] || return 1
  V=$(tr -d ' \t\n' < "$1")
}
# temp_of FILE: the temporary name beside it, in T
temp_of() { T="${1%/*}/.${1##*/}.ctguard-new"; }
# on_disk FILE: FILE's bytes reach the disk before it is renamed over another: dd copies
# nothing into it, then fsyncs it (conv=fsync: coreutils 6+, busybox; its time stays as
# cp -p kept it); where dd cannot, sync (every filesystem, slower)
on_disk() {
  dd if=/dev/null of="$1" conv=notrunc,fsync 2>/dev/null || sync
}
# SELinux: a file made beside another gets the directory's label, not the file's
# (/etc/sysconfig/iptables-config is system_conf_t, /etc/sysconfig etc_t); labeled
# TEMP FILE gives TEMP the label FILE has, before TEMP replaces it, and relabel FILE gives
# a file that was not there before the label the policy gives its path
selinux_on() {
  command -v selinuxenabled >/dev/null 2>&1 && selinuxenabled 2>/dev/null
}
labeled() {
  if [ -e "$2" ] && selinux_on && command -v chcon >/dev/null 2>&1; then
    chcon --reference="$2" "$1" 2>/dev/null ||
      printf 'ctguard: could not copy the SELinux label of %s; run restorecon on it\n' "$2" >&2
  fi
}
relabel() {
  if selinux_on && command -v restorecon >/dev/null 2>&1; then
    restorecon "$1" 2>/dev/null ||
      printf 'ctguard: restorecon %s failed; run it by hand\n' "$1" >&2
  fi
}
# put_back BACKUP FILE: FILE gets BACKUP's bytes, mode, owner (and FILE's label), by rename
put_back() {
  temp_of "$2"
  rm -f "$T"
  cp -p "$1" "$T"
  on_disk "$T"
  if [ -e "$2" ]; then labeled "$T" "$2"; mv -f "$T" "$2"
  else mv -f "$T" "$2"; relabel "$2"; fi
}
"""

_UNDO_BODY = r"""
FAILED=0
# undo_file N PATH AFTER_SHA256 AFTER_CKSUM: the backup back, or remove what the script
# created; a file edited since the script wrote it is left as it is (CTGUARD_FORCE=1: undone
# anyway), as `ctguard rollback` refuses to undo over an edit
undo_file() {
  p=$R$2
  temp_of "$p"
  if [ "$SUM" = sha256 ]; then a=$3; else a=$4; fi
  now=$(sum_of "$p")
  if [ -f "$B/files/$1" ]; then was=$(sum_of "$B/files/$1")
  elif [ -f "$B/files/$1.absent" ]; then was=absent
  else rm -f "$T"; return 0; fi
  if [ "$now" != "$a" ] && [ "$now" != "$was" ] && [ "${CTGUARD_FORCE:-}" != 1 ]; then
    printf 'ctguard: %s was changed after the script wrote it: left as it is (undo it by' "$2" >&2
    printf ' hand, or run this again with CTGUARD_FORCE=1)\n' >&2
    rm -f "$T"; FAILED=1; return 0
  fi
  if [ "$was" = absent ]; then rm -f "$T" "$p"; say "removed $2"
  else put_back "$B/files/$1" "$p"; say "restored $2"; fi
}
# undo_value N PATH: the runtime value back (a tree's file byte for byte)
undo_value() {
  p=$R$2
  [ -f "$B/runtime/$1" ] || return 0
  if [ -n "$R" ]; then put_back "$B/runtime/$1" "$p"; say "restored $2"; return 0; fi
  value_of "$B/runtime/$1"; was=$V
  if printf '%s\n' "$was" > "$p" && value_of "$p" && [ "$V" = "$was" ]; then
    say "set $2 back to $was"
  else
    printf 'ctguard: could not set %s back to %s\n' "$2" "$was" >&2; FAILED=1
  fi
}
# undo_dirs: the directories the script made, newest first, when empty
undo_dirs() {
  [ -f "$B/dirs" ] || return 0
  sed -n '1!G;h;$p' "$B/dirs" | while IFS= read -r d; do
    if [ -d "$R$d" ] && [ -z "$(ls -A "$R$d")" ]; then rmdir "$R$d"; fi
  done
}
"""

_MAIN_FUNCTIONS = r"""
N=0
# step: a point between two changes, counted (the tests stop the script at each one)
step() {
  N=$((N + 1))
}
# check_file PATH BEFORE_SHA256 BEFORE_CKSUM AFTER_SHA256 AFTER_CKSUM: sets S to
# "before" or "after", or refuses
check_file() {
  p=$R$1
  if [ -h "$p" ] || { [ -e "$p" ] && [ ! -f "$p" ]; }; then
    die 2 "$1 is not a regular file: nothing was changed"
  fi
  # in a tree, a linked directory on the way could lead the write out of it
  d=${1%/*}
  while [ -n "$R" ] && [ -n "$d" ]; do
    [ -h "$R$d" ] && die 2 "$d is a link in the tree $R: nothing was changed"
    d=${d%/*}
  done
  if [ "$SUM" = sha256 ]; then b=$2 a=$4; else b=$3 a=$5; fi
  now=$(sum_of "$p")
  if [ "$now" = "$a" ]; then S=after
  elif [ "$now" = "$b" ]; then S=before
  else
    die 2 "$1 changed since the plan was made ($SUM $now, the plan expects $b): nothing" \
      "was changed; is this the host the plan was made for? Make a new plan from a fresh" \
      "snapshot"
  fi
}
# check_value NAME PATH BEFORE AFTER: sets S to "before" or "after", or refuses
check_value() {
  value_of "$R$2" || die 3 "cannot read $2: nothing was changed"
  if [ "$V" = "$4" ]; then S=after
  elif [ -z "$3" ] || [ "$V" = "$3" ]; then S=before
  else
    die 2 "$1 ($2) is $V now, the plan was made when it was $3: nothing was changed;" \
      "make a new plan from a fresh snapshot"
  fi
}
# backup_file N PATH: keep the bytes (or the absence) of PATH, once
backup_file() {
  if [ -e "$B/files/$1" ] || [ -e "$B/files/$1.absent" ]; then return 0; fi
  if [ -e "$R$2" ]; then
    cp -p "$R$2" "$B/files/$1.new"
    on_disk "$B/files/$1.new"
    step
    mv -f "$B/files/$1.new" "$B/files/$1"
  else
    : > "$B/files/$1.absent"
  fi
  step
}
# backup_value N PATH: keep a runtime value (a tree's file byte for byte), once
backup_value() {
  if [ -e "$B/runtime/$1" ]; then return 0; fi
  if [ -n "$R" ]; then cp -p "$R$2" "$B/runtime/$1.new"
  else cat "$2" > "$B/runtime/$1.new"; fi
  mv -f "$B/runtime/$1.new" "$B/runtime/$1"
  step
}
# make_dir DIR: a directory the plan needs, listed for the undo before it is made
make_dir() {
  [ -d "$R$1" ] && return 0
  printf '%s\n' "$1" >> "$B/dirs"
  step
  mkdir -m 755 "$R$1"
  step
}
# write_file PATH MODE CONTENT AFTER_SHA256 AFTER_CKSUM: PATH gets the bytes CONTENT
# prints, through a temporary file beside it (an existing file's mode and owner kept)
write_file() {
  p=$R$1
  temp_of "$p"
  rm -f "$T"
  if [ -e "$p" ]; then cp -p "$p" "$T"; "$3" > "$T"
  else "$3" > "$T"; chmod "$2" "$T"; fi
  on_disk "$T"
  if [ "$SUM" = sha256 ]; then want=$4; else want=$5; fi
  got=$(sum_of "$T")
  if [ "$got" != "$want" ]; then
    rm -f "$T"
    die 3 "this shell wrote other bytes than planned for $1 ($SUM $got, not $want):" \
      "run it with another shell (dash, bash); $1 was left as it was"
  fi
  if [ -e "$p" ]; then labeled "$T" "$p"; fi
  step
  if [ -e "$p" ]; then mv -f "$T" "$p"
  else mv -f "$T" "$p"; relabel "$p"; fi
  say "wrote $1"
  step
}
# set_value NAME PATH VALUE READS_BACK: a tree's file is replaced, a kernel's written
set_value() {
  if [ -n "$R" ]; then
    p=$R$2
    temp_of "$p"
    rm -f "$T"
    cp -p "$p" "$T"
    printf '%s\n' "$4" > "$T"
    mv -f "$T" "$p"
  else
    printf '%s\n' "$3" > "$2" || :
  fi
  step
  value_of "$R$2" || V=unreadable
  if [ "$V" != "$4" ]; then
    trap - EXIT
    printf 'ctguard: %s reads back %s, not %s: putting everything back\n' "$1" "$V" "$4" >&2
    if sh "$B/undo.sh"; then exit 3; fi
    die 3 "the undo failed too (see above); backups are in $B"
  fi
  say "set $1 to $4"
}
# A tree keeps the hash size in two files (a kernel, one variable behind both): the second
# one, its MIRROR, follows the first. mirror_differs MIRROR VALUE: true when a tree's
# mirror exists and holds another value
mirror_differs() {
  [ -n "$R" ] && [ -f "$R$1" ] || return 1
  value_of "$R$1" || return 0
  [ "$V" != "$2" ]
}
# mirror_backup N MIRROR VALUE: keep it, once, when it is to change
mirror_backup() { if mirror_differs "$2" "$3"; then backup_value "$1" "$2"; fi; }
# mirror_set MIRROR VALUE
mirror_set() { if mirror_differs "$1" "$2"; then set_value "${1##*/} (mirror)" "$1" "$2" "$2"; fi; }
# owned_dir DIR [sticky]: DIR (the backups, the undo script root may run later) is this
# user's alone: a directory, not a link, owned by us, writable by nobody else; "sticky": a
# parent such as /tmp may be writable by all if sticky (no one can rename our entries)
owned_dir() {
  [ -e "$1" ] || return 0
  bad=
  if [ -h "$1" ] || [ ! -d "$1" ]; then bad=1
  elif [ -n "$(find "$1" -prune ! -user "$(id -u)" 2>/dev/null)" ] &&
       { [ -z "${2:-}" ] || [ -n "$(find "$1" -prune ! -user 0 2>/dev/null)" ]; }; then bad=1
  elif [ -n "$(find "$1" -prune \( -perm -020 -o -perm -002 \) 2>/dev/null)" ]; then
    if [ -z "${2:-}" ] || [ -z "$(find "$1" -prune -perm -1000 2>/dev/null)" ]; then bad=1; fi
  fi
  [ -z "$bad" ] || die 3 "$1 is not this user's alone (a link, another owner, or writable" \
    "by others): the backups and the undo script cannot be kept there; set" \
    "CTGUARD_BACKUP_DIR elsewhere"
}
# check_host NAME: the plan was made for NAME; another host is refused (CTGUARD_ANY_HOST=1:
# on purpose, such as a clone)
check_host() {
  [ "${CTGUARD_ANY_HOST:-}" = 1 ] && return 0
  h=$(cat "$R/proc/sys/kernel/hostname" 2>/dev/null) || h=
  [ "$h" = "$1" ] || die 2 "this host is ${h:-unknown}, the plan was made for $1: nothing was" \
    "changed (CTGUARD_ANY_HOST=1 runs it anyway)"
}
# quoted WORD: WORD as one single-quoted shell word
quoted() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
"""


def comment_text(text: str) -> str:
    r"""``text`` fit for a shell comment: printable ASCII only, so a newline in a snapshot's
    hostname or path cannot end the comment and start a command run as root.

    >>> comment_text("web03\ntouch /tmp/x #")
    'web03?touch /tmp/x #'
    """
    return "".join(c if " " <= c <= "~" else "?" for c in text)


def _header(plan: Plan, identity: HostIdentity, plan_id: str, checksum: str) -> list[str]:
    host = comment_text(identity.hostname or "?")
    made_from = comment_text(identity.root) if identity.root != "/" else "the host itself"
    fixes = " ".join(plan.addresses) or "none"
    return [
        "#!/bin/sh",
        f"# ctguard {__version__} plan for {host}, made from {made_from}",
        f"# plan checksum {checksum}",
        f"# fixes: {fixes}",
        "#",
        "# Run as root on that host: sh THIS-FILE. It changes nothing unless every file and",
        "# value it changes is still what the plan was made from (exit 2 names what moved).",
        f"# Backups and undo.sh go to {STATE_BASE}/{plan_id}/ (or $CTGUARD_BACKUP_DIR);",
        "# undo: sh that undo.sh. Stopped half-way? Run this again to finish, or the undo.",
        "# CTGUARD_ROOT=DIR: work on a copy of the host's tree instead, its runtime values",
        "# too (DIR/proc/sys, DIR/sys); the real /proc/sys is then never touched.",
        "# Exit codes: 0 done (or nothing to do), 2 refused, 3 error.",
        "set -eu",
        "umask 077",
    ]


def _setup(plan_id: str) -> list[str]:
    return [
        'R=${CTGUARD_ROOT:-}',
        'if [ -n "$R" ]; then',
        '  [ -d "$R" ] || die 3 "CTGUARD_ROOT=$R is not a directory: nothing was changed"',
        '  R=$(cd "$R" && pwd -P)',
        '  [ "$R" = / ] && R=',
        "fi",
        'if [ -z "$R" ] && [ "$(id -u)" != 0 ]; then',
        '  die 3 "run as root (or set CTGUARD_ROOT to a tree): nothing was changed"',
        "fi",
        f'B=${{CTGUARD_BACKUP_DIR:-$R{STATE_BASE}/{plan_id}}}',
    ]  # fmt: skip


def _undo_script(files: Sequence[WriteFile], sysctls: Sequence[SetSysctl]) -> list[str]:
    """The undo script's body (R and B are written above it when it is made): runtime
    values newest first, then files newest first, then the directories made."""
    lines = ["set -eu", "umask 077", *_COMMON.strip().splitlines()]
    lines += _UNDO_BODY.strip().splitlines()
    for index in reversed(range(len(sysctls))):
        change = sysctls[index]
        if _mirror(change):
            lines.append(f"undo_value {index + 1}.m {q(_mirror(change))}")
        lines.append(f"undo_value {index + 1} {q(change.path)}")
    for index in reversed(range(len(files))):
        after = " ".join(q(x) for x in _sums(files[index].after))
        lines.append(f"undo_file {index + 1} {q(files[index].path)} {after}")
    lines += [
        "undo_dirs",
        '[ "$FAILED" = 0 ] || exit 3',
        'say "put back what the plan changed (backups kept in $B)"',
    ]
    return lines


def plan_script(plan: Plan, identity: HostIdentity, checksum: str) -> str:
    """The whole script: checks, undo script, backups, writes, runtime values."""
    plan_id = checksum[:16]
    files, sysctls = list(plan.files), list(plan.sysctls)
    out = _header(plan, identity, plan_id, checksum)
    out += _COMMON.strip().splitlines() + _MAIN_FUNCTIONS.strip().splitlines()
    for index, change in enumerate(files, 1):
        out.append(f"content_{index}() {{")
        out += [f"  {line}" for line in printf_lines(change.after)]
        out.append("}")
    out += _setup(plan_id)
    if not files and not sysctls:
        out += ['say "the plan changes nothing"', "exit 0"]
        return "\n".join(out) + "\n"
    out += ["", "# 1. check everything before changing anything", "TODO="]
    if identity.hostname:
        # stock files are alike across a fleet: the checksums alone would not tell web04
        out.append(f"check_host {q(identity.hostname)}")
    for index, change in enumerate(files, 1):
        before, after = _sums(change.before), _sums(change.after)
        args = " ".join(q(x) for x in (change.path, *before, *after))
        out += [f"check_file {args}", f'F{index}=$S; [ "$S" = after ] || TODO=1']
    for index, setting in enumerate(sysctls, 1):
        was = "" if setting.before is None else str(setting.before)
        args = " ".join(q(x) for x in (setting.name, setting.path, was, str(setting.reads_back)))
        out += [f"check_value {args}", f'V{index}=$S; [ "$S" = after ] || TODO=1']
        if _mirror(setting):
            out.append(
                f"mirror_differs {q(_mirror(setting))} {q(str(setting.reads_back))} && TODO=1"
            )
    out += [
        'if [ -z "$TODO" ]; then say "everything is in place already"; exit 0; fi',
        "step",
        "",
        "# 2. the backup directory and the undo script, before the first change",
        "st=0",
        'trap \'st=$?; [ "$st" = 0 ] || printf "ctguard: stopped (exit %s): run this script'
        ' again to finish, or sh %s to put back what it changed\\n" "$st" "$B/undo.sh"'
        " >&2' EXIT",
        'owned_dir "${B%/*}" sticky',
        'mkdir -p "$B/files" "$B/runtime"',
        'for d in "$B" "$B/files" "$B/runtime"; do owned_dir "$d"; done',
        "step",
        "{",
        '  printf "#!/bin/sh\\n# ctguard: undo %s\\nR=%s\\nB=%s\\n" '
        f'{q(checksum)} "$(quoted "$R")" "$(quoted "$B")"',
        f"  cat <<'{UNDO_END}'",
        *_undo_script(files, sysctls),
        UNDO_END,
        '} > "$B/.undo.sh.new"',
        'mv -f "$B/.undo.sh.new" "$B/undo.sh"',
        "step",
        "",
        "# 3. backups",
    ]
    for index, change in enumerate(files, 1):
        out.append(f'[ "$F{index}" = after ] || backup_file {index} {q(change.path)}')
    for index, setting in enumerate(sysctls, 1):
        guard = f'[ "$V{index}" = after ] ||'
        out.append(f"{guard} backup_value {index} {q(setting.path)}")
        if _mirror(setting):
            args = f"{index}.m {q(_mirror(setting))} {q(str(setting.reads_back))}"
            out.append(f"mirror_backup {args}")
    out += ["", "# 4. files, each by rename"]
    made: list[str] = []
    for index, change in enumerate(files, 1):
        if change.before is None:
            dirs = [d for d in _parents(change.path) if d not in made]
            made += dirs
            out += [f'[ "$F{index}" = after ] || make_dir {q(d)}' for d in dirs]
        args = " ".join(
            q(x)
            for x in (
                change.path,
                f"{change.mode:04o}",
                f"content_{index}",
                *_sums(change.after)[:2],
            )
        )
        out.append(f'[ "$F{index}" = after ] || write_file {args}')
    out += ["", "# 5. runtime values, once the files that keep them are in place"]
    for index, setting in enumerate(sysctls, 1):
        args = " ".join(
            q(x) for x in (setting.name, setting.path, str(setting.after), str(setting.reads_back))
        )
        out.append(f'[ "$V{index}" = after ] || set_value {args}')
        if _mirror(setting):
            out.append(f"mirror_set {q(_mirror(setting))} {q(str(setting.reads_back))}")
    out += ["", 'say "done; undo: sh $B/undo.sh"']
    return "\n".join(_strip(out)) + "\n"


def _strip(lines: Iterable[str]) -> list[str]:
    return [line.rstrip() for line in lines]

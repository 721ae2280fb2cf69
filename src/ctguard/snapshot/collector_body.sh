# The body of the POSIX sh collector (ctguard collector): ctguard/snapshot/collector.py
# prints the snapshot layout (paths, programs, caps) above it. Only POSIX sh and the usual
# tools (awk, sed, tar, gzip, head, tail, mktemp), so it runs under bash 4.1 (CentOS 6),
# dash and busybox ash; `local` is the one extension used, and all three have it.
# ---- helpers --------------------------------------------------------------------------
say() { printf '%s\n' "ctguard-collect: $*" >&2; }
die() { say "error: $*"; exit 3; }  # as ctguard: 3 could not do it, bad usage

usage() {
    cat <<'EOF'
usage: sh ctguard-collect.sh [-o DIR] [--redact] [--no-table]

Writes DIR/ctguard-<host>-<UTC time>.tar.gz, the same snapshot `ctguard snapshot` writes:
read it elsewhere with `ctguard doctor --root FILE`. Runs as root or not (what it could
not read is listed in the archive's ctguard_manifest.json, with why).

  -o DIR       where to write the archive (default: the current directory)
  --redact     replace IP addresses in the table, logs, dmesg and ip addr with tokens
  --no-table   skip the conntrack table dump (it can be hundreds of MB)
  --netns NAME capture the named network namespace (ip netns list), as root
  CTGUARD_ROOT=/path   read host files under /path instead of / (a copied tree); the
               programs (iptables-save, conntrack, ip, dmesg, ...) are then not run, as
               they would read this host: the manifest lists each as not run
  CTGUARD_TREE_COMMANDS=1  with CTGUARD_ROOT, run the programs anyway (their output is
               this host's, mixed into the tree's snapshot)
EOF
}

OUT_DIR=.
NETNS=
INNER=${CTGUARD_COLLECT_INNER:-}  # set by this script when it runs itself in a namespace
TABLE=1
REDACT=0
while [ $# -gt 0 ]; do
    case $1 in
    -o) [ $# -ge 2 ] || die "-o needs a directory"; OUT_DIR=$2; shift 2 ;;
    -o*) OUT_DIR=${1#-o}; shift ;;
    --redact) REDACT=1; shift ;;
    --no-table) TABLE=0; shift ;;
    --netns) [ $# -ge 2 ] || die "--netns needs a name"; NETNS=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done

R=${CTGUARD_ROOT:-}
while [ -n "$R" ] && [ "${R%/}" != "$R" ]; do R=${R%/}; done
if [ -n "$R" ] && [ ! -d "$R" ]; then die "CTGUARD_ROOT=$R is not a directory"; fi
# a copied tree's snapshot must not silently hold this host's program output
PROGRAMS=1
if [ -n "$R" ] && [ "${CTGUARD_TREE_COMMANDS:-}" != 1 ]; then PROGRAMS=; fi
# as a plain user or from cron PATH often lacks the sbin directories, and iptables-save or
# conntrack would be "not installed": on a live host the usual directories are appended (a
# caller's own come first). A copied tree uses PATH as given.
if [ -z "$R" ]; then
    for d in /usr/local/sbin /usr/sbin /sbin /usr/local/bin /usr/bin /bin; do
        case :$PATH: in *:"$d":*) ;; *) PATH=$PATH:$d ;; esac
    done
    export PATH
fi
[ -d "$OUT_DIR" ] || die "-o $OUT_DIR: no such directory"
# absolute: the archive is made from inside the snapshot tree (cd), and a relative -o
# (the default ".") would then name another directory
OUT_DIR=$(cd "$OUT_DIR" && pwd -P) || die "-o: cannot enter that directory"

# CTGUARD_COLLECT_INNER comes from the environment: trusted only as the temporary directory
# an outer run of this script made in -o for --netns (a stray value had the script write
# into, and keep, whatever directory it named)
inner_ok() {
    local d me
    [ -n "$NETNS" ] || return 1
    case $INNER in "$OUT_DIR"/.ctguard-collect.*) ;; *) return 1 ;; esac
    case ${INNER#"$OUT_DIR"/} in */*) return 1 ;; esac
    me=$(id -u) || return 1
    for d in "$INNER" "$INNER/snap" "$INNER/work"; do
        [ -d "$d" ] && [ ! -h "$d" ] || return 1
        # the owner's uid from ls -n (POSIX; test -O is not)
        # shellcheck disable=SC2012  # one path given, only its uid field is read
        [ "$(ls -dn "$d" | awk '{ print $3 }')" = "$me" ] || return 1
    done
    # and the secret the outer run wrote there and passed to this run alone
    [ -n "${CTGUARD_COLLECT_TOKEN:-}" ] && [ -f "$INNER/work/inner-token" ] &&
        [ "$(cat "$INNER/work/inner-token")" = "$CTGUARD_COLLECT_TOKEN" ]
}
if [ -n "$INNER" ] && ! inner_ok; then
    die "CTGUARD_COLLECT_INNER=$(printf '%s' "$INNER" | tr '\n' '?') is not the directory an outer run made (a .ctguard-collect.* of yours in -o, with snap and work, and --netns): unset it"
fi

TMP=
CHILD=
WATCH=
cleanup() {
    if [ -n "$CHILD" ]; then kill "$CHILD" 2>/dev/null; fi
    if [ -n "$WATCH" ]; then kill "$WATCH" 2>/dev/null; fi
    if [ -n "$TMP" ] && [ -z "$INNER" ]; then rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
if [ -n "$INNER" ]; then
    TMP=$INNER
    S=$TMP/snap
    W=$TMP/work
else
    TMP=$(mktemp -d "$OUT_DIR/.ctguard-collect.XXXXXX" 2>/dev/null) ||
        die "-o $OUT_DIR: cannot write there (read-only or not permitted); choose another -o DIR"
    S=$TMP/snap   # the snapshot tree
    W=$TMP/work   # scratch
    mkdir "$S" "$W" || die "-o $OUT_DIR: cannot write there"
    : >"$W/captured"
    : >"$W/absent"
    : >"$W/failed"
    : >"$W/links"
    : >"$W/map"
fi

captured() { printf '%s\n' "$1" >>"$W/captured"; }
absent() { printf '%s\n' "$1" >>"$W/absent"; }
failed() { printf '%s\t%s\n' "$(printf '%s' "$1" | tr '\t' '?')" "$2" >>"$W/failed"; }  # one tab a record
is_captured() { grep -qxF -e "$1" "$W/captured"; }
dest() { mkdir -p "$S${1%/*}" && printf '%s' "$S$1"; }

# the first line of a program's complaint, as ctguard words it
first_line() {
    tr -d '\000\r' <"$1" | sed -n '/[^[:space:]]/{s/^[[:space:]]*//;s/[[:space:]]*$//;p;q;}' |
        head -c 500
}
why_unreadable() {
    if [ ! -r "$1" ]; then echo "Permission denied"; else echo "could not be read"; fi
}
size_of() { wc -c <"$1" | tr -d ' '; }

# not_run WHERE PROG: in a copied tree, record that PROG was not run (and succeed)
not_run() {
    [ -z "$PROGRAMS" ] || return 1
    failed "$1" "not run: CTGUARD_ROOT is a copied tree and $2 would read this host (CTGUARD_TREE_COMMANDS=1 runs it)"
}

HAVE_TIMEOUT=
# GNU timeout (coreutils 7+, CentOS 6 has 8.4) exits 124 when it killed the program;
# busybox's does not say, so there the background watcher below is used
if timeout --version 2>/dev/null | grep -q coreutils; then HAVE_TIMEOUT=1; fi

# bounded SECS OUT ERR PROG ARGS...: run with stdin closed, killed after SECS; $? is its
# status, 124 when it timed out. In the background, so that a signal to the script is
# handled at once (cleanup kills the program) rather than after the program ends.
bounded() {
    local secs out err rc
    secs=$1 out=$2 err=$3
    shift 3
    if [ -n "$HAVE_TIMEOUT" ]; then
        timeout "$secs" "$@" >"$out" 2>"$err" </dev/null &
        CHILD=$!
        wait "$CHILD"
        rc=$?
        CHILD=
        return "$rc"
    fi
    rm -f "$W/expired"
    "$@" >"$out" 2>"$err" </dev/null &
    CHILD=$!
    # the watcher looks once a second (no trap: killed at any moment, it leaves at most
    # a sleep of 1 s behind, and never a false "expired")
    (
        i=0
        while [ "$i" -lt "$secs" ]; do
            sleep 1
            kill -0 "$CHILD" 2>/dev/null || exit 0
            i=$((i + 1))
        done
        : >"$W/expired"
        kill -9 "$CHILD" 2>/dev/null
    ) >/dev/null 2>&1 &
    WATCH=$!
    wait "$CHILD" 2>/dev/null  # the shell's "Killed" job notice: the manifest says it
    rc=$?
    kill "$WATCH" 2>/dev/null
    wait "$WATCH" 2>/dev/null
    CHILD='' WATCH=''
    if [ -e "$W/expired" ]; then return 124; fi
    return "$rc"
}

# ---- paths inside the root ------------------------------------------------------------
# norm PATH: an absolute path without ".", ".." or "//"
norm() {
    local rest="$1" out="" part
    while [ -n "$rest" ]; do
        case $rest in */*) part=${rest%%/*}; rest=${rest#*/} ;; *) part=$rest; rest= ;; esac
        case $part in
        "" | .) ;;
        ..) out=${out%/*} ;;
        *) out=$out/$part ;;
        esac
    done
    printf '%s' "${out:-/}"
}

# realp PATH: the host path PATH names once links are followed inside the root (as
# HostRoot.realpath); fails after 40 links
realp() {
    local rest="$1" done="" part links=0 target
    while [ -n "$rest" ]; do
        case $rest in */*) part=${rest%%/*}; rest=${rest#*/} ;; *) part=$rest; rest= ;; esac
        case $part in
        "" | .) continue ;;
        ..) done=${done%/*}; continue ;;
        esac
        if [ -L "$R$done/$part" ]; then
            links=$((links + 1))
            [ "$links" -le 40 ] || return 1
            target=$(readlink "$R$done/$part") || return 1
            case $target in /*) done= ;; esac
            rest=$target/$rest
            continue
        fi
        done=$done/$part
    done
    printf '%s' "${done:-/}"
}

# relto BASE PATH: PATH relative to the directory BASE (both normalized absolute)
relto() {
    local base="$1" path="$2" up=""
    [ "$base" = / ] && base=
    while :; do
        case $path/ in "$base"/*) break ;; esac
        base=${base%/*}
        up=../$up
    done
    local tail="${path#"$base"}"
    tail=${tail#/}
    local rel="$up$tail"
    rel=${rel%/}
    printf '%s' "${rel:-.}"
}

# the link's target, made relative and kept inside the snapshot
relative_link() {
    local target base abs
    target=$(readlink "$R$1") || return 1
    base=${1%/*}
    base=${base:-/}
    case $target in /*) abs=$target ;; *) abs=$base/$target ;; esac
    relto "$base" "$(norm "$abs")"
}

add_link() {
    local rel
    grep -qxF -e "$1" "$W/links" && return 0
    printf '%s\n' "$1" >>"$W/links"
    rel=$(relative_link "$1") || { failed "$1" "could not read the link"; return 1; }
    ln -s "$rel" "$(dest "$1")"
}

# real_dir DIR: record links among DIR's parents (e.g. /lib -> usr/lib); print the real path
real_dir() {
    local rest="$1" current="" part
    while [ -n "$rest" ]; do
        case $rest in */*) part=${rest%%/*}; rest=${rest#*/} ;; *) part=$rest; rest= ;; esac
        [ -n "$part" ] || continue
        if [ -L "$R$current/$part" ]; then
            add_link "$current/$part"
            current=$(realp "$current/$part") || return 1
            [ "$current" = / ] && current=
        else
            current=$current/$part
        fi
    done
    printf '%s' "${current:-/}"
}

NL='
'
# list DIR: the names in a host directory, sorted, one a line; a name with a newline would
# be two lines (two bogus names), so it is left out and recorded as not captured
list() {
    local d="$R$1" f
    [ -d "$d" ] || return 0
    for f in "$d"/* "$d"/.[!.]* "$d"/..?*; do
        [ -e "$f" ] || [ -L "$f" ] || continue
        case ${f##*/} in
        *"$NL"*)
            failed "${1%/}/$(printf '%s' "${f##*/}" | tr '\n' '?')" \
                "the name holds a newline; not captured"
            ;;
        *) printf '%s\n' "${f##*/}" ;;
        esac
    done | LC_ALL=C sort
}

copy() { # HOST-PATH: copy the file into the snapshot; fails with why
    if ! cat "$R$1" >"$(dest "$1")" 2>/dev/null; then
        rm -f "$S$1"
        failed "$1" "$(why_unreadable "$R$1")"
        return 1
    fi
}

# ---- kernel files ---------------------------------------------------------------------
kernel_file() {
    if [ ! -e "$R$1" ]; then absent "$1"; return; fi
    copy "$1" && captured "$1"
}

kernel_dir() {
    local name found=""
    list "$1" >"$W/list.k"
    while IFS= read -r name <&3; do
        found=1
        if [ -f "$R$1/$name" ]; then kernel_file "$1/$name"; fi
    done 3<"$W/list.k"
    [ -n "$found" ] || absent "$1"
}

holders() {
    local name
    list "$1" >"$W/list.h"
    while IFS= read -r name <&3; do
        : >"$(dest "$1/$name")"
        captured "$1/$name"
    done 3<"$W/list.h"
}

# ---- configuration --------------------------------------------------------------------
config_file() {
    local path="$1" dir real rounds=0 resolved
    while [ "$rounds" -lt 40 ]; do
        rounds=$((rounds + 1))
        dir=$(real_dir "${path%/*}") || { failed "$path" "too many levels of symbolic links"; return; }
        [ "$dir" = / ] && dir=
        real=$dir/${path##*/}
        if [ -L "$R$real" ]; then
            if ! grep -qxF -e "$real" "$W/links"; then
                add_link "$real" && captured "$real"
            fi
            resolved=$(realp "$real") || return
            if [ "$resolved" != "$real" ] && [ -f "$R$resolved" ]; then
                path=$resolved
                continue
            fi
            return
        elif [ -f "$R$real" ]; then
            is_captured "$real" && return
            copy "$real" && captured "$real"
            return
        elif [ ! -e "$R$real" ]; then
            absent "$path"
        fi
        return
    done
}

config_dir() {
    local real name
    real=$(real_dir "$1") || { failed "$1" "too many levels of symbolic links"; return; }
    if [ "$real" != "$1" ]; then
        for name in $CONFIG_DIRS; do
            [ "$name" = "$real" ] && return # captured under its real name
        done
    fi
    if [ ! -d "$R$real" ]; then absent "$1"; return; fi
    [ "$real" = / ] && real=
    list "$real" >"$W/list.c"
    while IFS= read -r name <&3; do
        config_file "$real/$name"
    done 3<"$W/list.c"
}

marker() {
    local dir real
    dir=$(real_dir "${1%/*}") || return
    [ "$dir" = / ] && dir=
    real=$dir/${1##*/}
    if [ ! -f "$R$real" ]; then
        absent "$1"
    elif ! is_captured "$real"; then
        : >"$(dest "$real")"
        captured "$real"
    fi
}

# the active tuned profiles in every directory tuned searches (found or recorded absent),
# and the profiles and [variables] files they include (those found)
# shellcheck disable=SC2016  # an awk program: its $0 and $1 are awk's, not the shell's
TUNED_INCLUDES_AWK='
/^[[:space:]]*\[/ { section = $0; gsub(/[][[:space:]]/, "", section); next }
/^[[:space:]]*include[[:space:]]*=/ {
    value = $0; sub(/^[^=]*=[[:space:]]*/, "", value)
    if (section == "main") {
        n = split(value, parts, /[,;[:space:]]+/)
        for (i = 1; i <= n; i++) { p = parts[i]; sub(/^-/, "", p); if (p != "") print "+" p }
    } else if (section == "variables") print "V " value
}'
tuned_profiles() {
    local names dirs name dir n=0 conf line seen=" " active
    [ -f "$R$TUNED_ACTIVE_PROFILE" ] || return 0
    names=$(head -c 4096 "$R$TUNED_ACTIVE_PROFILE" 2>/dev/null | tr -c 'A-Za-z0-9._ -' ' ')
    dirs=$TUNED_DEFAULT_DIRS
    if [ -f "$R$TUNED_MAIN_CONF" ]; then
        conf=$(sed -n 's/^[[:space:]]*profile_dirs[[:space:]]*=[[:space:]]*//p' \
            "$R$TUNED_MAIN_CONF" 2>/dev/null | tail -n 1 | tr ',;' '  ')
        [ -n "$conf" ] && dirs=$conf
    fi
    set -f  # names and dirs are split on blanks, never globbed
    while [ "$n" -lt 24 ]; do
        # shellcheck disable=SC2086  # split on blanks on purpose (set -f: no globbing)
        set -- $names
        [ $# -gt 0 ] || break
        name=$1
        shift
        names=$*
        active=1
        case $name in +*) active='' name=${name#+} ;; esac
        case $seen in *" $name "*) continue ;; esac
        case $name in . | .. | *'$'* | */*) continue ;; esac
        seen="$seen$name "
        n=$((n + 1))
        for dir in $dirs; do
            if [ -n "$active" ] || [ -e "$R$dir/$name/tuned.conf" ]; then
                config_file "$dir/$name/tuned.conf"
            fi
            [ -f "$R$dir/$name/tuned.conf" ] || continue
            awk "$TUNED_INCLUDES_AWK" "$R$dir/$name/tuned.conf" 2>/dev/null | head -n 32 >"$W/incl"
            while IFS= read -r line <&3; do
                case $line in
                "V "/*) case $line in *'$'*) ;; *) [ -f "$R${line#V }" ] && config_file "${line#V }" ;; esac ;;
                +*) names="$names $(printf '%s' "$line" | tr -c 'A-Za-z0-9._+-' ' ')" ;;
                esac
            done 3<"$W/incl"
        done
    done
    set +f
}

# ---- redaction: the same address, the same token, in every file of one snapshot --------
# shellcheck disable=SC2016  # an awk program: its $0 and $1 are awk's, not the shell's
REDACT_AWK='
function v4ok(s,   n, p, i) {
    n = split(s, p, ".")
    if (n != 4) return 0
    for (i = 1; i <= 4; i++) {
        if (length(p[i]) < 1 || length(p[i]) > 3 || p[i] + 0 > 255) return 0
        if (length(p[i]) > 1 && substr(p[i], 1, 1) == "0") return 0
    }
    return 1
}
function v6canon(s,   n, p, q, i, dbl, left, right, out, k, m, g) {
    s = tolower(s)
    dbl = index(s, "::")
    if (dbl && index(substr(s, dbl + 2), "::")) return ""
    if (dbl) { left = substr(s, 1, dbl - 1); right = substr(s, dbl + 2) }
    else { left = s; right = "" }
    n = (left == "") ? 0 : split(left, p, ":")
    out = ""; k = 0
    for (i = 1; i <= n; i++) { g = p[i]; if (g == "" || length(g) > 4) return ""; out = out sprintf("%4s:", g); k++ }
    m = (right == "") ? 0 : split(right, q, ":")
    if (dbl) { if (k + m > 7) return ""; for (i = k + m; i < 8; i++) out = out "0000:" }
    else if (k != 8) return ""
    for (i = 1; i <= m; i++) { g = q[i]; if (g == "" || length(g) > 4) return ""; out = out sprintf("%4s:", g) }
    gsub(/ /, "0", out)
    return substr(out, 1, 39)
}
function tok4(raw,   n, key) {
    if (raw in map) return map[raw]
    if (!v4ok(raw) || raw ~ /^127\./ || raw == "0.0.0.0") return raw
    n = ++count4
    map[raw] = sprintf("%d.%d.%d.%d", 240 + int(n / 16777216) % 16, int(n / 65536) % 256, int(n / 256) % 256, n % 256)
    print raw "\t" map[raw] > mapout
    return map[raw]
}
function tok6(raw,   c, n) {
    if (raw in map) return map[raw]
    c = v6canon(raw)
    if (c == "" || c == "0000:0000:0000:0000:0000:0000:0000:0000" || c == "0000:0000:0000:0000:0000:0000:0000:0001") return raw
    if (!(c in map)) {
        n = ++count6
        map[c] = sprintf("2001:db8::%x:%x", int(n / 65536), n % 65536)
        sub(/::0:/, "::", map[c])
        print c "\t" map[c] > mapout
    }
    map[raw] = map[c]
    print raw "\t" map[raw] > mapout
    return map[raw]
}
function pass(line, cls, v6,   out, run, t) {
    out = ""
    while (match(line, cls)) {
        run = substr(line, RSTART, RLENGTH)
        out = out substr(line, 1, RSTART - 1)
        line = substr(line, RSTART + RLENGTH)
        t = run
        if (v6) {
            if (run !~ /[.]/ && run ~ /^([0-9a-fA-F]*:)+[0-9a-fA-F]*$/) {
                n = gsub(/:/, ":", run)
                if (n >= 2 && n <= 7) t = tok6(run)
            }
        } else if (run ~ /^[0-9]+[.][0-9]+[.][0-9]+[.][0-9]+$/) t = tok4(run)
        out = out t
    }
    return out line
}
FNR == NR && FILENAME == mapin {
    split($0, kv, "\t"); map[kv[1]] = kv[2]
    if (kv[2] ~ /^2001:/) seen6[kv[2]] = 1; else seen4[kv[2]] = 1
    next
}
FNR == 1 && !started { started = 1; for (k in seen4) count4++; for (k in seen6) count6++ }
{
    read += length($0) + 1
    if (cap != "" && read > cap + 0) exit  # too large: no use redacting the rest
    print pass(pass($0, "[0-9a-fA-F:.]+", 1), "[0-9.]+", 0)
}
END { if (sizeout != "") printf "%.0f\n", read > sizeout }  # %.0f: mawk prints 2^31 as 2.14748e+09
'

# redacted IN OUT [SIZE-FILE CAP]: IN (a file, or - for stdin) redacted into OUT, and the
# number of bytes read into SIZE-FILE, stopping once more than CAP were read; the map of
# tokens lives in $W/map. LC_ALL=C: awk's length() counts bytes, not characters
redacted() {
    : >"$W/map.new"
    if LC_ALL=C awk -v mapin="$W/map" -v mapout="$W/map.new" -v sizeout="${3:-}" -v cap="${4:-}" \
        "$REDACT_AWK" "$W/map" "$1" >"$2"; then
        cat "$W/map.new" >>"$W/map"
    else
        rm -f "$2"
        return 1
    fi
}

# redact FILE: in place when --redact
redact() {
    [ "$REDACT" = 1 ] || return 0
    if redacted "$1" "$1.red"; then mv "$1.red" "$1"; else rm -f "$1"; return 1; fi
}

# ---- logs, commands, the table --------------------------------------------------------
log_file() {
    if [ ! -f "$R$1" ]; then absent "$1"; return; fi
    local d
    d=$(dest "$1")
    if ! tail -c "$LOG_TAIL_BYTES" "$R$1" >"$d" 2>/dev/null; then
        rm -f "$d"
        failed "$1" "$(why_unreadable "$R$1")"
        return
    fi
    if redact "$d"; then captured "$1"; else failed "$1" "could not be redacted"; fi
}

mib() { # like ctguard's: "1.5 MiB" or "12 bytes"
    if [ "$1" -ge 1048576 ]; then
        awk -v n="$1" 'BEGIN { printf "%.1f MiB", n / 1048576 }'
    else
        printf '%s bytes' "$1"
    fi
}

# command NAME TIMEOUT KEEP MAX-BYTES REDACT PROG ARGS...: one program's output (the
# whole of it up to MAX-BYTES, or its head or tail), or why not
command_output() {
    local name="$1" secs="$2" keep="$3" cap="$4" red="$5" where out rc size
    shift 5
    where=$CAPTURE_DIR/$name
    not_run "$where" "$1" && return
    if ! command -v "$1" >/dev/null 2>&1; then
        failed "$where" "$1 is not installed"
        return
    fi
    out=$W/cmd.out
    bounded "$secs" "$out" "$W/cmd.err" "$@"
    rc=$?
    if [ "$rc" = 124 ]; then
        failed "$where" "$* timed out after $secs s"
        return
    elif [ "$rc" != 0 ]; then
        local msg
        msg=$(first_line "$W/cmd.err")
        failed "$where" "$* exited $rc: ${msg:-no message}"
        return
    fi
    size=$(size_of "$out")
    if [ "$size" -gt "$cap" ]; then
        case $keep in
        whole)
            failed "$where" "$name output is $(mib "$size"), more than the $(mib "$cap") read"
            return
            ;;
        head)
            head -c "$cap" "$out" >"$out.cut"
            if [ "$(tail -c 1 "$out.cut" | od -An -c | tr -d ' ')" != '\n' ]; then
                sed '$d' "$out.cut" >"$out.line" && mv "$out.line" "$out.cut"
            fi
            ;;
        tail) tail -c "$cap" "$out" | sed '1d' >"$out.cut" ;;
        esac
        mv "$out.cut" "$out"
    fi
    if [ "$red" = 1 ]; then
        redact "$out" || { failed "$where" "could not be redacted"; return; }
    fi
    mv "$out" "$(dest "$where")" && captured "$where"
}

# spool SRC-COMMAND...: the table dump into $W/table, at most MAX_TABLE_BYTES; 3 when larger
too_large() {
    failed "$1" "the table dump is larger than $MAX_TABLE_BYTES bytes, the most a snapshot stores of one (ctguard analyze reads it on the host, or from a dump file)"
}

table() {
    local size where
    if [ -e "$R$TABLE_FILE" ]; then
        rm -f "$W/table.unread" "$W/table.unred" "$W/table.size"
        if [ "$REDACT" = 1 ]; then
            # redacted as it is read: one copy of the table on disk, not two
            { head -c "$((MAX_TABLE_BYTES + 1))" "$R$TABLE_FILE" 2>/dev/null || : >"$W/table.unread"; } |
                redacted - "$W/table" "$W/table.size" "$MAX_TABLE_BYTES" || : >"$W/table.unred"
            size=$(cat "$W/table.size" 2>/dev/null) || size=''
            case $size in '' | *[!0-9]*) : >"$W/table.unred" ;; esac
        else
            head -c "$((MAX_TABLE_BYTES + 1))" "$R$TABLE_FILE" >"$W/table" 2>/dev/null ||
                : >"$W/table.unread"
            size=$(size_of "$W/table")
        fi
        # in this order: awk stopping (too large) or failing ends head with SIGPIPE too
        if [ -e "$W/table.unred" ]; then
            rm -f "$W/table"
            failed "$TABLE_FILE" "could not be redacted"
            return
        elif [ "$size" -gt "$MAX_TABLE_BYTES" ]; then
            too_large "$TABLE_FILE"
            rm -f "$W/table"
            return
        elif [ ! -e "$W/table.unread" ]; then
            mv "$W/table" "$(dest "$TABLE_FILE")" && captured "$TABLE_FILE"
            return
        fi
        rm -f "$W/table"
        failed "$TABLE_FILE" "$(why_unreadable "$R$TABLE_FILE")"
    else
        absent "$TABLE_FILE"
    fi
    where=$CAPTURE_DIR/conntrack-L
    if [ -n "$BLOCKED" ]; then
        failed "$where" "not asked: it would load nf_conntrack_netlink"
        return
    fi
    table_by_conntrack
}

# why asking ctnetlink would load a module (as sources/modules.py), empty when it is safe
ctnetlink_blocked() {
    [ -z "$R" ] || return 0  # a copied tree: nothing is asked of the kernel for it
    [ -r /proc/modules ] || return 0
    grep -q '^nf_conntrack_netlink ' /proc/modules 2>/dev/null && return 0
    [ -d /sys/module/nf_conntrack_netlink ] && return 0
    local rel
    rel=$(cat /proc/sys/kernel/osrelease 2>/dev/null)
    if [ -n "$rel" ] && grep -q '/nf_conntrack_netlink\.ko' "/lib/modules/$rel/modules.builtin" 2>/dev/null; then
        return 0
    fi
    echo "nf_conntrack_netlink is not loaded and ctguard does not load modules"
}

json_manifest() {
    LC_ALL=C sort -u "$W/captured" >"$W/captured.s"
    LC_ALL=C sort -u "$W/absent" >"$W/absent.s"
    awk -v created="$CREATED" -v version="$CTGUARD_VERSION" -v host="$HOSTNAME_" \
        -v inode="$NETNS_INODE" -v table="$TABLE" -v redacted="$REDACT" \
        -v netns="$NETNS" -v born="$BORN" \
        -v fmt="$MANIFEST_FORMAT" -v collector="$COLLECTOR" \
        -v capf="$W/captured.s" -v absf="$W/absent.s" -v failf="$W/failed" '
function esc(s,   out, i, c, n) {
    # one character at a time, no gsub: its backslash handling differs between awks (mawk,
    # gawk --posix); bytes outside printable ASCII become "?"
    out = ""; n = length(s)
    for (i = 1; i <= n; i++) {
        c = substr(s, i, 1)
        if (c == "\\") out = out "\\\\"
        else if (c == "\"") out = out "\\\""
        else if (c == "\t") out = out "\\t"
        else if (c >= " " && c <= "~") out = out c
        else out = out "?"
    }
    return "\"" out "\""
}
function str(s) { return s == "" ? "null" : esc(s) }
FILENAME == capf { cap[++nc] = $0; next }
FILENAME == absf { ab[++na] = $0; next }
FILENAME == failf { i = index($0, "\t"); fw[++nf] = substr($0, 1, i - 1); fy[nf] = substr($0, i + 1); next }
END {
    printf "{\n  \"format\": %s,\n  \"ctguard_version\": %s,\n  \"collector\": %s,\n", esc(fmt), esc(version), esc(collector)
    printf "  \"created_utc\": %s,\n  \"hostname\": %s,\n  \"netns\": %s,\n", esc(created), str(host), str(netns)
    printf "  \"netns_inode\": %s,\n  \"netns_born\": %s,\n", (inode == "" ? "null" : inode), (born == "" ? "null" : born)
    printf "  \"table\": %s,\n  \"redacted\": %s,\n", (table == 1 ? "true" : "false"), (redacted == 1 ? "true" : "false")
    printf "  \"captured\": ["; for (i = 1; i <= nc; i++) printf "%s\n    %s", (i > 1 ? "," : ""), esc(cap[i]); printf (nc ? "\n  ],\n" : "],\n")
    printf "  \"absent\": ["; for (i = 1; i <= na; i++) printf "%s\n    %s", (i > 1 ? "," : ""), esc(ab[i]); printf (na ? "\n  ],\n" : "],\n")
    printf "  \"failed\": ["
    for (i = 1; i <= nf; i++) printf "%s\n    {\"what\": %s, \"why\": %s}", (i > 1 ? "," : ""), esc(fw[i]), esc(fy[i])
    printf (nf ? "\n  ]\n}\n" : "]\n}\n")
}' "$W/captured.s" "$W/absent.s" "$W/failed"
}

# ---- a named namespace: the initial namespace's values, then this script inside it -----
if [ -n "$NETNS" ] && [ -z "$INNER" ]; then
    [ -z "$R" ] || die "--netns captures a live namespace, not a CTGUARD_ROOT tree"
    case $NETNS in */* | . | ..) die "--netns $NETNS: not a namespace name" ;; esac
    [ -e "$NETNS_DIR/$NETNS" ] || die "--netns $NETNS: no such namespace (see: ip netns list)"
    command -v ip >/dev/null 2>&1 || die "--netns needs the ip program (iproute2)"
    [ -f "$0" ] || die "--netns needs this script as a file (sh FILE --netns NAME)"
    # the initial namespace's conntrack sysctls, kept beside the namespace's (CT307)
    for f in "$NETFILTER_DIR"/nf_conntrack_*; do
        [ -f "$f" ] || continue
        if cat "$f" >"$(dest "$INIT_NETNS_DIR$f")" 2>/dev/null; then
            captured "$INIT_NETNS_DIR$f"
        else
            rm -f "$S$INIT_NETNS_DIR$f"
        fi
    done
    # when it was made, in seconds since boot (dmesg's clock): older log lines that name
    # its inode belong to an earlier namespace
    BORN=$(awk -v made="$(stat -c %Y "$NETNS_DIR/$NETNS" 2>/dev/null)" -v now="$(date +%s)" \
        '{ if (made != "") { b = $1 - (now - made); printf "%.2f", (b > 0 ? b : 0) } }' \
        /proc/uptime 2>/dev/null)
    set -- "$(readlink "/proc/$$/exe")"
    case $1 in */busybox*) set -- "$1" sh ;; esac
    [ -n "$1" ] || set -- /bin/sh
    set -- "$@" "$0" -o "$OUT_DIR" --netns "$NETNS"
    [ "$REDACT" = 1 ] && set -- "$@" --redact
    [ "$TABLE" = 1 ] || set -- "$@" --no-table
    TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    if [ -z "$TOKEN" ] || ! printf '%s\n' "$TOKEN" >"$W/inner-token"; then
        die "could not make a token in $W (od, /dev/urandom)"
    fi
    CTGUARD_COLLECT_INNER=$TMP CTGUARD_COLLECT_TOKEN=$TOKEN CTGUARD_NETNS_BORN=$BORN \
        ip netns exec "$NETNS" "$@" &
    CHILD=$!
    wait "$CHILD"
    rc=$?
    CHILD=
    exit "$rc"
fi
BORN=${CTGUARD_NETNS_BORN:-}
case $BORN in
    '' | *[!0-9.]* | *.*.*) BORN= ;;  # a number of seconds, or nothing (it reaches the JSON)
esac

# ---- all of it ------------------------------------------------------------------------
# (the lists are split on blanks: their paths hold no blank and no glob character)
for p in $KERNEL_FILES; do kernel_file "$p"; done
for p in $KERNEL_DIRS; do kernel_dir "$p"; done
holders "$HOLDERS_DIR"
for p in $CONFIG_FILES; do config_file "$p"; done
for p in $CONFIG_DIRS; do config_dir "$p"; done
for p in $PRESENCE_MARKERS; do marker "$p"; done
tuned_profiles
for p in $LOG_FILES; do log_file "$p"; done
TRACKED=
[ -e "$R$MAX_FILE" ] && TRACKED=1
BLOCKED=$(ctnetlink_blocked)
run_commands
if [ -n "$TRACKED" ] && [ -z "$BLOCKED" ] && [ ! -e "$R$STAT_FILE" ]; then
    # ctguard reads these counters over netlink (Python); conntrack -S prints the same
    if not_run "$CAPTURE_DIR/$NETLINK_STATS" conntrack; then
        :
    elif [ -f "$S$CAPTURE_DIR/conntrack-S" ]; then
        cp "$S$CAPTURE_DIR/conntrack-S" "$(dest "$CAPTURE_DIR/$NETLINK_STATS")" &&
            captured "$CAPTURE_DIR/$NETLINK_STATS"
    else
        failed "$CAPTURE_DIR/$NETLINK_STATS" "the collector reads these counters with conntrack -S, which failed"
    fi
fi
if [ "$TABLE" = 1 ] && [ -n "$TRACKED" ]; then table; fi

CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
HOSTNAME_=
if [ -r "$R/proc/sys/kernel/hostname" ]; then
    HOSTNAME_=$(head -c 4096 "$R/proc/sys/kernel/hostname" 2>/dev/null | tr -d '\n')
    HOSTNAME_=$(printf '%s' "$HOSTNAME_" | sed 's/^[[:space:]]*//;s/[[:space:]]*$//')
fi
NETNS_INODE=$(readlink "$R/proc/self/ns/net" 2>/dev/null | sed -n 's/^net:\[\([0-9][0-9]*\)\]$/\1/p')
json_manifest >"$(dest "$MANIFEST")" || die "could not write the manifest"

SAFE=$(printf '%s' "$HOSTNAME_" | tr -c 'A-Za-z0-9._-' '_')
NAME=ctguard-${SAFE:-host}-$(date -u +%Y%m%dT%H%M%SZ).tar.gz
[ -e "$OUT_DIR/$NAME" ] && die "$OUT_DIR/$NAME already exists"
(
    cd "$S" || exit 1
    set -- *
    tar -czf "$TMP/snapshot.tar.gz" "$@"
) || die "could not write the archive in $OUT_DIR"
chmod 600 "$TMP/snapshot.tar.gz"
# -T: a name planted meanwhile (a link to a directory, in a world-writable -o) is replaced,
# never moved into; then make sure what is there is our file
mv -T "$TMP/snapshot.tar.gz" "$OUT_DIR/$NAME" 2>/dev/null ||
    die "could not move the archive into $OUT_DIR"
{ [ -f "$OUT_DIR/$NAME" ] && [ ! -h "$OUT_DIR/$NAME" ]; } ||
    die "$OUT_DIR/$NAME is not the archive written: is -o writable by others?"
printf '%s\n' "$OUT_DIR/$NAME"

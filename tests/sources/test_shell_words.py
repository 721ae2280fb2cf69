"""Shell text split as bash splits it, and udev RUN as udev splits it."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctguard.sources.shell_words import (
    MAX_SUBSTITUTION_DEPTH,
    Command,
    ParseError,
    ShellScript,
    Word,
    parse_shell,
    split_argv,
    split_fields,
)


def argvs(text: str, **kwargs: bool) -> list[tuple[str, ...]]:
    return [c.argv for c in parse_shell(text, **kwargs).commands]


def values(text: str) -> list[list[str]]:
    return [[w.value for w in c.words] for c in parse_shell(text).commands]


# -- quotes and escapes --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("'no'", "no"),
        ('"yes"', "yes"),
        ('"n"o', "no"),
        ("'a \\ b'", "a \\ b"),  # nothing escapes inside single quotes
        ("a\\ b", "a b"),
        ("\\'x", "'x"),
        ('""', ""),
        ("''", ""),
        ('"say \\"no\\""', 'say "no"'),
        ('"\\$HOME \\` \\\\ \\x"', "$HOME ` \\ \\x"),  # bash: only $ ` " \\ newline escape
        ('"a\\\nb"', "ab"),  # an escaped newline inside double quotes joins the lines
        ("'a\\\nb'", "a\\\nb"),
        ("$X", "$X"),
        ('"${UNLOAD:-no}"', "${UNLOAD:-no}"),
        ('"$(echo ")")"', '$(echo ")")'),
        ("`uname -r`", "`uname -r`"),
        ("no#x", "no#x"),  # "#" inside a word is no comment
        ("yes\r", "yes\r"),  # bash splits on blanks only: a CRLF line keeps its "\r"
        ("x\\", "x\\"),  # a backslash at the very end stays
    ],
)
def test_quote_removal(text, value):
    (command,) = parse_shell(text).commands
    (word,) = command.words
    assert (word.value, word.raw) == (value, text)


def test_line_continuation_joins_words_and_lines():
    script = parse_shell("fgrep $item \\\n    /etc/sysctl.conf | sysctl -p -\nx=1\n")
    fgrep, sysctl, assignment = script.commands
    assert fgrep.argv == ("fgrep", "$item", "/etc/sysctl.conf")
    assert (fgrep.end, sysctl.argv) == ("|", ("sysctl", "-p", "-"))
    assert [(w.line, w.end_line) for w in fgrep.words] == [(1, 1), (1, 1), (2, 2)]
    assert assignment.words[0].line == 3
    assert values("ab\\\ncd") == [["abcd"]]


def test_quoted_value_spanning_lines():
    (command,) = parse_shell('A=".nf_conntrack\n    .bridge-nf" B=1\n').commands
    spanning, after = command.words
    assert spanning.value == "A=.nf_conntrack\n    .bridge-nf"
    assert (spanning.line, spanning.end_line, after.line) == (1, 2, 2)


# -- comments, operators, redirections -----------------------------------------------------
def test_comments_run_to_the_end_of_the_line():
    assert values("# all of it\nx=1   # the rest 'of it\n  #\ny\n") == [["x=1"], ["y"]]


@pytest.mark.parametrize(
    ("text", "ends"),
    [
        ("a | b", ["|", ""]),
        ("a && b || c", ["&&", "||", ""]),
        ("a; b & c\n", [";", "&", "\n"]),
        ("a;;b", [";;", ""]),
        ("(a)|b", [")", ""]),  # the command inside the subshell ends at ")"
    ],
)
def test_operators_end_commands(text, ends):
    assert [c.end for c in parse_shell(text).commands] == ends


def test_quoted_operators_are_words():
    assert argvs("sh -c 'a; b | c' \"&&\" \\;") == [("sh", "-c", "a; b | c", "&&", ";")]


@pytest.mark.parametrize(
    "text",
    [
        "modprobe nf_conntrack >/dev/null 2>&1",
        "modprobe nf_conntrack 2> /dev/null </dev/null",
        "modprobe>/dev/null nf_conntrack",
        "> /tmp/log modprobe nf_conntrack",
        "modprobe nf_conntrack &>>/tmp/log",
        "modprobe nf_conntrack 2>&-",
    ],
)
def test_redirections_and_their_targets_are_no_words(text):
    assert argvs(text) == [("modprobe", "nf_conntrack")]


def test_a_number_is_a_word_unless_a_redirection_follows_it():
    assert argvs("sleep 2 >/dev/null") == [("sleep", "2")]
    assert argvs("sleep 2>/dev/null") == [("sleep",)]


@pytest.mark.parametrize("text", ["echo >", "echo > | cat", "echo <\n", "cat <<"])
def test_a_redirection_without_a_target_is_an_error(text):
    assert parse_shell(text) == ShellScript(
        (), ParseError(1, text.split()[1] + " without a target")
    )


def test_reserved_words_in_front_are_dropped():
    text = "if [ -x /sbin/modprobe ]; then\n  ! /sbin/modprobe nf_conntrack\nfi\n{ x; }\n"
    assert argvs(text) == [
        ("[", "-x", "/sbin/modprobe", "]"),
        ("/sbin/modprobe", "nf_conntrack"),
        ("x",),
    ]
    assert argvs('"if" x') == [("if", "x")]  # a quoted reserved word is an ordinary word


def test_here_document_bodies_are_skipped():
    text = (
        "cat <<EOF >/tmp/x\nmodprobe nf_conntrack\nEOF\n"
        "cat <<-'END'\n\tit's not here: modprobe nf_nat\n\tEND\n"
        "modprobe x_tables\n"
    )
    script = parse_shell(text)
    assert [c.argv for c in script.commands] == [("cat",), ("cat",), ("modprobe", "x_tables")]
    assert script.commands[-1].words[0].line == 7


def test_a_here_document_without_its_delimiter_runs_to_the_end():
    assert argvs("cat <<EOF\nmodprobe nf_conntrack\n") == [("cat",)]


# -- arrays --------------------------------------------------------------------------------
def test_array_over_several_lines_with_comments():
    text = 'NF_MODULES_COMMON=(x_tables \\\n    nf_nat   # NAT\n    "nf_conntrack"\n) # v4 and v6\n'
    (command,) = parse_shell(text).commands
    (word,) = command.words
    assert word == Word("NF_MODULES_COMMON=", "NF_MODULES_COMMON=", 1, 4,
                        ("x_tables", "nf_nat", "nf_conntrack"))  # fmt: skip
    assert word.name == "NF_MODULES_COMMON"
    assert command.argv == ()


def test_empty_array_and_array_of_substitutions():
    assert parse_shell("A=()").commands[0].words[0].items == ()
    (word,) = parse_shell("M=($(lsmod | awk '{print $1}') x)").commands[0].words
    assert word.items == ("$(lsmod | awk '{print $1}')", "x")


def test_an_operator_inside_an_array_is_an_error():
    assert parse_shell("x\nA=(a | b)\ny\n") == ShellScript(
        (Command((Word("x", "x", 1, 1),), "\n"),), ParseError(2, "| inside an array")
    )


def test_parenthesis_after_a_quoted_name_is_no_array():
    assert argvs('"A"=(x)') == [("A=",), ("x",)]


# -- assignments ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "name"),
    [("A=1", "A"), ("_a1=", "_a1"), ('A="x y"', "A"), ("1A=1", None), ('"A"=1', None),
     ("A+=1", None), ("=1", None), ("A", None)],
)  # fmt: skip
def test_word_name(raw, name):
    assert parse_shell(raw).commands[0].words[0].name == name


def test_argv_leaves_out_assignments_in_front():
    assert argvs("LANG=C X='a b' modprobe -q nf_conntrack Y=2") == [
        ("modprobe", "-q", "nf_conntrack", "Y=2")
    ]
    assert argvs("A=1 B=2") == [()]


# -- substitutions -------------------------------------------------------------------------
def test_commands_in_substitutions_come_before_their_command():
    text = 'x=$(modprobe nf_conntrack 2>&1) && echo "`sysctl -p`" $((1 + 2)) ${y:-z}'
    assert argvs(text, substitutions=True) == [
        ("modprobe", "nf_conntrack"),
        (),
        ("sysctl", "-p"),
        ("echo", "`sysctl -p`", "$((1 + 2))", "${y:-z}"),
    ]
    assert argvs(text) == [(), ("echo", "`sysctl -p`", "$((1 + 2))", "${y:-z}")]


def test_substitution_lines_count_from_where_they_start():
    script = parse_shell("a\nb $(c\n  d)\n", substitutions=True)
    assert [(c.argv, c.words[0].line) for c in script.commands] == [
        (("a",), 1), (("c",), 2), (("d",), 3), (("b", "$(c\n  d)"), 2)
    ]  # fmt: skip


def test_substitutions_are_read_to_a_bounded_depth():
    depth = 10_000  # far past the recursion limit were each level a call
    text = "$(" * depth + "modprobe nf_conntrack" + ")" * depth
    script = parse_shell(text, substitutions=True)
    assert script.error is None
    assert len(script.commands) == MAX_SUBSTITUTION_DEPTH + 1


# -- text bash rejects ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("echo 'it", "unterminated '"),
        ('echo "it', 'unterminated "'),
        ("echo $(date", "unterminated $("),
        ('echo "$(date ")"', "unterminated $("),
        ("echo ${x", "unterminated ${"),
        ("echo `date", "unterminated `"),
        ("A=(a b", "unterminated ("),
    ],
)
def test_unterminated(text, reason):
    script = parse_shell(f"modprobe nf_conntrack\n{text}\nmodprobe nf_nat\n")
    assert script.commands == parse_shell("modprobe nf_conntrack\n").commands
    assert script.error == ParseError(2, reason)


def test_unterminated_double_quote_is_reported_where_it_opens():
    assert parse_shell('a\nb "c\nd\ne\n').error == ParseError(2, 'unterminated "')


@pytest.mark.parametrize(
    ("value", "fields"),
    [("", ()), (" \t\n", ()), ("a  b\tc\nd", ("a", "b", "c", "d")),
     ("a\rb\u00a0c\x0bd", ("a\rb\u00a0c\x0bd",))],  # only the default IFS separates
)  # fmt: skip
def test_split_fields(value, fields):
    assert split_fields(value) == fields


# -- udev RUN ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("/usr/lib/systemd/systemd-sysctl --prefix=/net/netfilter",
         ["/usr/lib/systemd/systemd-sysctl", "--prefix=/net/netfilter"]),
        ("/bin/sh -c 'sysctl -p; echo done'", ["/bin/sh", "-c", "sysctl -p; echo done"]),
        ('a"b c"d \'\' ""', ["ab cd", "", ""]),
        ("a\\ b \\'c\\'", ["a\\", "b", "\\c\\"]),  # a backslash is an ordinary character
        ("sysctl -p # reload", ["sysctl", "-p", "#", "reload"]),  # so is "#"
        ("sysctl -w 'a=1 b", ["sysctl", "-w", "a=1 b"]),  # an unclosed quote runs to the end
        ("a|b;c&&d", ["a|b;c&&d"]),
        (" \t\r\n", []),
    ],
)  # fmt: skip
def test_split_argv(command, argv):
    assert split_argv(command) == argv


# -- no input makes them raise -------------------------------------------------------------
_SHELLISH = st.sampled_from(
    [
        "modprobe", "nf_conntrack", "A=", "A=(", "(", ")", "|", "||", "&", "&&", ";", ";;", "'",
        '"', "\\", "\\\n", "$", "$(", "$((", "${", "}", "`", "#", "<", ">", "2>&1", "<<EOF",
        "<<-EOF", "EOF", "\tEOF", "if", "then", "fi", "!", "{", "export", "\r", "\x00", "\u00e9",
    ]
)  # fmt: skip
_TEXT = st.one_of(
    st.text(),
    st.lists(st.tuples(_SHELLISH, st.sampled_from(["", " ", "\n", "\t"])), max_size=60).map(
        lambda pairs: "".join(word + sep for word, sep in pairs)
    ),
)


@settings(max_examples=400, deadline=None)
@given(text=_TEXT, substitutions=st.booleans())
def test_parse_shell_never_raises(text, substitutions):
    script = parse_shell(text, substitutions=substitutions)
    last_line = text.count("\n") + 1
    for command in script.commands:
        assert command.words
        for word in command.words:
            assert 1 <= word.line <= word.end_line <= last_line
    if script.error is not None:
        assert 1 <= script.error.line <= last_line


_RESERVED_WORDS = {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "time"}


@settings(max_examples=200, deadline=None)
@given(
    words=st.lists(
        st.from_regex(r"[A-Za-z0-9_./,:+=@%^-]+", fullmatch=True).filter(
            lambda word: word not in _RESERVED_WORDS
        ),
        min_size=1,
    )
)
def test_plain_words_split_on_blanks(words):
    text = " ".join(words)
    assert values(text) == [words]
    assert split_argv(text) == words


@settings(max_examples=400, deadline=None)
@given(text=_TEXT)
def test_split_argv_without_quotes_splits_on_whitespace(text):
    argv = split_argv(text)
    if "'" not in text and '"' not in text:
        assert argv == [w for w in re.split(r"[ \t\n\r]+", text) if w]

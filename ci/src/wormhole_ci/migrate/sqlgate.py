"""The pending migrations' SQL: squawk's lint as warnings, destructive changes as a gate."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import import_module
from itertools import pairwise
from pathlib import Path
from typing import Any

from wormhole_ci.delivery.runbooks import EXPAND_CONTRACT
from wormhole_ci.errors import MigrateError, ProvisionError
from wormhole_ci.jsonish import as_dict, as_list
from wormhole_ci.toolchains import Provisioner

SQUAWK_TIMEOUT = 120.0
RUNBOOK = EXPAND_CONTRACT
BLOCKED = f"blocked: destructive changes need --allow-destructive; see {RUNBOOK}"
# The PostgreSQL major the migrations target (postgresql-15 natively, postgres:15 in Dagger).
PG_VERSION = "15"
_STATEMENT_CHARS = 200

# squawk 2.70.0's rules that mean data loss or a break for the release still running
# (its own messages: "may break existing clients"), each with the kind our own gate gives
# the same change, so that one statement reported by both is listed once. Every other
# rule (locking, timeouts, robustness, types, syntax) is a warning. Left as warnings on
# purpose: renaming-object (also fires on `ALTER INDEX … RENAME`, which Prisma emits for
# harmless map-name changes), ban-drop-constraint (Prisma drops and re-adds foreign keys
# to change their actions), ban-drop-not-null (relaxing a column is the expand step).
SQUAWK_DESTRUCTIVE = {
    "ban-drop-table": "drop-table",
    "ban-drop-column": "drop-column",
    "changing-column-type": "alter-column-type",
    "adding-required-field": "add-required-column",
    "adding-not-nullable-field": "set-not-null",
    "renaming-column": "rename",
    "renaming-table": "rename",
    "ban-truncate-cascade": "truncate",
    "ban-drop-schema": "drop-schema",
    "ban-drop-database": "drop-database",
}

_MESSAGES = {
    "drop-table": "drops table(s) {}: the data is lost and the running release still uses them",
    "drop-column": "drops column(s) {}: the data is lost and the running release still reads them",
    "alter-column-type": (
        "changes the type of {}: it can narrow or fail on existing data, rewrites the table "
        "under an ACCESS EXCLUSIVE lock, and the running release still uses the old type"
    ),
    "add-required-column": (
        "adds NOT NULL column(s) {} without a DEFAULT: fails on a non-empty table, and the "
        "running release does not write them"
    ),
    "set-not-null": (
        "sets NOT NULL on {}: fails if any row is NULL, and the running release may still write NULLs"
    ),
    "rename": "renames {}: the running release still uses the old name",
    "truncate": "empties table(s) {}: every row is deleted",
    "delete-all": "deletes every row of {} (no WHERE)",
    "drop-schema": "drops schema(s) {} and everything in them",
    "drop-database": "drops database(s) {}",
}
_SERIAL_TYPES = {"SMALLSERIAL", "SERIAL", "BIGSERIAL", "SERIAL2", "SERIAL4", "SERIAL8"}
_TABLE_CONSTRAINTS = {"CONSTRAINT", "PRIMARY", "UNIQUE", "FOREIGN", "CHECK", "EXCLUDE"}
_GLOB = re.compile(r"([\[\]*?])")
# sqlparse is untyped (its token types are attribute chains made at run time): it is only
# touched through these modules, typed Any: the lexer, the splitter and the token types.
_T: Any = import_module("sqlparse.tokens")
_keywords: Any = import_module("sqlparse.keywords")
_lexer_module: Any = import_module("sqlparse.lexer")
_engine: Any = import_module("sqlparse.engine")
_SQLPARSE_VERSION = str(import_module("sqlparse").__version__)


@dataclass(frozen=True)
class Finding:
    """One problem in one migration file, from squawk or from our own destructive gate."""

    file: str  # relative to the source root, e.g. "prisma/migrations/20250101_x/migration.sql"
    line: int  # 1-based
    rule: str
    message: str
    statement: str  # the offending statement on one line, trimmed to ~200 characters
    destructive: bool


@dataclass(frozen=True)
class GateReport:
    """Every finding over the pending migrations, and the squawk that linted them."""

    findings: tuple[Finding, ...]
    squawk_version: str

    @property
    def blocking(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.destructive)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if not f.destructive)

    def lines(self) -> list[str]:
        """A human report: a summary line naming squawk's version, then one entry per finding."""
        out = [
            f"migration SQL ({self.squawk_version} + destructive-change gate): "
            f"{len(self.blocking)} blocking, {len(self.warnings)} warning(s)"
        ]
        for f in (*self.blocking, *self.warnings):
            mark = "BLOCK" if f.destructive else "warn "
            out.append(f"  {mark} {f.file}:{f.line} [{f.rule}] {f.message}")
            # Only what blocks gets its statement: a warning's line is enough to find it.
            if f.destructive and f.statement:
                out.append(f"        {f.statement}")
        return out


@dataclass(frozen=True)
class Statement:
    """One SQL statement of a file: where it starts and ends, and its significant tokens."""

    line: int  # 1-based line of its first token that is not whitespace or a comment
    end_line: int
    text: str  # one line, comments dropped, whitespace collapsed, trimmed
    words: tuple[Word, ...]


@dataclass(frozen=True)
class Word:
    """A token that matters: `kind` is word (upper-cased keyword or bare name), ident (a
    quoted identifier, unquoted), punct or other (literals, operators)."""

    kind: str
    text: str

    def __str__(self) -> str:
        return f'"{self.text}"' if self.kind == "ident" else self.text


def squawk_argv(binary: str, files: Sequence[str], *, config: str | None = None) -> list[str]:
    """squawk over `files` (relative to its cwd): JSON out, PostgreSQL 15, each file assumed
    to run in one transaction. Nothing is uploaded: the upload-to-github subcommand is never used."""
    argv = [binary, "--reporter", "json", "--pg-version", PG_VERSION]
    # Prisma (6.x) sends a migration.sql as one multi-statement query, which PostgreSQL runs
    # as one implicit transaction: squawk's transaction-aware rules must see it that way.
    argv.append("--assume-in-transaction")
    if config is not None:
        argv += ["--config", config]
    # squawk expands its arguments as glob patterns: a literal `[`, `]`, `*` or `?` in a
    # path is bracketed so that the very file is linted (and reported under its own name).
    return [*argv, "--", *(_GLOB.sub(r"[\1]", f) for f in files)]


def parse_squawk(output: str, root: Path) -> list[Finding]:
    """squawk's JSON report as findings; each statement is read from the file under `root`.

    squawk reports 0-based lines; findings carry 1-based ones. Raises MigrateError when the
    output is not squawk's JSON list (a crash must not read as "no findings")."""
    try:
        items = as_list(json.loads(output))
    except ValueError:
        items = None
    if items is None:
        raise MigrateError(f"squawk: output is not its JSON report: {_tail(output)}")
    findings: list[Finding] = []
    statements: dict[str, list[Statement]] = {}
    for raw in items:
        item = as_dict(raw)
        line = item.get("line") if item else None
        if item is None or not isinstance(line, int):
            raise MigrateError(f"squawk: unexpected entry in its JSON report: {raw!r:.200}")
        rule = str(item.get("rule_name") or "squawk")
        file = _relative(Path(str(item.get("file") or "")), root)
        if file not in statements:
            statements[file] = _statements_of(root / file)
        found = _statement_at(statements[file], line + 1)
        help_text = item.get("help")
        message = str(item.get("message") or rule)
        if isinstance(help_text, str) and help_text:
            message = f"{message} {help_text}"
        findings.append(
            Finding(
                file=file,
                line=line + 1,
                rule=rule,
                message=message,
                statement=found.text if found else _line_of(root / file, line + 1),
                destructive=rule in SQUAWK_DESTRUCTIVE,
            )
        )
    return findings


def split_statements(sql: str) -> list[Statement]:
    """`sql` cut into statements the way PostgreSQL reads it: a `;` inside a string, a quoted
    identifier, a comment or a dollar-quoted body does not end one."""
    tokens = _lex(sql)
    # Token offsets, to turn each statement's first and last token into line numbers.
    starts: list[int] = []
    offset = 0
    for _, value in tokens:
        starts.append(offset)
        offset += len(value)
    out: list[Statement] = []
    index = 0
    for count in _split(tokens):
        chunk = tokens[index : index + count]
        significant = [i for i, (ttype, _) in enumerate(chunk, index) if not _ignorable(ttype)]
        index += count
        if not significant or all(tokens[i][1] == ";" for i in significant):
            continue
        first, last = significant[0], significant[-1]
        out.append(
            Statement(
                line=sql.count("\n", 0, starts[first]) + 1,
                end_line=sql.count("\n", 0, starts[last]) + 1,
                text=_one_line(value for ttype, value in chunk if ttype not in _T.Comment),
                words=tuple(w for i in significant for w in _words(*tokens[i])),
            )
        )
    return out


def destructive_statements(path: Path, rel: str) -> list[Finding]:
    """Our own gate over one migration file, independent of squawk's rule set: every
    statement that loses data or breaks the release still running, at its first line."""
    return list(_destructive(_statements_of(path), rel))


def _destructive(statements: list[Statement], rel: str) -> Iterator[Finding]:
    for stmt in statements:
        for kind, targets in _classify(stmt.words).items():
            yield Finding(
                file=rel,
                line=stmt.line,
                rule=kind,
                message=_MESSAGES[kind].format(", ".join(dict.fromkeys(targets))),
                statement=stmt.text,
                destructive=True,
            )


def gate(
    files: Sequence[Path], root: Path, squawk: str | None, *, timeout: float = SQUAWK_TIMEOUT
) -> GateReport:
    """squawk plus our own gate over the pending migrations `files` (absolute, or relative to
    `root`; findings name them relative to `root`), merged:
    a change both report for the same statement is listed once (ours, naming squawk's rule).

    Fails closed: no squawk, a squawk that crashes, times out or prints no JSON report, or
    an unreadable file raise MigrateError rather than pass the migrations unlinted."""
    if squawk is None:
        raise MigrateError(
            "squawk is not available, so the pending migrations cannot be linted; provision it "
            "(wormhole-ci installs squawk-cli from its hash-locked requirements) and retry"
        )
    version = squawk_version(squawk, timeout=timeout)
    if not files:
        return GateReport((), version)
    located = [_locate(f, root) for f in files]
    # Our own reading first: an unreadable file is named as such, not as a squawk failure.
    statements = {rel: _statements_of(full) for full, rel in located}
    ours = [
        finding
        for rel, stmts in statements.items()
        for finding in (*_destructive(stmts, rel), *_unchecked(stmts, rel))
    ]
    # Only the service's own .squawk.toml (or none): a config squawk would otherwise find
    # in a directory above the source must not change what is linted.
    config = root / ".squawk.toml"
    argv = squawk_argv(
        squawk, list(statements), config=str(config) if config.is_file() else os.devnull
    )
    done = _run(argv, root, timeout)
    # squawk exits 1 both for "violations found" and for its own errors; only a JSON report
    # on stdout tells them apart (parse_squawk raises without one).
    if done.returncode not in (0, 1) or not done.stdout.strip():
        raise MigrateError(
            f"squawk exited {done.returncode} without a report: {_tail(done.stderr or done.stdout)}"
        )
    linted = parse_squawk(done.stdout, root)
    return GateReport(_merge(ours, linted, statements), version)


def squawk_version(binary: str, *, timeout: float = SQUAWK_TIMEOUT) -> str:
    """`squawk 2.70.0`, as the binary says; MigrateError when it does not run."""
    done = _run([binary, "--version"], None, timeout)
    version = done.stdout.strip()
    if done.returncode != 0 or not version.startswith("squawk"):
        raise MigrateError(
            f"squawk at {binary} does not run (exit {done.returncode}): "
            f"{_tail(done.stderr or done.stdout)}"
        )
    return version


def provision_squawk(cache_dir: Path, who: str = "migrate") -> str:
    """squawk-cli from its hash-locked requirements, in its own venv under the cache."""
    try:
        return Provisioner(cache_dir).python_tool("squawk", "squawk", who)
    except ProvisionError as exc:
        raise MigrateError(f"squawk: {exc}") from None


def blocked_message(report: GateReport) -> str:
    """Why the deploy stops: each destructive change's file, line and statement, and the way
    out. Empty when nothing blocks."""
    if not report.blocking:
        return ""
    lines = [BLOCKED]
    for f in report.blocking:
        lines.append(f"  {f.file}:{f.line}: {f.rule}: {f.message}")
        lines.append(f"    {f.statement}")
    return "\n".join(lines)


def _unchecked(statements: list[Statement], rel: str) -> Iterator[Finding]:
    """A warning for each `DO` block: its body (often dynamic SQL) is read by neither squawk
    nor our gate, so a destructive change inside it would pass unseen."""
    for stmt in statements:
        if stmt.words[:1] == (Word("word", "DO"),):
            yield Finding(
                rel,
                stmt.line,
                "unchecked-do-block",
                "a DO block's body is not checked for destructive changes: review it by hand",
                stmt.text,
                destructive=False,
            )


def _merge(
    ours: list[Finding], linted: list[Finding], statements: dict[str, list[Statement]]
) -> tuple[Finding, ...]:
    """Our findings plus squawk's, less squawk's destructive ones that repeat ours (same
    file, same statement, same kind of change)."""
    index = {(f.file, f.line, f.rule): i for i, f in enumerate(ours)}
    merged = list(ours)
    for f in linted:
        kind = SQUAWK_DESTRUCTIVE.get(f.rule)
        found = _statement_at(statements.get(f.file, []), f.line)
        i = index.get((f.file, found.line if found else f.line, kind or ""))
        if kind is not None and i is not None:
            mine = merged[i]
            merged[i] = Finding(
                mine.file,
                mine.line,
                mine.rule,
                f"{mine.message} (squawk: {f.rule})",
                mine.statement,
                destructive=True,
            )
            continue
        merged.append(f)
    return tuple(sorted(merged, key=lambda f: (f.file, f.line, not f.destructive, f.rule)))


def _classify(words: tuple[Word, ...]) -> dict[str, list[str]]:
    """The destructive kinds of change one statement makes, each with what it touches."""
    head = [w.text if w.kind == "word" else "" for w in words[:3]]
    kinds: dict[str, list[str]] = {}
    if head[:1] == ["DROP"] and head[1:2] in (["TABLE"], ["SCHEMA"], ["DATABASE"]):
        kind = {"TABLE": "drop-table", "SCHEMA": "drop-schema", "DATABASE": "drop-database"}[
            head[1]
        ]
        kinds[kind] = _names(words[2:])
    elif head[:1] == ["TRUNCATE"]:
        kinds["truncate"] = _names(words[1:])
    elif head[:2] == ["DELETE", "FROM"] and not any(
        w.kind == "word" and w.text == "WHERE" for w in _top_level(words)
    ):
        kinds["delete-all"] = _names(words[2:])[:1]
    elif head[:2] == ["ALTER", "TABLE"]:
        rest = _skip(list(words[2:]), "IF", "EXISTS")
        rest = _skip(rest, "ONLY")
        table, rest = _take_name(rest)
        if rest[:1] and rest[0].text == "*":
            rest = rest[1:]
        for action in _split_actions(rest):
            for kind, target in _alter_action(table, action):
                kinds.setdefault(kind, []).append(target)
    return kinds


def _alter_action(table: str, action: list[Word]) -> Iterator[tuple[str, str]]:
    """The destructive kind of one `ALTER TABLE` action (`DROP COLUMN x`, `ALTER x TYPE …`)."""
    verbs = [w.text if w.kind == "word" else "" for w in action]
    verb, second = [*verbs, "", ""][:2]
    if verb == "RENAME" and second != "CONSTRAINT":
        if second == "TO":
            yield "rename", f"table {table} to {_take_name(action[2:])[0]}"
        else:
            old, rest = _take_name(_skip(action[1:], "COLUMN"))
            yield "rename", f"column {table}.{old} to {_take_name(_skip(rest, 'TO'))[0]}"
    elif verb == "DROP" and second != "CONSTRAINT":
        column, _ = _take_name(_skip(_skip(action[1:], "COLUMN"), "IF", "EXISTS"))
        yield "drop-column", f"{table}.{column}"
    elif verb == "ALTER" and second != "CONSTRAINT":
        column, rest = _take_name(_skip(action[1:], "COLUMN"))
        words = [w.text if w.kind == "word" else "" for w in rest]
        if words[:1] == ["TYPE"] or words[:3] == ["SET", "DATA", "TYPE"]:
            yield "alter-column-type", f"{table}.{column}"
        elif words[:3] == ["SET", "NOT", "NULL"]:
            yield "set-not-null", f"{table}.{column}"
    elif verb == "ADD" and second not in _TABLE_CONSTRAINTS:
        column, rest = _take_name(_skip(_skip(action[1:], "COLUMN"), "IF", "NOT", "EXISTS"))
        top = [w.text if w.kind == "word" else "" for w in _top_level(tuple(rest))]
        required = _has(top, "NOT", "NULL") or _has(top, "PRIMARY", "KEY")
        filled = "DEFAULT" in top or "GENERATED" in top or (top[:1] and top[0] in _SERIAL_TYPES)
        if required and not filled:
            yield "add-required-column", f"{table}.{column}"


def _split_actions(words: list[Word]) -> list[list[Word]]:
    """`ALTER TABLE t a1, a2` → [a1, a2]: commas inside parentheses do not separate actions."""
    actions: list[list[Word]] = [[]]
    depth = 0
    for w in words:
        if w.kind == "punct" and w.text == "(":
            depth += 1
        elif w.kind == "punct" and w.text == ")":
            depth = max(0, depth - 1)
        elif w.kind == "punct" and w.text in (",", ";") and depth == 0:
            actions.append([])
            continue
        actions[-1].append(w)
    return [a for a in actions if a]


def _top_level(words: tuple[Word, ...]) -> list[Word]:
    """The words outside any parentheses (a CHECK's `x IS NOT NULL` is not the column's)."""
    out: list[Word] = []
    depth = 0
    for w in words:
        if w.kind == "punct" and w.text == "(":
            depth += 1
        elif w.kind == "punct" and w.text == ")":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(w)
    return out


def _skip(words: list[Word], *expected: str) -> list[Word]:
    """`words` without the leading keywords `expected`, if they are all there."""
    head = [w.text if w.kind == "word" else "" for w in words[: len(expected)]]
    return words[len(expected) :] if head == list(expected) else words


def _take_name(words: list[Word]) -> tuple[str, list[Word]]:
    """A possibly schema-qualified name at the front of `words`, and what follows it."""
    parts: list[str] = []
    i = 0
    while i < len(words) and words[i].kind in ("word", "ident"):
        parts.append(str(words[i]))
        if i + 1 < len(words) and words[i + 1].text == "." and words[i + 1].kind == "punct":
            i += 2
            continue
        i += 1
        break
    return ".".join(parts) or "?", words[i:]


def _names(words: Iterable[Word]) -> list[str]:
    """The object names of a `DROP TABLE a, b` / `TRUNCATE a, b` list."""
    rest = _skip(_skip(_skip(list(words), "IF", "EXISTS"), "TABLE"), "ONLY")
    names: list[str] = []
    while rest:
        name, rest = _take_name(rest)
        names.append(name)
        while rest and not (rest[0].kind == "punct" and rest[0].text == ","):
            rest = rest[1:]
        rest = rest[1:]
        if rest and rest[0].kind not in ("word", "ident"):
            break
    return names or ["?"]


def _has(words: list[str], first: str, second: str) -> bool:
    return any(a == first and b == second for a, b in pairwise(words))


@cache
def _lexer() -> Any:
    """sqlparse's lexer with PostgreSQL's lexical rules where its default (a mix of dialects)
    differs: `'…'` has no backslash escapes (standard_conforming_strings; `E'…'` does), `"…"`
    has none either, and `#`, backticks and `[…]` are operators or subscripts, not comments
    or names. A private instance: sqlparse's shared default lexer is left as it is."""
    replaced: dict[str, str | None] = {
        r"(--|# )\+.*?(\r\n|\r|\n|$)": r"--\+.*?(\r\n|\r|\n|$)",
        r"(--|# ).*?(\r\n|\r|\n|$)": r"--.*?(\r\n|\r|\n|$)",
        r"'(''|\\'|[^'])*'": r"'(''|[^'])*'",
        r'"(""|\\"|[^"])*"': r'"(""|[^"])*"',
        r'(""|".*?[^\\]")': None,
        r"`(``|[^`])*`": None,
        "\u00b4(\u00b4\u00b4|[^\u00b4])*\u00b4": None,  # acute accents, as sqlparse has them
        r"(?<![\w\])])(\[[^\]\[]+\])": None,
    }
    regex: list[tuple[str, object]] = [(r"[eE]'(''|\\[\s\S]|[^'\\])*'", _T.String.Single)]
    seen: set[str] = set()
    for pattern, action in _keywords.SQL_REGEX:
        if pattern in replaced:
            seen.add(pattern)
            new = replaced[pattern]
            if new is not None:
                regex.append((new, action))
        else:
            regex.append((pattern, action))
    if seen != set(replaced):
        # Another sqlparse whose rules moved: splitting with the wrong rules could hide a
        # statement, so the gate stops instead.
        raise MigrateError(
            f"sqlparse {_SQLPARSE_VERSION}: its lexer rules changed; the SQL gate needs "
            "the sqlparse pinned in pyproject.toml"
        )
    lexer = _lexer_module.Lexer()
    lexer.default_initialization()
    lexer.set_SQL_REGEX(regex)
    return lexer


def _lex(sql: str) -> list[tuple[object, str]]:
    """Every token of `sql`, in order; their values put together are `sql` again."""
    return [(ttype, str(value)) for ttype, value in _lexer().get_tokens(sql)]


def _split(tokens: list[tuple[object, str]]) -> list[int]:
    """How many of `tokens` each statement takes, in order (sqlparse's statement splitter)."""
    splitter = _engine.StatementSplitter()
    return [len(stmt.tokens) for stmt in splitter.process(iter(tokens))]


def _ignorable(ttype: object) -> bool:
    return ttype in _T.Whitespace or ttype in _T.Comment


def _words(ttype: object, value: str) -> Iterator[Word]:
    if ttype in _T.String.Symbol:
        yield Word("ident", value[1:-1].replace('""', '"'))
    elif ttype in _T.Keyword or ttype in _T.Name:
        # Multi-word keywords (`NOT NULL`, `IF EXISTS`, `PRIMARY KEY`) are one token.
        for part in value.split():
            yield Word("word", part.upper())
    elif ttype in _T.Punctuation:
        yield Word("punct", value)
    else:
        yield Word("other", value)


def _one_line(values: Iterable[str]) -> str:
    text = " ".join("".join(values).split())
    return text if len(text) <= _STATEMENT_CHARS else text[: _STATEMENT_CHARS - 1] + "…"


def _statements_of(path: Path) -> list[Statement]:
    try:
        return split_statements(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise MigrateError(f"migration SQL: cannot read {path}: {exc}") from None


def _statement_at(statements: list[Statement], line: int) -> Statement | None:
    for stmt in statements:
        if stmt.line <= line <= stmt.end_line:
            return stmt
    return None


def _line_of(path: Path, line: int) -> str:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return ""
    return _one_line(lines[line - 1 : line])


def _locate(path: Path, root: Path) -> tuple[Path, str]:
    """A migration file as a path to open and as its name relative to `root`. A relative
    path is taken relative to `root`, unless it already starts with a relative `root`."""
    inside = path.is_absolute() or (not root.is_absolute() and path.is_relative_to(root))
    full = path if inside else root / path
    return full, _relative(full.resolve(), root)


def _relative(path: Path, root: Path) -> str:
    if not path.is_absolute():
        return path.as_posix()
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _run(argv: list[str], cwd: Path | None, timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise MigrateError(f"squawk did not finish within {timeout:.0f} s") from None
    except OSError as exc:
        raise MigrateError(f"squawk could not be started ({argv[0]}): {exc}") from None


def _tail(text: str) -> str:
    return " ".join(text.strip().splitlines()[-3:])[:300] or "(no output)"

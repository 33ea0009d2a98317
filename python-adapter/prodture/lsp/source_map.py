"""Where recorded call sites are now: map a trace's sites onto the current text of a Python file.

A trace records each effect's call site as ``(file, line, function)`` on the recording machine.
The code may have moved since, so a site is matched to the *current* call of the same effect
type inside the same function, by order: the k-th recorded ``ChargeCard`` site of ``place_order``
is the k-th ``yield ChargeCard(...)`` there now (when a type occurs more than once, the line
offset seen at the nearest unambiguous site decides). When the file is byte-for-byte the one
recorded (the header's fingerprint), recorded lines are used as they are. A site whose effect
type no longer appears in the function maps to nothing: its hint goes away (stale).
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import os
from collections.abc import Sequence

from .index import SiteCalls, TraceIndex
from .recorded_paths import is_same_file


@dataclasses.dataclass(slots=True, eq=False)
class CallSite:
    """A call in the current code that may perform an effect."""

    name: str  # the callee's short name: ChargeCard for ``yield ChargeCard(...)`` / ``yield fx.ChargeCard(...)``
    line: int  # 1-based line a suspended frame reports (the ``yield`` / ``await`` line)
    start_line: int  # the enclosing statement, 1-based, inclusive
    end_line: int
    yielded: bool  # directly under yield / yield from / await


@dataclasses.dataclass(slots=True, eq=False)
class FunctionInfo:
    name: str
    qualname: str
    line: int  # the ``def`` line, 1-based
    end_line: int
    calls: list[CallSite]


@dataclasses.dataclass(slots=True, eq=False)
class DocumentAnalysis:
    path: str
    module: str | None
    fingerprint: str  # as the recorder computes it for the handler's file
    functions: list[FunctionInfo]
    by_name: dict[str, list[FunctionInfo]]
    by_qualname: dict[str, FunctionInfo]


def _callee(call: ast.Call) -> str | None:
    f = call.func
    if isinstance(f, ast.Name):
        return f.id
    if isinstance(f, ast.Attribute):
        return f.attr
    return None


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


def _walk_local(node: ast.AST):
    """ast.walk that does not enter nested functions, classes or lambdas (their own scopes)."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        for child in ast.iter_child_nodes(n):
            if not isinstance(child, _SCOPES):
                stack.append(child)


def _calls_in(expr_root: ast.AST, start: int, end: int, out: list[CallSite]) -> None:
    yielded_ids: set[int] = set()
    for n in _walk_local(expr_root):
        if isinstance(n, (ast.Yield, ast.YieldFrom, ast.Await)) and isinstance(n.value, ast.Call):
            name = _callee(n.value)
            if name:
                yielded_ids.add(id(n.value))
                out.append(CallSite(name, n.lineno, start, end, True))
    for n in _walk_local(expr_root):
        if isinstance(n, ast.Call) and id(n) not in yielded_ids:
            name = _callee(n)
            if name:
                out.append(CallSite(name, n.lineno, start, end, False))


_BODIES = ("body", "orelse", "finalbody", "handlers", "cases")


def _statements(body: list[ast.stmt], out: list[CallSite]) -> None:
    for stmt in body:
        if isinstance(stmt, _SCOPES):
            continue
        compound = [f for f in _BODIES if getattr(stmt, f, None)]
        if not compound:
            _calls_in(stmt, stmt.lineno, stmt.end_lineno or stmt.lineno, out)
            continue
        # A compound statement: its header expressions belong to its first line.
        for field in ("test", "iter", "items", "subject", "type"):
            value = getattr(stmt, field, None)
            if isinstance(value, ast.AST):
                _calls_in(value, stmt.lineno, stmt.lineno, out)
            elif isinstance(value, list):
                for v in value:
                    if isinstance(v, ast.AST):
                        _calls_in(v, stmt.lineno, stmt.lineno, out)
        for field in compound:
            children = getattr(stmt, field)
            for child in children:
                if isinstance(child, (ast.ExceptHandler, ast.match_case)):
                    _statements(child.body, out)
                elif isinstance(child, ast.stmt):
                    _statements([child], out)


def _functions(tree: ast.Module) -> list[FunctionInfo]:
    found: list[FunctionInfo] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                qual = prefix + child.name
                calls: list[CallSite] = []
                _statements(child.body, calls)
                calls.sort(key=lambda c: (c.line, c.start_line))
                found.append(
                    FunctionInfo(
                        child.name, qual, child.lineno, child.end_lineno or child.lineno, calls
                    )
                )
                visit(child, qual + ".<locals>.")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            elif not isinstance(child, ast.Lambda):
                visit(child, prefix)

    visit(tree, "")
    return found


def module_name(path: str, roots: Sequence[str] = ()) -> str | None:
    """The dotted module of a file: walk up through packages (``__init__.py``); else relative to
    a workspace root."""
    path = os.path.abspath(path)
    directory, filename = os.path.split(path)
    stem = os.path.splitext(filename)[0]
    parts = [] if stem == "__init__" else [stem]
    while os.path.isfile(os.path.join(directory, "__init__.py")):
        directory, package = os.path.split(directory)
        parts.insert(0, package)
    if len(parts) > 1 or not roots:
        return ".".join(parts) or None
    for root in sorted(roots, key=len, reverse=True):
        root = os.path.abspath(root)
        if path.startswith(root + os.sep):
            rel = os.path.splitext(os.path.relpath(path, root))[0].split(os.sep)
            if rel[-1] == "__init__":
                rel = rel[:-1]
            if rel and rel[0] in ("src", "lib") and len(rel) > 1:
                rel = rel[1:]
            return ".".join(rel) or None
    return ".".join(parts) or None


def analyze(path: str, text: str, roots: Sequence[str] = ()) -> DocumentAnalysis:
    """Parse ``text``; raises ``SyntaxError`` (the caller keeps its last good analysis)."""
    tree = ast.parse(text, filename=path)
    functions = _functions(tree)
    by_name: dict[str, list[FunctionInfo]] = {}
    for f in functions:
        by_name.setdefault(f.name, []).append(f)
    return DocumentAnalysis(
        path=os.path.abspath(path),
        module=module_name(path, list(roots)),
        fingerprint=hashlib.sha256(text.encode("utf-8")).hexdigest()[:16],
        functions=functions,
        by_name=by_name,
        by_qualname={f.qualname: f for f in functions},
    )


# ---------------------------------------------------------------------------------------------
# Matching a trace to a document


@dataclasses.dataclass(slots=True, eq=False)
class SiteMap:
    """One trace seen through one document: its handler function here, and where its sites are."""

    trace: TraceIndex
    handler: FunctionInfo | None
    placed: list[tuple[SiteCalls, CallSite]]  # recorded site → current call (stale sites left out)
    stale: list[SiteCalls]

    @property
    def relevant(self) -> bool:
        return self.handler is not None or bool(self.placed)

    def at_line(self, line: int) -> list[tuple[SiteCalls, CallSite]]:
        """Sites whose current statement covers 1-based ``line``."""
        return [(s, c) for s, c in self.placed if c.start_line <= line <= c.end_line]

    def call_for(self, site: SiteCalls | None) -> CallSite | None:
        if site is None:
            return None
        for s, c in self.placed:
            if s is site:
                return c
        return None


def handler_function(trace: TraceIndex, doc: DocumentAnalysis) -> FunctionInfo | None:
    module, _, qualname = trace.handler.partition(":")
    fn = doc.by_qualname.get(qualname)
    if fn is None:
        return None
    if doc.module == module:
        return fn
    # Packaged differently here (another root, a src/ layout): one dotted name ends the other.
    mine = doc.module or os.path.splitext(os.path.basename(doc.path))[0]
    if mine.endswith("." + module) or module.endswith("." + mine):
        return fn
    return None


def _file_matches(recorded: str, doc: DocumentAnalysis, handler_file: bool) -> bool:
    # In the handler's own document the file name alone is enough.
    return is_same_file(recorded, doc.path, min_shared=1 if handler_file else 2)


def _pick_function(candidates: list[FunctionInfo], lines: list[int]) -> FunctionInfo:
    if len(candidates) == 1:
        return candidates[0]
    for f in candidates:
        if all(f.line <= ln <= f.end_line for ln in lines):
            return f
    return candidates[0]


def map_trace(trace: TraceIndex, doc: DocumentAnalysis) -> SiteMap:
    handler = handler_function(trace, doc)
    handler_file = handler is not None
    groups: dict[str, list[SiteCalls]] = {}
    for s in trace.sites:
        if s.function in doc.by_name and _file_matches(s.file, doc, handler_file):
            groups.setdefault(s.function, []).append(s)
    placed: list[tuple[SiteCalls, CallSite]] = []
    stale: list[SiteCalls] = []
    # The recorded lines are still right if this is the very file the handler was recorded from.
    exact = handler_file and bool(trace.fingerprint) and trace.fingerprint == doc.fingerprint
    for function, sites in groups.items():
        fn = _pick_function(doc.by_name[function], [s.line for s in sites])
        if exact:
            _place_exact(sites, fn, placed, stale)
        else:
            _place_by_order(sites, fn, placed, stale)
    return SiteMap(trace, handler, placed, stale)


def _candidates(fn: FunctionInfo, short_type: str) -> list[CallSite]:
    named = [c for c in fn.calls if c.name == short_type]
    yielded = [c for c in named if c.yielded]
    return yielded or named


def _place_exact(sites: list[SiteCalls], fn: FunctionInfo, placed: list, stale: list) -> None:
    for s in sites:
        here = [c for c in fn.calls if c.start_line <= s.line <= c.end_line]
        best = next((c for c in here if c.name == s.short_type and c.line == s.line), None)
        best = best or next((c for c in here if c.name == s.short_type), None)
        if best is None and here:
            # The effect was built elsewhere and yielded here (``yield effect``): same file, same line.
            best = CallSite(s.short_type, s.line, here[0].start_line, here[0].end_line, True)
        if best is None and fn.line <= s.line <= fn.end_line:
            best = CallSite(s.short_type, s.line, s.line, s.line, True)
        (placed.append((s, best)) if best is not None else stale.append(s))


_SKIP = 1_000_000  # cost of leaving a recorded site unplaced: place as many as there are calls


def _place_by_order(sites: list[SiteCalls], fn: FunctionInfo, placed: list, stale: list) -> None:
    by_type: dict[str, list[SiteCalls]] = {}
    for s in sorted(sites, key=lambda s: s.line):
        by_type.setdefault(s.short_type, []).append(s)
    cands = {t: _candidates(fn, t) for t in by_type}
    # Anchors: types seen once in the recording and once in the code. Their line offset says how
    # far the code around them moved; other sites use the offset of the nearest anchor.
    anchors = sorted(
        (rs[0].line, cands[t][0].line - rs[0].line)
        for t, rs in by_type.items()
        if len(rs) == 1 and len({c.line for c in cands[t]}) == 1
    )

    def shift(line: int) -> int:
        if not anchors:
            return 0
        return min(anchors, key=lambda a: (abs(a[0] - line), a[0] > line))[1]

    for t, rs in by_type.items():
        cs = cands[t]
        if not cs:
            stale.extend(rs)
            continue
        for s, c in _align(rs, cs, shift):
            (placed.append((s, c)) if c is not None else stale.append(s))


def _align(
    rs: list[SiteCalls], cs: list[CallSite], shift
) -> list[tuple[SiteCalls, CallSite | None]]:
    """Order-preserving assignment of recorded sites to calls, closest expected line first."""
    n, m = len(rs), len(cs)
    if n == m:
        return list(zip(rs, cs, strict=False))
    want = [r.line + shift(r.line) for r in rs]
    inf = float("inf")
    cost = [[inf] * (m + 1) for _ in range(n + 1)]
    step: list[list[str]] = [[""] * (m + 1) for _ in range(n + 1)]
    cost[0][0] = 0
    for i in range(n + 1):
        for j in range(m + 1):
            here = cost[i][j]
            if here == inf:
                continue
            if j < m and here < cost[i][j + 1]:
                cost[i][j + 1], step[i][j + 1] = here, "c"
            if i < n and here + _SKIP < cost[i + 1][j]:
                cost[i + 1][j], step[i + 1][j] = here + _SKIP, "r"
            if i < n and j < m:
                c = here + abs(want[i] - cs[j].line)
                if c < cost[i + 1][j + 1]:
                    cost[i + 1][j + 1], step[i + 1][j + 1] = c, "m"
    out: list[tuple[SiteCalls, CallSite | None]] = []
    i, j = n, m
    while i or j:
        s = step[i][j]
        if s == "m":
            out.append((rs[i - 1], cs[j - 1]))
            i, j = i - 1, j - 1
        elif s == "r":
            out.append((rs[i - 1], None))
            i -= 1
        else:
            j -= 1
    out.reverse()
    return out

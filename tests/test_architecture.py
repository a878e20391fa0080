"""Architecture rules that import-linter cannot express (DESIGN.md §3, "Owners").

The import contracts themselves are in pyproject.toml ([tool.importlinter], run by `make lint`);
this module checks that the router contract names every router module.

`Clip.status` changes only in `app/clips/lifecycle.py`. The checker below reads the source of
`app/` and `workers/` with `ast` (nothing is imported) and reports every write of a clip's
status anywhere else:

- `X.status = V` (also `setattr(X, "status", V)`) where X is named like a clip (`clip`,
  `self.clip`, `Clip`, `pitch_clip`) or V is a clip status;
- `status=...` keywords: on `Clip(...)`; in `.values(...)` of `update(Clip)` / `insert(Clip)`;
  or with a clip-status value in any other function call (`self._update(status=ClipStatus.failed)`);
- dict entries: a `Clip.status` key, or a `"status"` key with a clip-status value
  (`{"media": media, "status": status}` with `status: ClipStatus`), and `d["status"] = V`;
- raw SQL strings of the shape `UPDATE clips ... SET ... status`.

A value is a clip status when it names `ClipStatus` (`ClipStatus.failed`, `models.ClipStatus(x)`)
or is a variable annotated `ClipStatus` in the same function. Writes of the other status
enums (UploadStatus, JobStatus, ReviewStatus) are never reported: an attribute write whose value
names one of them is skipped even on a clip-like name, and keywords are reported only for clip
values, `Clip(...)` or a clip UPDATE. Reading (`Clip.status == ...`, `.in_(...)`), filtering and
building response schemas (`ReviewedClip(status=clip.status)`, `ClipFilters(status=...)`: other
classes than `Clip`) are not writes.
"""

from __future__ import annotations

import ast
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("app", "workers")
OWNER = "app/clips/lifecycle.py"

CLIP_STATUS = "ClipStatus"
OTHER_STATUSES = re.compile(r"^(?!Clip)\w*Status$")  # UploadStatus, JobStatus, ReviewStatus...
CLIP_NAME = re.compile(r"clip", re.IGNORECASE)
RAW_SQL_WRITE = re.compile(r"\bUPDATE\s+clips\b.*\bSET\b.*\bstatus\b", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True, order=True)
class Violation:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def _names(node: ast.AST) -> set[str]:
    """Every identifier a value mentions (`models.ClipStatus.failed` -> models, ClipStatus)."""
    found: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            found.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            found.add(sub.attr)
    return found


def _callee(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _last_name(node: ast.AST) -> str:
    """`clip` for `clip`, `self.clip` and `rows[0].clip`; "" for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):
        return _last_name(node.value)
    return ""


def _is_clip_status_key(node: ast.AST | None) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "status"
        and _last_name(node.value) == "Clip"
    )


def _unpacked(target: ast.expr) -> list[ast.expr]:
    """The assigned expressions of a target: `a.status, (b, *c)` -> a.status, b, c."""
    if isinstance(target, ast.Tuple | ast.List):
        return [sub for element in target.elts for sub in _unpacked(element)]
    if isinstance(target, ast.Starred):
        return _unpacked(target.value)
    return [target]


def _is_status_str(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value == "status"


class _Checker(ast.NodeVisitor):
    def __init__(self, path: str) -> None:
        self.path = path
        self.found: list[Violation] = []
        # Variables annotated ClipStatus, per enclosing function (module level at the bottom).
        self.typed: list[set[str]] = [set()]
        self.seen: set[ast.Dict] = set()  # dicts already checked as `.values()` arguments

    # -- helpers -------------------------------------------------------------------------
    def report(self, node: ast.AST, what: str) -> None:
        self.found.append(Violation(self.path, getattr(node, "lineno", 0), what))

    def is_clip_status(self, value: ast.AST) -> bool:
        if isinstance(value, ast.Name) and any(value.id in scope for scope in self.typed):
            return True
        return CLIP_STATUS in _names(value)

    def names_other_status(self, value: ast.AST) -> bool:
        return any(OTHER_STATUSES.match(name) for name in _names(value))

    def on_clip_statement(self, call: ast.Call) -> bool:
        """`.values(...)` of a statement built from `update(Clip)` or `insert(Clip)`."""
        if _callee(call) != "values":
            return False
        node: ast.AST = call.func
        while isinstance(node, ast.Attribute | ast.Call):
            if (
                isinstance(node, ast.Call)
                and _callee(node) in {"update", "insert"}
                and node.args
                and _last_name(node.args[0]) == "Clip"
            ):
                return True
            node = node.func if isinstance(node, ast.Call) else node.value
        return False

    def attribute_write(self, node: ast.AST, target: ast.AST, value: ast.AST | None) -> None:
        if not (isinstance(target, ast.Attribute) and target.attr == "status"):
            return
        if value is not None and self.names_other_status(value):
            return  # upload.status = UploadStatus.aborted, request.status = ReviewStatus...
        owner = _last_name(target.value)
        if CLIP_NAME.search(owner) or (value is not None and self.is_clip_status(value)):
            self.report(node, f"{ast.unparse(target)} = ...")

    def dict_entries(self, node: ast.Dict, *, on_clip: bool) -> None:
        if node in self.seen:
            return
        self.seen.add(node)
        for key, value in zip(node.keys, node.values, strict=True):
            if _is_clip_status_key(key):
                self.report(key or node, "{Clip.status: ...}")
            elif _is_status_str(key) and (on_clip or self.is_clip_status(value)):
                self.report(key or node, '{"status": ...}')

    # -- scopes --------------------------------------------------------------------------
    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        args = node.args
        every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
        typed = {
            arg.arg
            for arg in every
            if arg is not None and arg.annotation and CLIP_STATUS in _names(arg.annotation)
        }
        typed |= {
            sub.target.id
            for sub in ast.walk(node)
            if isinstance(sub, ast.AnnAssign)
            and isinstance(sub.target, ast.Name)
            and CLIP_STATUS in _names(sub.annotation)
        }
        self.typed.append(typed)
        self.generic_visit(node)
        self.typed.pop()

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self.visit_FunctionDef(node)

    # -- writes --------------------------------------------------------------------------
    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            single = not isinstance(target, ast.Tuple | ast.List)
            for sub in _unpacked(target):  # also `a.status, b = ...`
                if isinstance(sub, ast.Attribute):
                    self.attribute_write(node, sub, node.value if single else None)
                elif (
                    single
                    and isinstance(sub, ast.Subscript)
                    and _is_status_str(sub.slice)
                    and self.is_clip_status(node.value)
                ):
                    self.report(node, f"{ast.unparse(sub)} = ...")
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.attribute_write(node, node.target, node.value)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.attribute_write(node, node.target, node.value)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = _callee(node)
        if name == "setattr" and len(node.args) == 3 and _is_status_str(node.args[1]):
            target = ast.Attribute(value=node.args[0], attr="status", ctx=ast.Store())
            self.attribute_write(node, target, node.args[2])
        on_clip = self.on_clip_statement(node)
        for keyword in node.keywords:
            if keyword.arg != "status":
                continue
            if name == "Clip" or on_clip:
                self.report(keyword, f"{name}(status=...)")
            elif not name[:1].isupper() and self.is_clip_status(keyword.value):
                # A function or method handed a clip status to write; other classes than
                # Clip (schemas, filters) only carry it.
                self.report(keyword, f"{name}(status={ast.unparse(keyword.value)})")
        for arg in node.args:
            if isinstance(arg, ast.Dict) and on_clip:
                self.dict_entries(arg, on_clip=True)
        self.generic_visit(node)

    def visit_Dict(self, node: ast.Dict) -> None:
        self.dict_entries(node, on_clip=False)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and RAW_SQL_WRITE.search(node.value):
            self.report(node, "raw SQL UPDATE clips SET status")


def find_clip_status_writes(source: str, path: str = "<snippet>") -> list[Violation]:
    """Every write of a clip's status in `source`; empty for the lifecycle module itself."""
    if path == OWNER:
        return []
    checker = _Checker(path)
    checker.visit(ast.parse(source, filename=path))
    return sorted(set(checker.found))


def scan(root: Path = ROOT) -> list[Violation]:
    found: list[Violation] = []
    for package in SCANNED:
        for file in sorted((root / package).rglob("*.py")):
            path = file.relative_to(root).as_posix()
            found += find_clip_status_writes(file.read_text(encoding="utf-8"), path)
    return found


# -- the rule on the tree -------------------------------------------------------------------


def test_only_the_lifecycle_module_writes_clip_status() -> None:
    found = scan()
    assert not found, (
        f"Clip.status is written outside {OWNER} (route the transition through it):\n"
        + "\n".join(f"  {violation}" for violation in found)
    )


# -- the checker can fail ---------------------------------------------------------------------

OFFENDING = {
    "attribute on a clip": """
async def abort(clip, upload):
    clip.status = ClipStatus.failed
""",
    "attribute on self.clip, any value": """
def f(self):
    self.clip.status = "failed"
""",
    "attribute with a clip-status value on another name": """
def f(row):
    row.status = models.ClipStatus.ready
""",
    "setattr on a clip": """
def f(clip):
    setattr(clip, "status", ClipStatus.ready)
""",
    "update(Clip).values(status=...)": """
async def f(session, new):
    await session.execute(update(Clip).where(Clip.id == 1).values(status=new))
""",
    "sa.update(Clip) values with a dict": """
stmt = sa.update(Clip).values({"status": "ready", "progress": 1.0})
""",
    "Clip.status key": """
stmt = update(Clip).values({Clip.status: ClipStatus.ready})
""",
    "Clip(...) created with a status": """
clip = Clip(id=1, status=ClipStatus.awaiting_upload)
""",
    "helper handed a clip status": """
async def fail(self):
    await self._update(status=ClipStatus.failed, media=None)
""",
    "dict built with a ClipStatus-typed variable": """
async def publish(self, media, status: ClipStatus):
    values = {"media": media, "status": status}
    return await self._update(**values)
""",
    "dict item assigned a clip status": """
def f(values):
    values["status"] = ClipStatus.failed
""",
    "unpacking into a clip's status": """
def f(clip):
    clip.status, clip.media = new, None
""",
    "raw SQL": """
SQL = "UPDATE clips SET status = 'failed' WHERE id = :id"
""",
}


@pytest.mark.parametrize("source", OFFENDING.values(), ids=OFFENDING.keys())
def test_checker_reports_a_clip_status_write(source: str) -> None:
    found = find_clip_status_writes(source, "app/uploads/service.py")
    assert len(found) == 1, found
    assert found[0].path == "app/uploads/service.py"


def test_checker_reports_the_line() -> None:
    source = "x = 1\n\ndef abort(clip):\n    clip.status = ClipStatus.failed\n"
    assert [v.line for v in find_clip_status_writes(source, "workers/x.py")] == [4]


ALLOWED = {
    "upload status": """
def f(upload, clip_upload):
    upload.status = UploadStatus.aborted
    clip_upload.status = UploadStatus.expired
""",
    "review status": """
def f(request):
    request.status = ReviewStatus.completed
""",
    "job status in an UPDATE and a dict": """
def f(permanent, values):
    status = JobStatus.failed if permanent else JobStatus.dead
    values.update(status=status, finished_at=now)
    stmt = update(JOBS).values(status=JobStatus.queued)
    row = {"status": JobStatus.running}
""",
    "upload UPDATE": """
stmt = update(Upload).where(Upload.id == 1).values(status=UploadStatus.completed)
""",
    "reading and filtering clip status": """
stmt = select(Clip).where(Clip.status == ClipStatus.ready, Clip.status.in_(PLAYABLE))
ok = clip.status != ClipStatus.ready
filters = ClipFilters(status=ClipStatus.ready)
""",
    "response schema carrying a clip's status": """
out = ReviewedClip(id=clip.id, status=clip.status)
""",
    "clip status as an index or a deeper attribute": """
def f(counts, clip):
    counts[clip.status] = 1
    counts[clip.status] += 1
    clip.status_changed_at = now
""",
    "raw SQL read": """
SQL = "SELECT media, status, deleted_at FROM clips WHERE id = $1"
""",
    "HTTP status": """
def f(response):
    response.status = 500
    status, body = await produce()
""",
}


@pytest.mark.parametrize("source", ALLOWED.values(), ids=ALLOWED.keys())
def test_checker_allows_other_status_writes_and_reads(source: str) -> None:
    assert find_clip_status_writes(source, "app/uploads/service.py") == []


def test_the_lifecycle_module_may_write_clip_status() -> None:
    source = OFFENDING["attribute on a clip"]
    assert find_clip_status_writes(source, OWNER) == []
    assert find_clip_status_writes(source, "app/clips/service.py") != []


# -- the import contracts cover every router --------------------------------------------------


def _matches(module: str, pattern: str) -> bool:
    """import-linter's wildcards: `*` is one whole module name, `**` one or more."""
    regex = re.escape(pattern).replace(r"\*\*", r"[^.]+(?:\.[^.]+)*").replace(r"\*", r"[^.]+")
    return re.fullmatch(regex, module) is not None


def test_the_router_contract_names_every_router() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    (contract,) = [c for c in contracts if c["name"] == "routers do not import sqlalchemy"]
    routers = [
        ".".join(file.relative_to(ROOT).with_suffix("").parts)
        for file in sorted((ROOT / "app").rglob("*router.py"))
    ]
    assert routers
    missing = [
        module
        for module in routers
        if not any(_matches(module, pattern) for pattern in contract["source_modules"])
    ]
    assert not missing, f"add to the contract's source_modules in pyproject.toml: {missing}"


def test_wildcards_match_like_import_linter() -> None:
    assert _matches("app.clips.router", "app.*.router")
    assert not _matches("app.clips.uploads_router", "app.*.router")
    assert not _matches("app.a.b.router", "app.*.router")
    assert _matches("app.a.b.router", "app.**.router")

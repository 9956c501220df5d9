"""What the installed transformers does with each argument of a learner's ``from_pretrained(...)`` call, read
from its source files when asked (with :mod:`ast`; nothing of transformers is imported, so no torch either).

There is no table of arguments here. The reader finds, in the installed ``PreTrainedModel.from_pretrained`` (and
``_BaseAutoModelClass.from_pretrained`` for an ``Auto*`` class), the shapes that decide an argument's fate:

- a parameter of the signature, or ``x = kwargs.pop("name", ...)``: the argument is read where ``x`` is read;
  each read is judged by the ``if`` tests around it (``if device_map is not None``, ``"disk" in ...``), evaluated
  against the call where they test another argument, left open (decided at run time) where they do not;
- a value handed to a loading config (``load_config = LoadStateDictConfig(disk_offload_folder=offload_folder)``)
  is followed to the reads of that field in the loading modules (:data:`_LOADING_MODULES`);
- ``kwargs.pop(...)`` whose value nothing reads (the "Not used anymore" loop): popped and ignored;
- a variable read only to fill another argument's (``dtype = ... torch_dtype``): renamed;
- everything else goes on with ``**kwargs`` to the config's ``from_pretrained(..., return_unused_kwargs=True)``
  (a config attribute is set) and what is left to ``cls(config, *model_args, **model_kwargs)``: the model class's
  ``__init__``, read from its own file, takes it or raises ``TypeError``.

One premise is built in: only a device map puts weights on ``"disk"``, so a test such as ``param_device ==
"disk"`` is false for a call without ``device_map``. Every verdict cites the file and line that decides it and
names the version it was read from; where an expected shape is not in the installed source (another version) the
verdict says so and asks for a measurement instead of guessing.

>>> reading = read_call("AutoModelForCausalLM.from_pretrained(path, low_cpu_mem_usage=True, offload_folder=tmp)")
>>> [(v.argument, v.kind) for v in reading.verdicts]
[('path', 'used'), ('low_cpu_mem_usage', 'ignored'), ('offload_folder', 'no_effect')]
>>> reading.verdicts[1].citations[0].file
'transformers/modeling_utils.py'
"""

from __future__ import annotations

import ast
import difflib
import functools
import importlib.util
import io
import json
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .calls import CHECKPOINT_PARAMETER, ParsedCall, literal_value, parse_call

__all__ = [
    "VERDICT_LABELS",
    "ArgumentVerdict",
    "CallReading",
    "Citation",
    "forget_parsed_sources",
    "read_argument",
    "read_call",
    "transformers_root",
]

# Every kind of verdict and how it is headed wherever one is shown.
VERDICT_LABELS = {
    "used": "used",
    "depends": "used only if a condition holds when it runs",
    "ignored": "popped and ignored",
    "renamed": "renamed (deprecated)",
    "no_effect": "accepted, but without effect in this call",
    "config": "passed on to the config",
    "model": "passed on to the model's __init__",
    "fails": "refused by the model's __init__ (TypeError)",
    "removed": "not a from_pretrained argument any more",
    "unknown": "not an argument from_pretrained knows",
    "unseen": "not visible in the line",
    "not_found": "not found in the installed source: measure it",
}
# The kinds whose argument a measured comparison leaves out (or renames), to show what it changes.
NO_EFFECT_KINDS = ("ignored", "no_effect", "depends")
BREAKING_KINDS = ("fails", "removed", "unknown")

# Where a value handed to the loading config is read again (relative to the transformers package).
_LOADING_MODULES = ("modeling_utils.py", "core_model_loading.py", "integrations/accelerate.py")
_MODELING = "modeling_utils.py"
_AUTO_FACTORY = "models/auto/auto_factory.py"
_MODELING_AUTO = "models/auto/modeling_auto.py"
_CONFIGURATION = "configuration_utils.py"
_QUANTIZATION = "utils/quantization_config.py"
# The argument whose "disk" entries are the only way weights are placed on disk (the premise above).
_DEVICE_MAP = "device_map"


@dataclass(frozen=True)
class Citation:
    """One line of the installed source: ``file`` relative to site-packages, its number, its text, the path.

    >>> str(Citation("transformers/modeling_utils.py", 12, "x = 1", "/abs/transformers/modeling_utils.py"))
    'transformers/modeling_utils.py:12'
    """

    file: str
    line: int
    text: str
    path: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class ArgumentVerdict:
    """What the installed transformers does with one argument of the call.

    ``argument`` is the keyword (or the positional argument as written), ``written`` the argument as in the call,
    ``kind`` one of :data:`VERDICT_LABELS`, ``says`` the sentences, ``citations`` the lines that decide it.
    ``nearest`` is the real argument a misspelt one is closest to; ``renamed_to`` the name a renamed one is read as;
    ``advice`` what to write instead, where the source says (``quantization_config=BitsAndBytesConfig(...)``).

    >>> v = ArgumentVerdict("x", "x=1", "ignored", "popped and never read.", ())
    >>> v.label, v.no_effect
    ('popped and ignored', True)
    """

    argument: str
    written: str
    kind: str
    says: str
    citations: tuple[Citation, ...]
    nearest: str | None = None
    renamed_to: str | None = None
    position: int | None = None
    advice: str | None = None

    @property
    def label(self) -> str:
        """The kind's heading (:data:`VERDICT_LABELS`)."""
        return VERDICT_LABELS[self.kind]

    @property
    def no_effect(self) -> bool:
        """True when the source says the argument does nothing in this call (or only maybe, at run time)."""
        return self.kind in NO_EFFECT_KINDS

    @property
    def breaks(self) -> bool:
        """True when the source says the call fails because of this argument (or may, for an unknown one)."""
        return self.kind in BREAKING_KINDS

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every field, the label, and each citation as ``{"file", "line", "text"}``."""
        return {
            "argument": self.argument, "written": self.written, "kind": self.kind, "label": self.label,
            "says": self.says, "nearest": self.nearest, "renamed_to": self.renamed_to, "advice": self.advice,
            "citations": [{"file": c.file, "line": c.line, "text": c.text} for c in self.citations],
        }


@dataclass(frozen=True)
class CallReading:
    """A call read against the installed transformers: one verdict per argument, in the call's order.

    ``model_class`` is the class whose ``__init__`` receives what from_pretrained does not use (None when it
    could not be told), ``notes`` what the reader assumed (a variable read as ``AutoModelForCausalLM``).
    """

    call: ParsedCall
    transformers_version: str
    source_root: str
    model_class: str | None
    verdicts: tuple[ArgumentVerdict, ...]
    notes: tuple[str, ...] = ()

    def verdict(self, argument: str) -> ArgumentVerdict:
        """The verdict on ``argument`` (a keyword name, or a positional argument as written).

        >>> read_call("from_pretrained(p, offload_state_dict=True)").verdict("offload_state_dict").kind
        'ignored'
        """
        for verdict in self.verdicts:
            if verdict.argument == argument:
                return verdict
        raise KeyError(f"the call has no argument {argument!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for ``offload-lab explain --json``."""
        return {
            "call": self.call.source, "transformers": self.transformers_version, "source_root": self.source_root,
            "model_class": self.model_class, "notes": list(self.notes),
            "verdicts": [v.to_dict() for v in self.verdicts],
        }


# ------------------------------------------------------------------------------------------ reading files


def transformers_root() -> Path | None:
    """The installed transformers package folder, found without importing it (None when not installed).

    >>> (transformers_root() / "modeling_utils.py").is_file()
    True
    """
    spec = importlib.util.find_spec("transformers")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _transformers_version(root: Path) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("transformers")
    except PackageNotFoundError:
        return "unknown"


@dataclass
class _Module:
    path: Path
    file: str  # relative to site-packages, as cited
    lines: list[str]
    tree: ast.Module
    comments: dict[int, str]

    def cite(self, line: int) -> Citation:
        text = self.lines[line - 1].strip() if 0 < line <= len(self.lines) else ""
        return Citation(self.file, line, text, str(self.path))

    def comment_above(self, line: int) -> str:
        """The comment lines right above ``line``, joined (the "Not used anymore" of a loop)."""
        found: list[str] = []
        number = line - 1
        while number > 0 and self.lines[number - 1].strip().startswith("#"):
            found.insert(0, self.lines[number - 1].strip().lstrip("#").strip())
            number -= 1
        return " ".join(found)


@functools.lru_cache(maxsize=32)
def _parse(path: str, mtime_ns: int, file: str) -> _Module | None:
    try:
        text = Path(path).read_text(encoding="utf-8")
        tree = ast.parse(text)
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    comments: dict[int, str] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.COMMENT:
                comments[token.start[0]] = token.string.lstrip("#").strip()
    except (tokenize.TokenError, IndentationError):
        pass
    return _Module(Path(path), file, text.splitlines(), tree, comments)


def _module(root: Path, relative: str) -> _Module | None:
    path = root / relative
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return None
    return _parse(str(path), mtime, f"{root.name}/{relative}")


def _class(module: _Module, name: str) -> ast.ClassDef | None:
    return next((n for n in module.tree.body if isinstance(n, ast.ClassDef) and n.name == name), None)


def _method(cls: ast.ClassDef | None, name: str) -> ast.FunctionDef | None:
    if cls is None:
        return None
    return next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == name), None)


def _literal(node: ast.AST | None) -> tuple[bool, Any]:
    if node is None:
        return True, None
    return literal_value(ast.unparse(node))


def _docstring_params(function: ast.FunctionDef) -> dict[str, tuple[str, str]]:
    """The docstring's ``name (type, ...):`` entries: name -> (type text, first sentence of its description)."""
    doc = ast.get_docstring(function) or ""
    entries: dict[str, tuple[str, str]] = {}
    head = re.compile(r"^(\s+)(\w+)\s*\((.*)\):\s*$")
    lines = doc.splitlines()
    for number, line in enumerate(lines):
        match = head.match(line)
        if not match:
            continue
        indent = len(match.group(1))
        body: list[str] = []
        for following in lines[number + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            if not following.strip() and body:
                break
            body.append(following.strip())
        text = " ".join(b for b in body if b)
        sentence = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0] if text else ""
        entries.setdefault(match.group(2), (match.group(3), sentence))
    return entries


# ------------------------------------------------------------------------------------ one function, read


@dataclass
class _Pop:
    name: str
    line: int
    target: str  # "variable", "attribute", "discarded", "forwarded", "inline"
    variable: str | None = None
    attribute: str | None = None
    default: ast.AST | None = None
    comment: str = ""
    node: ast.AST | None = None


@dataclass
class _Use:
    function: _Function
    line: int
    guards: list[tuple[ast.expr, bool]]
    in_test: bool
    assigns_to: str | None  # the single Name the read's statement assigns


class _Function:
    """One function's arguments, pops, hand-offs and the reads of a name with the tests around each."""

    def __init__(self, module: _Module, node: ast.FunctionDef) -> None:
        self.module = module
        self.node = node
        self.parents: dict[ast.AST, ast.AST] = {}
        for parent in ast.walk(node):
            for child in ast.iter_child_nodes(parent):
                self.parents[child] = parent
        args = node.args
        positional = [*args.posonlyargs, *args.args]
        self.params: dict[str, int] = {a.arg: a.lineno for a in [*positional[1:], *args.kwonlyargs]}
        self.defaults: dict[str, ast.AST | None] = {}
        for arg, default in zip(reversed(positional), reversed(args.defaults), strict=False):
            self.defaults[arg.arg] = default
        for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
            self.defaults[arg.arg] = default
        self.vararg = args.vararg.arg if args.vararg else None
        self.kwarg = args.kwarg.arg if args.kwarg else None
        self.argument_of: dict[str, str] = {name: name for name in self.params}
        self.pops: dict[str, _Pop] = {}
        self.docs = _docstring_params(node)
        self._find_pops()

    def cite(self, line: int) -> Citation:
        return self.module.cite(line)

    def _statement(self, node: ast.AST) -> ast.stmt | None:
        while node is not None and not isinstance(node, ast.stmt):
            node = self.parents.get(node)  # type: ignore[assignment]
        return node  # type: ignore[return-value]

    def _lists_of_names(self) -> dict[str, list[str]]:
        """Local names bound to a literal list of strings (``hub_kwargs_names = [...]``)."""
        found: dict[str, list[str]] = {}
        for node in ast.walk(self.node):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                known, value = _literal(node.value)
                if known and isinstance(value, list) and all(isinstance(v, str) for v in value):
                    found[node.targets[0].id] = value
        return found

    def reinjected(self) -> set[str]:
        """Keywords put back into the keyword arguments (``kwargs["dtype"] = ...``) after a pop."""
        return {t.slice.value for n in ast.walk(self.node) if isinstance(n, ast.Assign) for t in n.targets
                if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name) and t.value.id == self.kwarg
                and isinstance(t.slice, ast.Constant) and isinstance(t.slice.value, str)}

    def _is_kwargs_call(self, node: ast.AST, method: str) -> bool:
        return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == method
                and isinstance(node.func.value, ast.Name) and node.func.value.id == self.kwarg)

    def _find_pops(self) -> None:
        lists = self._lists_of_names()
        for node in ast.walk(self.node):
            if self._is_kwargs_call(node, "get") and node.args and isinstance(node.args[0], ast.Constant):
                statement = self._statement(node)
                if (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                        and isinstance(statement.targets[0], ast.Name)):
                    self.argument_of.setdefault(statement.targets[0].id, str(node.args[0].value))
            if not self._is_kwargs_call(node, "pop") or not node.args:
                continue
            key = node.args[0]
            default = node.args[1] if len(node.args) > 1 else None
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                self._record_pop(key.value, node, default)
            elif isinstance(key, ast.Name):
                self._record_loop_pop(key.id, node, lists)

    def _record_pop(self, name: str, node: ast.Call, default: ast.AST | None) -> None:
        statement = self._statement(node)
        line = node.lineno
        comment = self.module.comments.get(line, "")
        parent = self.parents.get(node)
        pop = _Pop(name, line, "inline", default=default, comment=comment, node=node)
        if isinstance(parent, ast.NamedExpr):
            pop.target, pop.variable = "variable", parent.target.id
        elif isinstance(statement, ast.Expr) and statement.value is node:
            pop.target = "discarded"
        elif isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target = statement.targets[0]
            if isinstance(target, ast.Name):
                pop.target, pop.variable = ("discarded", None) if target.id == "_" else ("variable", target.id)
            elif isinstance(target, ast.Attribute):
                pop.target, pop.attribute = "attribute", ast.unparse(target)
        elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            pop.target, pop.variable = "variable", statement.target.id
        self.pops.setdefault(name, pop)
        if pop.variable:
            self.argument_of.setdefault(pop.variable, name)

    def _record_loop_pop(self, variable: str, node: ast.Call, lists: dict[str, list[str]]) -> None:
        # `for name in ["a", "b"]: _ = kwargs.pop(name, None)`, or a comprehension over a list bound earlier.
        owner: ast.AST | None = self.parents.get(node)
        while owner is not None and not isinstance(owner, (ast.For, ast.comprehension, ast.DictComp)):
            owner = self.parents.get(owner)
        if isinstance(owner, ast.DictComp):
            owner = owner.generators[0]
        if owner is None or not isinstance(owner.target, ast.Name) or owner.target.id != variable:
            return
        known, names = _literal(owner.iter)
        if not known and isinstance(owner.iter, ast.Name):
            names, known = lists.get(owner.iter.id), owner.iter.id in lists
        if not known or not isinstance(names, list):
            return
        statement = self._statement(node)
        discarded = isinstance(statement, ast.Expr) or (
            isinstance(statement, ast.Assign) and len(statement.targets) == 1
            and isinstance(statement.targets[0], ast.Name) and statement.targets[0].id == "_"
        )
        line = getattr(owner, "lineno", None) or statement.lineno if statement is not None else node.lineno
        comment = self.module.comment_above(line) if isinstance(owner, ast.For) else ""
        for name in names:
            if isinstance(name, str):
                self.pops.setdefault(name, _Pop(name, line, "discarded" if discarded else "forwarded",
                                                comment=comment, node=node))

    # ----------------------------------------------------------------------------------- reads and guards

    def reads(self, variable: str) -> list[ast.Name]:
        return [n for n in ast.walk(self.node)
                if isinstance(n, ast.Name) and n.id == variable and isinstance(n.ctx, ast.Load)]

    def attribute_reads(self, instance: str, attribute: str) -> list[ast.Attribute]:
        return [n for n in ast.walk(self.node)
                if isinstance(n, ast.Attribute) and n.attr == attribute and isinstance(n.ctx, ast.Load)
                and isinstance(n.value, ast.Name) and n.value.id == instance]

    def use(self, node: ast.AST) -> _Use:
        guards: list[tuple[ast.expr, bool]] = []
        in_test = False
        line = getattr(node, "lineno", self.node.lineno)
        child: ast.AST = node
        parent = self.parents.get(child)
        while parent is not None:
            if isinstance(parent, (ast.If, ast.While)):
                if child is parent.test:
                    in_test, line = True, parent.lineno
                elif any(child is s for s in parent.body):
                    guards.append((parent.test, True))
                elif any(child is s for s in parent.orelse):
                    guards.append((parent.test, False))
            elif isinstance(parent, ast.IfExp):
                if child is parent.body:
                    guards.append((parent.test, True))
                elif child is parent.orelse:
                    guards.append((parent.test, False))
            elif isinstance(parent, ast.BoolOp):
                index = next(i for i, v in enumerate(parent.values) if v is child)
                for prior in parent.values[:index]:
                    guards.append((prior, isinstance(parent.op, ast.And)))
            child, parent = parent, self.parents.get(parent)
        if not in_test:
            statement = self._statement(node)
            line = statement.lineno if statement is not None else line  # a multi-line call: its first line
        return _Use(self, line, guards, in_test, self._assigned_as(node))

    def _assigned_as(self, node: ast.AST) -> str | None:
        """The Name that ``node`` itself becomes (``x = node``, ``x = a if c else node``, ``x = a or node``);
        None when ``node`` only goes into a computation (a call's argument, an index)."""
        child, parent = node, self.parents.get(node)
        while isinstance(parent, (ast.IfExp, ast.BoolOp)) and child is not getattr(parent, "test", None):
            child, parent = parent, self.parents.get(parent)
        if (isinstance(parent, ast.Assign) and parent.value is child and len(parent.targets) == 1
                and isinstance(parent.targets[0], ast.Name)):
            return parent.targets[0].id
        return None

    def handoff(self, read: ast.Name) -> tuple[str, str] | None:
        """(instance, field) when ``read`` is handed on as ``instance = SomeConfig(field=read, ...)``."""
        keyword = self.parents.get(read)
        if not isinstance(keyword, ast.keyword) or keyword.arg is None:
            return None
        call = self.parents.get(keyword)
        statement = self.parents.get(call) if isinstance(call, ast.Call) else None
        if (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                and isinstance(statement.targets[0], ast.Name) and statement.value is call):
            return statement.targets[0].id, keyword.arg
        return None

    def fields(self) -> dict[str, dict[str, str]]:
        """instance -> {field: argument} for every ``instance = SomeConfig(field=argument_variable, ...)``."""
        found: dict[str, dict[str, str]] = {}
        for node in ast.walk(self.node):
            if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                    and isinstance(node.value, ast.Call)):
                for keyword in node.value.keywords:
                    if keyword.arg and isinstance(keyword.value, ast.Name) and keyword.value.id in self.argument_of:
                        found.setdefault(node.targets[0].id, {})[keyword.arg] = self.argument_of[keyword.value.id]
        return found


# --------------------------------------------------------------------------- the call's arguments, as known


@dataclass
class _Env:
    """What the call gives: argument -> (known, value) for the keywords, and which instance fields are which."""

    given: dict[str, tuple[bool, Any]]
    fields: dict[str, dict[str, str]] = field(default_factory=dict)

    def state(self, function: _Function, argument: str) -> tuple[bool, bool, Any]:
        """(given, known, value); a value not given is the function's default for it."""
        if argument in self.given:
            known, value = self.given[argument]
            return True, known, value
        pop = function.pops.get(argument)
        if pop is not None:
            return (False, *_literal(pop.default))
        if argument in function.defaults:
            return (False, *_literal(function.defaults[argument]))
        return False, True, None

    def argument(self, function: _Function, node: ast.AST) -> str | None:
        if (function._is_kwargs_call(node, "get") and node.args  # type: ignore[attr-defined]
                and isinstance(node.args[0], ast.Constant)):  # type: ignore[attr-defined]
            return str(node.args[0].value)  # type: ignore[attr-defined]
        if isinstance(node, ast.Name):
            return function.argument_of.get(node.id)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            return self.fields.get(node.value.id, {}).get(node.attr)
        return None

    def disk(self, function: _Function) -> bool | None:
        """Whether the call's device map can place weights on "disk": False without one, else at run time."""
        given, known, value = self.state(function, _DEVICE_MAP)
        if not given or (known and value is None):
            return False
        if known and isinstance(value, dict):
            return "disk" in value.values()
        return None

    def truth(self, function: _Function, node: ast.expr) -> bool | None:
        """True / False where the call decides ``node``, None where only the run can."""
        if isinstance(node, ast.BoolOp):
            values = [self.truth(function, v) for v in node.values]
            if isinstance(node.op, ast.And):
                return False if False in values else (True if all(v is True for v in values) else None)
            return True if True in values else (False if all(v is False for v in values) else None)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = self.truth(function, node.operand)
            return None if inner is None else not inner
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            return self._compare(function, node.left, node.ops[0], node.comparators[0])
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance"
                and node.args):
            argument = self.argument(function, node.args[0])
            if argument is not None:
                _, known, value = self.state(function, argument)
                if known and value is None:
                    return False  # nothing given is an instance of anything the source tests for
            return None
        argument = self.argument(function, node)
        if argument is not None:
            _, known, value = self.state(function, argument)
            return bool(value) if known else None
        return None

    def _compare(self, function: _Function, left: ast.expr, op: ast.cmpop, right: ast.expr) -> bool | None:
        constants = [n.value for n in (left, right) if isinstance(n, ast.Constant)]
        if "disk" in constants and isinstance(op, (ast.Eq, ast.In, ast.NotEq, ast.NotIn)):
            disk = self.disk(function)
            return None if disk is None else (disk if isinstance(op, (ast.Eq, ast.In)) else not disk)
        if (isinstance(left, ast.Constant) and isinstance(left.value, str) and isinstance(op, (ast.In, ast.NotIn))
                and isinstance(right, ast.Name) and right.id == function.kwarg):
            given = left.value in self.given
            return given if isinstance(op, ast.In) else not given
        argument = self.argument(function, left)
        if argument is None or not isinstance(right, ast.Constant):
            return None
        given, known, value = self.state(function, argument)
        if isinstance(op, (ast.Is, ast.IsNot)) and right.value is None:
            is_none = value is None if known else (False if given else None)
            if is_none is None:
                return None
            return is_none if isinstance(op, ast.Is) else not is_none
        if not known:
            return None
        try:
            if isinstance(op, ast.Eq):
                return bool(value == right.value)
            if isinstance(op, ast.NotEq):
                return bool(value != right.value)
        except Exception:  # a comparison a literal cannot make: left to the run
            return None
        return None


# ------------------------------------------------------------------------------------ the installed source


class _Source:
    """The installed transformers, read once per process (files re-read when they change)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.version = _transformers_version(root)
        self.modeling = _module(root, _MODELING)
        pretrained = _class(self.modeling, "PreTrainedModel") if self.modeling else None
        node = _method(pretrained, "from_pretrained")
        self.from_pretrained = _Function(self.modeling, node) if self.modeling and node else None
        auto = _module(root, _AUTO_FACTORY)
        auto_node = _method(_class(auto, "_BaseAutoModelClass"), "from_pretrained") if auto else None
        self.auto = _Function(auto, auto_node) if auto and auto_node else None
        self.fields = self.from_pretrained.fields() if self.from_pretrained else {}
        self._functions: dict[tuple[str, int], _Function] = {}

    @functools.cached_property
    def loading_functions(self) -> list[_Function]:
        """Every function in :data:`_LOADING_MODULES` (where a handed-on field can be read again)."""
        found = []
        for relative in _LOADING_MODULES:
            module = _module(self.root, relative)
            if module is None:
                continue
            for node in ast.walk(module.tree):
                if isinstance(node, ast.FunctionDef):
                    found.append(_Function(module, node))
        return found

    @staticmethod
    def call_with(function: _Function | None, keyword: str, value: str) -> int | None:
        """The line of the first call in ``function`` given ``keyword=value``."""
        if function is None:
            return None
        for node in ast.walk(function.node):
            if isinstance(node, ast.Call) and any(k.arg == keyword and ast.unparse(k.value) == value
                                                  for k in node.keywords):
                return node.lineno
        return None

    @staticmethod
    def model_init_line(function: _Function | None) -> int | None:
        """The line of ``cls(config, *model_args, **model_kwargs)``: the call that unpacks the positional
        arguments from_pretrained does not take (its ``*model_args``) into the model class."""
        if function is None or function.vararg is None:
            return None
        for node in ast.walk(function.node):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "cls"
                    and any(isinstance(a, ast.Starred) and ast.unparse(a.value) == function.vararg
                            for a in node.args)):
                return node.lineno
        return None

    def deprecation(self, name: str) -> Citation | None:
        """The first string in the core modules that says ``name`` is deprecated (its own history)."""
        for relative in (_CONFIGURATION, _MODELING, _AUTO_FACTORY):
            module = _module(self.root, relative)
            if module is None:
                continue
            for node in ast.walk(module.tree):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    text = node.value
                    if f"`{name}`" in text and "deprecated" in text.lower():
                        return module.cite(node.lineno)
        return None

    @functools.cached_property
    def config_base_members(self) -> set[str]:
        """What ``hasattr`` finds on every config: PreTrainedConfig's fields, properties, methods and
        ``from_dict``'s ``valid_fields``."""
        module = _module(self.root, _CONFIGURATION)
        if module is None:
            return set()
        members = _class_members(self.root, module, "PreTrainedConfig")
        from_dict = _method(_class(module, "PreTrainedConfig"), "from_dict")
        if from_dict is not None:
            for node in ast.walk(from_dict):
                if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "valid_fields"
                                                        for t in node.targets):
                    known, value = _literal(node.value)
                    if known and isinstance(value, list):
                        members |= {v for v in value if isinstance(v, str)}
        return members

    @functools.cached_property
    def config_hasattr_line(self) -> Citation | None:
        """The ``hasattr(config, key)`` in ``PreTrainedConfig.from_dict`` that sends a keyword to the config."""
        module = _module(self.root, _CONFIGURATION)
        from_dict = _method(_class(module, "PreTrainedConfig"), "from_dict") if module else None
        if from_dict is None:
            return None
        for node in ast.walk(from_dict):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "hasattr":
                return module.cite(node.lineno)  # type: ignore[union-attr]
        return None

    @functools.cached_property
    def quantization_parameters(self) -> dict[str, tuple[str, Citation, tuple[str, ...]]]:
        """parameter -> (config class, its line, the class's bases) for every ``*Config`` in quantization_config."""
        module = _module(self.root, _QUANTIZATION)
        found: dict[str, tuple[str, Citation, tuple[str, ...]]] = {}
        if module is None:
            return found
        for node in module.tree.body:
            if isinstance(node, ast.ClassDef) and node.name.endswith("Config"):
                init = _method(node, "__init__")
                if init is None:
                    continue
                bases = tuple(ast.unparse(b) for b in node.bases)
                for arg in [*init.args.args[1:], *init.args.kwonlyargs]:
                    found.setdefault(arg.arg, (node.name, module.cite(arg.lineno), bases))
        return found

    def function(self, module: _Module, node: ast.FunctionDef) -> _Function:
        key = (module.file, node.lineno)
        if key not in self._functions:
            self._functions[key] = _Function(module, node)
        return self._functions[key]


@functools.lru_cache(maxsize=4)
def _source(root: str, version_key: str) -> _Source:
    return _Source(Path(root))


def forget_parsed_sources() -> None:
    """Drop the parsed transformers sources this module keeps (tens of MB of syntax trees).

    The measuring processes call it after their one reading: a forked child would otherwise copy the pages
    holding those trees as soon as its garbage collector or a reference count touches them, and that copy
    would count as memory the load added.

    >>> _ = read_argument("low_cpu_mem_usage")
    >>> forget_parsed_sources()
    >>> _parse.cache_info().currsize, _source.cache_info().currsize
    (0, 0)
    """
    _parse.cache_clear()
    _source.cache_clear()


def _installed() -> _Source | None:
    root = transformers_root()
    if root is None:
        return None
    stamp = (root / _MODELING).stat().st_mtime_ns if (root / _MODELING).exists() else 0
    return _source(str(root), f"{_transformers_version(root)}:{stamp}")


# --------------------------------------------------------------------------------- classes, found by name


def _resolve_import(root: Path, module: _Module, name: str) -> tuple[_Module, str] | None:
    """The module (inside transformers) and name a ``from ... import name`` in ``module`` brings in."""
    package = module.path.relative_to(root).parent
    for node in module.tree.body:
        if isinstance(node, ast.ImportFrom) and node.level and any((a.asname or a.name) == name for a in node.names):
            base = package
            for _ in range(node.level - 1):
                base = base.parent
            target = base / Path(*(node.module or "").split(".")) if node.module else base
            original = next(a.name for a in node.names if (a.asname or a.name) == name)
            found = _module(root, f"{target.as_posix()}.py")
            return (found, original) if found is not None else None
    return None


def _find_class(root: Path, module: _Module, name: str) -> tuple[_Module, ast.ClassDef] | None:
    cls = _class(module, name)
    if cls is not None:
        return module, cls
    imported = _resolve_import(root, module, name)
    if imported is not None:
        return _find_class(root, *imported)
    return None


def _class_members(root: Path, module: _Module, name: str, depth: int = 0) -> set[str]:
    """Every name ``hasattr`` finds on an instance of class ``name``: fields, class attributes, methods, bases'."""
    found = _find_class(root, module, name)
    if found is None or depth > 8:
        return set()
    module, cls = found
    members: set[str] = set()
    for node in cls.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            members.add(node.target.id)
        elif isinstance(node, ast.Assign):
            members |= {t.id for t in node.targets if isinstance(t, ast.Name)}
            if any(isinstance(t, ast.Name) and t.id == "attribute_map" for t in node.targets):
                known, value = _literal(node.value)
                if known and isinstance(value, dict):
                    members |= {k for k in value if isinstance(k, str)}
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            members.add(node.name)
    for base in cls.bases:
        members |= _class_members(root, module, ast.unparse(base).rsplit(".", 1)[-1], depth + 1)
    return members


def _init_of(root: Path, module: _Module, name: str, depth: int = 0) -> tuple[_Module, ast.FunctionDef] | None:
    """The ``__init__`` an instance of ``name`` runs: its own, or the first base's that has one."""
    found = _find_class(root, module, name)
    if found is None or depth > 8:
        return None
    module, cls = found
    init = _method(cls, "__init__")
    if init is not None:
        return module, init
    for base in cls.bases:
        inherited = _init_of(root, module, ast.unparse(base).rsplit(".", 1)[-1], depth + 1)
        if inherited is not None:
            return inherited
    return None


@dataclass(frozen=True)
class _ModelClass:
    name: str
    model_type: str
    module: _Module
    config_members: frozenset[str]
    config_class: str | None


def _mapping_names(root: Path) -> dict[str, dict[str, str]]:
    """Each ``*_MAPPING_NAMES`` of modeling_auto.py: mapping name -> {model_type: class name}."""
    module = _module(root, _MODELING_AUTO)
    found: dict[str, dict[str, str]] = {}
    if module is None:
        return found
    for node in module.tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id.endswith("_MAPPING_NAMES") and isinstance(node.value, ast.Call)
                and node.value.args):
            known, pairs = _literal(node.value.args[0])
            if known and isinstance(pairs, list):
                found[node.targets[0].id] = {p[0]: p[1] for p in pairs
                                             if isinstance(p, tuple) and len(p) == 2 and isinstance(p[1], str)}
    return found


def _auto_mapping(root: Path, auto_class: str) -> dict[str, str] | None:
    """{model_type: class name} for an Auto class (``AutoModelForCausalLM`` -> the causal-LM mapping)."""
    module = _module(root, _MODELING_AUTO)
    if module is None:
        return None
    cls = _class(module, auto_class)
    mapping_name = None
    for node in cls.body if cls else []:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_model_mapping"
                                                for t in node.targets):
            mapping_name = ast.unparse(node.value)
    for node in module.tree.body:
        if (mapping_name and isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == mapping_name
                and isinstance(node.value, ast.Call) and len(node.value.args) == 2):
            return _mapping_names(root).get(ast.unparse(node.value.args[1]))
    return None


def _model_module(root: Path, model_type: str) -> tuple[_Module | None, _Module | None]:
    folder = model_type.replace("-", "_")
    return (_module(root, f"models/{folder}/modeling_{folder}.py"),
            _module(root, f"models/{folder}/configuration_{folder}.py"))


def _model_class(root: Path, class_name: str, model_type: str | None, extra_config_keys: set[str]) -> (
        _ModelClass | None):
    """The model class's file and its config's members, found through modeling_auto.py's mappings (a class
    name can stand for several model types there: the one whose modeling file defines it is taken)."""
    if model_type is not None:
        candidates = [model_type]
    else:
        candidates = list(dict.fromkeys(t for mapping in _mapping_names(root).values()
                                        for t, name in mapping.items() if name == class_name))
        # "llama" before "exaone" for LlamaForCausalLM: the type named in the class first
        candidates.sort(key=lambda t: t.replace("-", "_").replace("_", "") not in class_name.lower())
    for candidate in candidates:
        modeling, configuration = _model_module(root, candidate)
        if modeling is None or _find_class(root, modeling, class_name) is None:
            continue
        members = set(extra_config_keys)
        config_class = None
        for node in configuration.tree.body if configuration else []:
            if isinstance(node, ast.ClassDef) and any(
                isinstance(s, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "model_type" for t in s.targets)
                and literal_value(ast.unparse(s.value)) == (True, candidate) for s in node.body
            ):
                config_class = node.name
                members |= _class_members(root, configuration, node.name)  # type: ignore[arg-type]
                break
        return _ModelClass(class_name, candidate, modeling, frozenset(members), config_class)
    return None


# ---------------------------------------------------------------------------------------------- verdicts


class _Opaque:
    """A value written in the call that is no literal (``torch.float16``, a variable): not None, truthy, equal
    to no constant. A test on it that needs more is left to the run."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __repr__(self) -> str:
        return self.source


def _given_values(call: ParsedCall) -> dict[str, tuple[bool, Any]]:
    found: dict[str, tuple[bool, Any]] = {}
    for argument in call.keywords:
        known, value = literal_value(argument.source)
        if not known and argument.source.startswith("torch."):
            known, value = True, _Opaque(argument.source)  # a torch dtype: no string, never None
        found[argument.name] = (known, value)  # type: ignore[index]
    return found


def _conjuncts(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And):
        return [c for value in node.values for c in _conjuncts(value)]
    return [node]


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text.endswith((".", "!", "?")) else text + "."


def _code(text: str) -> str:
    return f"`{text}`"


def _places(citations: list[Citation]) -> str:
    return ", ".join(str(c) for c in dict.fromkeys(citations))


def _tests(found: list[tuple[_Use, str]], joiner: str) -> str:
    """Each deciding test once, with the lines it guards: "`device_map is not None` (file:12, file:40)"."""
    lines: dict[str, list[Citation]] = {}
    for use, test in found:
        lines.setdefault(test, []).append(use.function.cite(use.line))
    return joiner.join(f"`{test}` ({_places(cites)})" for test, cites in lines.items())


@dataclass
class _Judge:
    """Judges the arguments of one call against one installed source."""

    source: _Source
    call: ParsedCall
    env: _Env
    auto_path: bool
    model: _ModelClass | None
    config_members: frozenset[str]
    config_label: str

    @property
    def version(self) -> str:
        return f"transformers {self.source.version}"

    def not_found(self, argument: str, written: str, what: str) -> ArgumentVerdict:
        return ArgumentVerdict(argument, written, "not_found",
                               f"{what} was not found in the installed {self.version} source: measure it.", ())

    # ---------------------------------------------------------------------------- reads of one argument

    def _followed_uses(self, function: _Function, variable: str) -> list[_Use]:
        """The reads of ``variable``, a hand-off to a loading config replaced by the reads of that field."""
        uses: list[_Use] = []
        for read in function.reads(variable):
            handoff = function.handoff(read)
            if handoff is None:
                uses.append(function.use(read))
                continue
            followed = self._field_uses(*handoff)
            uses.extend(followed if followed else [function.use(read)])
        return uses

    def _field_uses(self, instance: str, attribute: str) -> list[_Use]:
        uses: list[_Use] = []
        for function in self.source.loading_functions:
            for read in function.attribute_reads(instance, attribute):
                alias = function._assigned_as(read)
                if alias is None:
                    uses.append(function.use(read))
                else:  # `x = load_config.field` (or `... or default`): the reads of x are the field's
                    uses.extend(function.use(r) for r in function.reads(alias))
        return uses

    def _decide(self, use: _Use) -> tuple[bool | None, list[str]]:
        """Whether ``use`` runs in this call (None: decided when it runs), and the tests that say so: the
        false ones when it does not run, the open ones when that is left to the run."""
        false: list[str] = []
        open_: list[str] = []
        for test, polarity in use.guards:
            parts = _conjuncts(test) if polarity else [test]
            for part in parts:
                value = self.env.truth(use.function, part)
                if value is not None and not polarity:
                    value = not value
                text = ast.unparse(part) if polarity else f"not ({ast.unparse(part)})"
                if value is False:
                    false.append(text)
                elif value is None:
                    open_.append(text)
        if false:
            return False, false
        return (None, open_) if open_ else (True, [])

    def judge_variable(self, function: _Function, argument: str, variable: str, written: str,
                       first: Citation) -> ArgumentVerdict:
        docs = {**(self.source.from_pretrained.docs if self.source.from_pretrained else {}), **function.docs}
        doc = docs.get(argument, ("", ""))[1]
        what = f" ({_sentence(doc)})" if doc else ""
        uses = self._followed_uses(function, variable)
        if not uses:
            pop = function.pops.get(argument)
            comment = f' ("{pop.comment}")' if pop is not None and pop.comment else ""
            return ArgumentVerdict(argument, written, "ignored",
                                   f"{self.version} pops it into `{variable}`{comment} and never reads it: it does "
                                   "nothing.", (first,))
        effects = [u for u in uses if not u.in_test] or uses
        targets = {function.argument_of.get(u.assigns_to) if u.assigns_to else None for u in effects}
        if len(targets) == 1 and None not in targets and targets != {argument}:
            return self._renamed(function, argument, targets.pop(), written, first, effects)  # type: ignore[arg-type]
        decided = [(use, *self._decide(use)) for use in effects]
        live = [u for u, runs, _ in decided if runs is True]
        maybe = [(u, tests) for u, runs, tests in decided if runs is None]
        if live:
            where = live[0].function.cite(live[0].line)
            return ArgumentVerdict(argument, written, "used",
                                   f"{self.version} reads it{what} at {where}: `{where.text}`.", (first, where))
        if maybe:
            lines = [u.function.cite(u.line) for u, _ in maybe]
            return ArgumentVerdict(argument, written, "depends",
                                   f"{self.version} reads it{what} only when "
                                   f"{_tests([(u, tests[0]) for u, tests in maybe], ' or ')}; that is decided when "
                                   "the call runs: measure it.", (first, *dict.fromkeys(lines)))
        lines = [u.function.cite(u.line) for u, _, _ in decided]
        return ArgumentVerdict(argument, written, "no_effect",
                               f"{self.version} accepts it{what} but reads it only behind tests this call fails: "
                               f"{_tests([(u, tests[0]) for u, _, tests in decided], ', ')}. Here it does nothing.",
                               (first, *dict.fromkeys(lines)))

    def _renamed(self, function: _Function, argument: str, target: str, written: str, first: Citation,
                 uses: list[_Use]) -> ArgumentVerdict:
        pop = function.pops.get(argument)
        comment = f' ("{pop.comment}")' if pop is not None and pop.comment else ""
        deprecation = self.source.deprecation(argument)
        message = re.search(r"[\"'](.*)[\"']", deprecation.text) if deprecation else None
        history = (f' The installed source\'s own message: "{message.group(1)}" ({deprecation}).'
                   if deprecation and message else "")
        lines = [u.function.cite(u.line) for u in uses]
        citations = (first, *dict.fromkeys(lines), *((deprecation,) if deprecation else ()))
        if all(self._decide(u)[0] is False for u in uses):
            return ArgumentVerdict(argument, written, "no_effect",
                                   f"{self.version} keeps it{comment} only to fill `{target}` when `{target}` is not "
                                   f"given ({_places(lines)}); this call gives `{target}` too, which wins: here it "
                                   "does nothing." + history, citations, renamed_to=target)
        return ArgumentVerdict(argument, written, "renamed",
                               f"{self.version} keeps it{comment} only to fill `{target}` ({_places(lines)}): "
                               f"write `{target}=` instead." + history, citations, renamed_to=target,
                               advice=f"write `{target}=` instead of `{argument}=`")

    # ------------------------------------------------------------------------------------ one keyword

    def _pop_runs(self, function: _Function, pop: _Pop) -> tuple[bool | None, list[str]]:
        return self._decide(function.use(pop.node)) if pop.node is not None else (True, [])

    def judge_keyword(self, name: str, written: str) -> ArgumentVerdict:
        if self.auto_path and self.source.auto is not None:
            verdict = self._judge_in_auto(name, written)
            if verdict is not None:
                return verdict
        function = self.source.from_pretrained
        if function is None:
            return self.not_found(name, written, "PreTrainedModel.from_pretrained")
        if name in function.params:
            return self.judge_variable(function, name, name, written, function.cite(function.params[name]))
        pop = function.pops.get(name)
        if pop is None or self._pop_runs(function, pop)[0] is False:
            return self._judge_passed_on(name, written)
        first = function.cite(pop.line)
        if pop.target == "discarded":
            comment = f' ("{pop.comment}")' if pop.comment else ""
            return ArgumentVerdict(name, written, "ignored",
                                   f"{self.version} pops it from the keyword arguments{comment} and never reads "
                                   "it: it does nothing.", (first,))
        if pop.target == "attribute":
            return ArgumentVerdict(name, written, "used",
                                   f"{self.version} sets `{pop.attribute}` from it ({first}).", (first,))
        if pop.target == "variable" and pop.variable:
            return self.judge_variable(function, name, pop.variable, written, first)
        return ArgumentVerdict(name, written, "used", f"{self.version} reads it at {first}: `{first.text}`.",
                               (first,))

    def _judge_in_auto(self, name: str, written: str) -> ArgumentVerdict | None:
        """The verdict when the Auto class keeps ``name`` itself; None when it goes on to from_pretrained."""
        auto = self.source.auto
        assert auto is not None
        pop = auto.pops.get(name)
        if pop is None or pop.target == "forwarded" or name in auto.reinjected():
            return None
        runs, _ = self._pop_runs(auto, pop)
        if runs is False:
            return None
        first = auto.cite(pop.line)
        if pop.target == "discarded":
            comment = f' ("{pop.comment}")' if pop.comment else ""
            return ArgumentVerdict(name, written, "ignored",
                                   f"{self.version}'s Auto class pops it{comment} and never reads it: it does "
                                   "nothing.", (first,))
        if pop.target != "variable" or not pop.variable:
            return None
        for read in auto.reads(pop.variable):
            keyword = auto.parents.get(read)
            call = auto.parents.get(keyword) if isinstance(keyword, ast.keyword) else None
            if (isinstance(keyword, ast.keyword) and keyword.arg == name and isinstance(call, ast.Call)
                    and any(isinstance(a, ast.Starred) and ast.unparse(a.value) == auto.vararg for a in call.args)):
                return None  # handed on, under its own name, to the model class's from_pretrained
        return self.judge_variable(auto, name, pop.variable, written, first)

    def _judge_passed_on(self, name: str, written: str) -> ArgumentVerdict:
        """A keyword from_pretrained does not take itself: the config, else the model's ``__init__``."""
        function = self.source.from_pretrained
        assert function is not None
        entry_function = self.source.auto if self.auto_path and self.source.auto else function
        entry_line = self.source.call_with(entry_function, "return_unused_kwargs", "True")
        init_line = self.source.model_init_line(function)
        hasattr_line = self.source.config_hasattr_line
        if entry_line is None or init_line is None or hasattr_line is None:
            return self.not_found(name, written, "Where from_pretrained sends the keywords it does not take (the "
                                  "config's from_pretrained with return_unused_kwargs, then the model's __init__)")
        entry = entry_function.cite(entry_line)  # type: ignore[union-attr]
        init_call = function.cite(init_line)
        config_given = self.call.keyword("config")
        config_object = config_given is not None and not literal_value(config_given.source)[0]
        if name in self.config_members and not config_object:
            return ArgumentVerdict(name, written, "config",
                                   f"{self.version} hands the keywords it does not take to the config ({entry}); "
                                   f"{self.config_label} has an attribute `{name}` ({hasattr_line}: "
                                   f"`{hasattr_line.text}`), so it sets `config.{name}` and goes no further.",
                                   (entry, hasattr_line))
        if config_object:
            route = (f"this call passes config=, so {self.version} sends the keywords it does not take straight to "
                     f"the model's __init__ ({init_call})")
        else:
            route = (f"{self.config_label} has no attribute `{name}` ({hasattr_line}), so {self.version} passes it "
                     f"on to the model's __init__ ({init_call})")
        nearest = self._nearest(name)
        nearest_text = ""
        if nearest is not None:
            nearest_text = (f" The nearest real argument is `{nearest}` "
                            f"({self.judge_keyword(nearest, f'{nearest}=...').label} here).")
        replacement = self._replacement(name)
        extra = replacement[0] if replacement else ""
        advice = replacement[2] if replacement else (f"did you mean `{nearest}`?" if nearest else None)
        citations = (entry, hasattr_line, init_call, *(replacement[1] if replacement else ()))
        opening = f"`{name}` is not a from_pretrained argument in {self.version}: {route}"
        if self.model is None:
            unknown_config = "" if config_object else (
                " Which attributes your model's own config has is not known without the checkpoint")
            return ArgumentVerdict(name, written, "removed" if replacement else "unknown",
                                   f"{opening}, which raises TypeError unless it takes `{name}`."
                                   + (f"{unknown_config}: give checkpoint= to decide." if unknown_config else "")
                                   + extra + nearest_text, citations, nearest=nearest, advice=advice)
        init = _init_of(self.source.root, self.model.module, self.model.name)
        if init is None:
            return self.not_found(name, written, f"{self.model.name}.__init__")
        init_module, init_node = init
        init_cite = init_module.cite(init_node.lineno)
        takes = {a.arg for a in [*init_node.args.args, *init_node.args.kwonlyargs]}
        if name in takes or init_node.args.kwarg is not None:
            how = f"`{name}`" if name in takes else f"`**{init_node.args.kwarg.arg}`"  # type: ignore[union-attr]
            return ArgumentVerdict(name, written, "model",
                                   f"{opening}; {self.model.name}.__init__ takes {how} ({init_cite}).",
                                   (*citations, init_cite), nearest=nearest)
        return ArgumentVerdict(
            name, written, "removed" if replacement else "fails",
            f"{opening}, and {self.model.name}.__init__ ({init_cite}: `{init_cite.text}`) takes no `{name}`, so the "
            f"call raises TypeError: {self.model.name}.__init__() got an unexpected keyword argument '{name}'."
            + extra + nearest_text, (*citations, init_cite), nearest=nearest, advice=advice)

    def _nearest(self, name: str) -> str | None:
        candidates = set(self.config_members)
        for known in (self.source.from_pretrained, self.source.auto):
            if known is not None:
                candidates |= set(known.params) | set(known.pops)
        candidates = {c for c in candidates if not c.startswith("_") and c != name}
        close = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.8)
        return close[0] if close else None

    def _replacement(self, name: str) -> tuple[str, tuple[Citation, ...], str] | None:
        """Where the installed source takes ``name`` now: a quantization config's parameter, and the
        from_pretrained argument documented as taking such a config."""
        found = self.source.quantization_parameters.get(name)
        function = self.source.from_pretrained
        if found is None or function is None:
            return None
        config_class, where, bases = found
        takes = next((arg for arg, (kind, _) in function.docs.items()
                      if any(base in kind for base in (config_class, *bases))), None)
        if takes is None:
            return None
        pop = function.pops.get(takes)
        given = self.call.keyword(name)
        value = given.source if given else "..."
        instead = f"`{takes}={config_class}({name}={value})`"
        return (f" The installed source takes `{name}` in {config_class} ({where}): pass {instead} instead.",
                (where, *((function.cite(pop.line),) if pop else ())), f"pass {instead} instead")

    # --------------------------------------------------------------------------------- positional ones

    def judge_positional(self, index: int, written: str) -> ArgumentVerdict:
        function = self.source.from_pretrained
        if function is None:
            return self.not_found(written, written, "PreTrainedModel.from_pretrained")
        if index == 0:
            line = function.node.args.args[1].lineno if len(function.node.args.args) > 1 else function.node.lineno
            first = function.cite(line)
            return ArgumentVerdict(written, written, "used",
                                   f"the checkpoint: {self.version} takes it as `{CHECKPOINT_PARAMETER}` ({first}), "
                                   "a folder or a model id.", (first,), position=0)
        init_line = self.source.model_init_line(function)
        if init_line is None:
            return self.not_found(written, written, "Where from_pretrained sends extra positional arguments")
        init_call = function.cite(init_line)
        route = (f"{self.version} passes positional arguments after the checkpoint on to the model's __init__, "
                 f"after the config ({init_call}: `{init_call.text}`)")
        if self.model is None:
            return ArgumentVerdict(written, written, "unknown",
                                   f"{route}; a model whose __init__ takes only the config raises TypeError. Give "
                                   "checkpoint= to decide.", (init_call,), position=index)
        init = _init_of(self.source.root, self.model.module, self.model.name)
        if init is None:
            return self.not_found(written, written, f"{self.model.name}.__init__")
        init_module, init_node = init
        init_cite = init_module.cite(init_node.lineno)
        room = len(init_node.args.posonlyargs) + len(init_node.args.args)  # self and config included
        if init_node.args.vararg is not None or index + 2 <= room:
            return ArgumentVerdict(written, written, "model",
                                   f"{route}; {self.model.name}.__init__ takes it ({init_cite}).",
                                   (init_call, init_cite), position=index)
        return ArgumentVerdict(written, written, "fails",
                               f"{route}; {self.model.name}.__init__ ({init_cite}: `{init_cite.text}`) takes "
                               f"{room} positional arguments (self and config included), so the call raises "
                               f"TypeError: {self.model.name}.__init__() takes {room} positional arguments but "
                               f"{len(self.call.positional) + 1} were given.", (init_call, init_cite),
                               position=index, advice="leave it out")


def _checkpoint_config(checkpoint: str | Path) -> tuple[dict[str, Any], Path]:
    from .hf_folder import inspect_checkpoint

    folder = inspect_checkpoint(checkpoint).folder
    return json.loads((Path(folder) / "config.json").read_text(encoding="utf-8")), Path(folder)


def read_call(code: str | ParsedCall, checkpoint: str | Path | None = None) -> CallReading:
    """Read every argument of the ``from_pretrained`` call in ``code`` against the installed transformers.

    ``checkpoint`` (a folder or a model id in the local HF cache) tells which model class receives the keywords
    from_pretrained does not take, and which attributes its config has; without it those keywords are judged
    against every config's attributes and the verdict says what it could not tell.

    >>> reading = read_call("AutoModelForCausalLM.from_pretrained(path, max_memory={'cpu': 10**9})")
    >>> reading.verdict("max_memory").kind, reading.transformers_version == reading.to_dict()["transformers"]
    ('no_effect', True)
    >>> read_call("from_pretrained(path, torch_dtype=torch.float16)").verdict("torch_dtype").renamed_to
    'dtype'
    """
    call = code if isinstance(code, ParsedCall) else parse_call(code)
    source = _installed()
    if source is None:
        verdicts = tuple(ArgumentVerdict(a.name or a.source, a.written, "not_found",
                                         "transformers is not installed here: nothing to read, nothing to measure.",
                                         ()) for a in call.arguments)
        return CallReading(call, "not installed", "", None, verdicts)
    notes: list[str] = []
    class_name = call.class_name
    auto_path = class_name is None or class_name.startswith("Auto") or not class_name[:1].isupper()
    if class_name is None or not class_name[:1].isupper():
        notes.append(f"`{call.receiver or 'from_pretrained'}` is a name this checker cannot see: read as "
                     "AutoModelForCausalLM.from_pretrained, the class Offload Lab loads causal LMs with.")
        class_name = "AutoModelForCausalLM"
    model = None
    extra_keys: set[str] = set()
    model_type = None
    if checkpoint is not None:
        config, _ = _checkpoint_config(checkpoint)
        extra_keys = {k for k in config if isinstance(k, str)}
        model_type = config.get("model_type")
    if class_name.startswith("Auto"):
        mapping = _auto_mapping(source.root, class_name)
        if mapping is None:
            notes.append(f"{class_name} was not found in the installed {source.version} source (models/auto): "
                         "the model class is not known; measure it.")
        elif model_type is not None:
            target = mapping.get(model_type)
            model = _model_class(source.root, target, model_type, extra_keys) if target else None
            if model is None:
                notes.append(f"{class_name} has no class for model_type {model_type!r} in the installed source.")
    else:
        # The class as named; its own model type when the checkpoint's has no such class (a GPT-2 class on a
        # LLaMA folder: from_pretrained would build the named class all the same).
        model = (_model_class(source.root, class_name, model_type, extra_keys)
                 or _model_class(source.root, class_name, None, extra_keys))
        if model is None:
            notes.append(f"{class_name} was not found in the installed transformers {source.version} source: the "
                         "model class is not known; measure it.")
    if model is not None and model.config_class:
        config_members = model.config_members | source.config_base_members
        config_label = f"{model.config_class} (the checkpoint's config)" if checkpoint else model.config_class
    else:
        config_members = frozenset(source.config_base_members | extra_keys)
        config_label = "PreTrainedConfig (every model's config)"
    judge = _Judge(source, call, _Env(_given_values(call), source.fields), auto_path, model, frozenset(config_members),
                   config_label)
    verdicts: list[ArgumentVerdict] = []
    for index, argument in enumerate(call.positional):
        verdicts.append(judge.judge_positional(index, argument.written))
    for argument in call.arguments:
        if argument.is_keyword:
            verdicts.append(judge.judge_keyword(argument.name, argument.written))  # type: ignore[arg-type]
        elif argument.name in ("*", "**"):
            verdicts.append(ArgumentVerdict(argument.written, argument.written, "unseen",
                                            f"`{argument.written}` unpacks arguments this checker cannot see; write "
                                            "them out to have each one read.", ()))
    order = {a.written: i for i, a in enumerate(call.arguments)}
    verdicts.sort(key=lambda v: order.get(v.written, 0))
    return CallReading(call, source.version, str(source.root), model.name if model else None, tuple(verdicts),
                       tuple(notes))


def read_argument(name: str, code: str = "AutoModelForCausalLM.from_pretrained(path)") -> ArgumentVerdict:
    """The verdict on keyword ``name`` added to ``code`` (by default a bare Auto call), e.g. for a lesson that
    asks about one flag.

    >>> read_argument("low_cpu_mem_usage").kind
    'ignored'
    """
    call = parse_call(code)
    if call.keyword(name) is None:
        call = parse_call(call.source[:-1] + (", " if call.arguments else "") + f"{name}=True)")
    return read_call(call).verdict(name)

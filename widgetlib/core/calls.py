"""A learner's ``from_pretrained(...)`` line, parsed with :mod:`ast` and never evaluated.

:func:`parse_call` turns the text a learner pastes (``model = AutoModelForCausalLM.from_pretrained(path,
offload_folder=tmp)``) into a :class:`ParsedCall`: the class it is called on, the positional arguments and the
keywords, each as written. :mod:`widgetlib.core.from_pretrained_source` reads each keyword against the
installed transformers; the measured run rebuilds the call's values with :func:`call_values` (literals and
``torch.<dtype>`` only: the learner's variables are not known to a process that never ran their code).

>>> call = parse_call('model = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.float16)')
>>> call.class_name, [a.written for a in call.arguments]
('AutoModelForCausalLM', ["'gpt2'", 'torch_dtype=torch.float16'])
>>> call.without("torch_dtype").source
"AutoModelForCausalLM.from_pretrained('gpt2')"
"""

from __future__ import annotations

import ast
import operator
import os
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from .errors import OptionError

__all__ = ["CHECKPOINT_PARAMETER", "CallArgument", "ParsedCall", "call_values", "literal_value", "parse_call",
           "unmeasurable"]

# Classes whose from_pretrained loads something other than a model: their arguments are another function's.
_NOT_A_MODEL = ("Tokenizer", "TokenizerFast", "Processor", "Config", "FeatureExtractor", "ImageProcessor")

# The checkpoint argument's name in PreTrainedModel.from_pretrained (and in the Auto classes').
CHECKPOINT_PARAMETER = "pretrained_model_name_or_path"


@dataclass(frozen=True)
class CallArgument:
    """One argument as written: ``name`` is the keyword (None for a positional one, ``"**"`` / ``"*"`` for an
    unpacked mapping or sequence) and ``source`` the value's text.

    >>> CallArgument("dtype", "'bfloat16'").written, CallArgument(None, "path").written
    ("dtype='bfloat16'", 'path')
    """

    name: str | None
    source: str

    @property
    def written(self) -> str:
        """The argument as it appears in the call."""
        if self.name in ("*", "**"):
            return f"{self.name}{self.source}"
        return f"{self.name}={self.source}" if self.name else self.source

    @property
    def is_keyword(self) -> bool:
        """True for ``name=value`` (not for a positional or an unpacked argument)."""
        return self.name is not None and self.name not in ("*", "**")


@dataclass(frozen=True)
class ParsedCall:
    """A ``from_pretrained`` call: ``receiver`` is what it is called on as written (``AutoModelForCausalLM``,
    ``transformers.LlamaForCausalLM``, ``model_class``; None for a bare ``from_pretrained(...)``).

    >>> parse_call("model_class.from_pretrained(p, 'x', dtype='auto')").positional[1].source
    "'x'"
    """

    receiver: str | None
    arguments: tuple[CallArgument, ...]

    @property
    def class_name(self) -> str | None:
        """The last part of the receiver (``LlamaForCausalLM`` for ``transformers.LlamaForCausalLM``)."""
        return self.receiver.rsplit(".", 1)[-1] if self.receiver else None

    @property
    def positional(self) -> tuple[CallArgument, ...]:
        """The positional arguments, in order (an unpacked ``*args`` is not among them)."""
        return tuple(a for a in self.arguments if a.name is None)

    @property
    def keywords(self) -> tuple[CallArgument, ...]:
        """The ``name=value`` arguments, in order."""
        return tuple(a for a in self.arguments if a.is_keyword)

    @property
    def unpacked(self) -> tuple[CallArgument, ...]:
        """``*args`` and ``**kwargs``: arguments whose names no reader of the line can know."""
        return tuple(a for a in self.arguments if a.name in ("*", "**"))

    def keyword(self, name: str) -> CallArgument | None:
        """The keyword argument ``name``, or None when the call does not give it.

        >>> parse_call("from_pretrained(p, device_map='auto')").keyword("device_map").source
        "'auto'"
        """
        return next((a for a in self.keywords if a.name == name), None)

    @property
    def source(self) -> str:
        """The call as one line of Python (what a measured run executes, and what a learner can copy)."""
        head = f"{self.receiver}.from_pretrained" if self.receiver else "from_pretrained"
        return f"{head}({', '.join(a.written for a in self.arguments)})"

    def without(self, name: str) -> ParsedCall:
        """The same call without keyword ``name``.

        >>> parse_call("from_pretrained(p, a=1, b=2)").without("a").source
        'from_pretrained(p, b=2)'
        """
        return replace(self, arguments=tuple(a for a in self.arguments if a.name != name))

    def without_positional(self, index: int) -> ParsedCall:
        """The same call without its positional argument number ``index`` (0 is the checkpoint).

        >>> parse_call("from_pretrained(p, 'x', a=1)").without_positional(1).source
        'from_pretrained(p, a=1)'
        """
        target = self.positional[index]
        return replace(self, arguments=tuple(a for a in self.arguments if a is not target))

    def renamed(self, old: str, new: str) -> ParsedCall:
        """The same call with keyword ``old`` written as ``new`` (same value, same place).

        >>> parse_call("from_pretrained(p, torch_dtype=torch.float16)").renamed("torch_dtype", "dtype").source
        'from_pretrained(p, dtype=torch.float16)'
        """
        return replace(self, arguments=tuple(replace(a, name=new) if a.name == old else a for a in self.arguments))


def _short(code: str) -> str:
    first = code.strip().splitlines()[0] if code.strip() else ""
    return first if len(first) <= 70 else first[:67] + "..."


def _from_pretrained_calls(tree: ast.AST) -> Iterator[ast.Call]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if (isinstance(func, ast.Attribute) and func.attr == "from_pretrained") or (
                isinstance(func, ast.Name) and func.id == "from_pretrained"
            ):
                yield node


def parse_call(code: str) -> ParsedCall:
    """Parse the ``from_pretrained(...)`` call in ``code`` (a line or a few, as pasted; nothing is run).

    An assignment around it (``model = ...``), line breaks inside it and other statements beside it are fine;
    exactly one ``from_pretrained`` call must be there. Anything else is refused in one sentence.

    >>> parse_call("AutoModelForCausalLM.from_pretrained(\\n    'gpt2',\\n    device_map='auto',\\n)").source
    "AutoModelForCausalLM.from_pretrained('gpt2', device_map='auto')"
    >>> parse_call("print('hello')")
    Traceback (most recent call last):
    ...
    widgetlib.core.errors.OptionError: "print('hello')" is not a from_pretrained(...) call; paste the line that \
loads your model, such as AutoModelForCausalLM.from_pretrained("gpt2", dtype="bfloat16").
    """
    if not isinstance(code, str) or not code.strip():
        raise OptionError(
            f"{code!r} is empty; paste the from_pretrained(...) line that loads your model.", kind="not_a_call"
        )
    try:
        tree = ast.parse(textwrap.dedent(code).strip())
    except SyntaxError as exc:
        raise OptionError(
            f"{_short(code)!r} is not Python this checker can read ({exc.msg}, line {exc.lineno}); paste the "
            "from_pretrained(...) call as you wrote it.",
            kind="not_a_call",
        ) from None
    calls = list(_from_pretrained_calls(tree))
    if not calls:
        raise OptionError(
            f"{_short(code)!r} is not a from_pretrained(...) call; paste the line that loads your model, such as "
            'AutoModelForCausalLM.from_pretrained("gpt2", dtype="bfloat16").',
            kind="not_a_call",
        )
    if len(calls) > 1:
        raise OptionError(
            f"{_short(code)!r} holds {len(calls)} from_pretrained calls; paste the one that loads your model.",
            kind="not_a_call",
        )
    call = calls[0]
    receiver = ast.unparse(call.func.value) if isinstance(call.func, ast.Attribute) else None
    class_name = receiver.rsplit(".", 1)[-1] if receiver else ""
    if class_name.endswith(_NOT_A_MODEL):
        raise OptionError(
            f"{receiver}.from_pretrained loads a {class_name}, not a model; paste the call that loads the model "
            "(AutoModelForCausalLM.from_pretrained(...) or your model class's).",
            kind="not_a_call",
        )
    arguments: list[CallArgument] = []
    for node in call.args:
        if isinstance(node, ast.Starred):
            arguments.append(CallArgument("*", ast.unparse(node.value)))
        else:
            arguments.append(CallArgument(None, ast.unparse(node)))
    for keyword in call.keywords:
        arguments.append(CallArgument(keyword.arg or "**", ast.unparse(keyword.value)))
    return ParsedCall(receiver, tuple(arguments))


# -------------------------------------------------------------------------- the values a measured run uses


_ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
               ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}


def _fold(node: ast.AST) -> Any:
    """A literal, where numbers may be written as arithmetic (``2 * 1024**3``); ValueError for anything else
    (a name, a call, an attribute): nothing is looked up, no code runs."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _fold(node.operand)
        if isinstance(value, (int, float)):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        left, right = _fold(node.left), _fold(node.right)
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right))
        if numbers and not (isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > 2**64)):
            return _ARITHMETIC[type(node.op)](left, right)
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        values = [_fold(e) for e in node.elts]
        return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](values)
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_fold(k): _fold(v) for k, v in zip(node.keys, node.values, strict=True)}  # type: ignore[arg-type]
    raise ValueError(f"not a literal: {ast.unparse(node)}")


def _value(source: str, *, resolve: bool) -> tuple[bool, Any]:
    """(True, value) for a literal or a ``torch.<name>`` attribute (resolved only when ``resolve``), else
    (False, None)."""
    known, value = literal_value(source)
    if known:
        return True, value
    node = ast.parse(source, mode="eval").body
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "torch":
        if not resolve:
            return True, None
        import torch

        value = getattr(torch, node.attr, None)
        if isinstance(value, torch.dtype):
            return True, value
    return False, None


def literal_value(source: str) -> tuple[bool, Any]:
    """(True, value) when ``source`` is a literal (``"auto"``, ``{0: "2GB"}``, ``True``, ``2 * 1024**3``), else
    (False, None). Evaluated by walking its syntax tree: no name is looked up and no code runs.

    >>> literal_value("{'cpu': 3 * 10**8}"), literal_value("tmp_dir")
    ((True, {'cpu': 300000000}), (False, None))
    """
    try:
        return True, _fold(ast.parse(source, mode="eval").body)
    except (ValueError, SyntaxError, TypeError, ZeroDivisionError, OverflowError, MemoryError, RecursionError):
        return False, None


def unmeasurable(call: ParsedCall) -> str | None:
    """Why a measured process could not run ``call`` as written (one sentence), or None when it can.

    The checkpoint (the first positional argument, or ``pretrained_model_name_or_path=``) and ``offload_folder``
    are replaced by the run's own; every other value must be a literal or a ``torch.<dtype>``.

    >>> unmeasurable(parse_call("from_pretrained(path, offload_folder=tmp, dtype=torch.float16)")) is None
    True
    >>> unmeasurable(parse_call("from_pretrained(path, quantization_config=bnb)"))
    'quantization_config=bnb names a value Offload Lab cannot see (only literals and torch dtypes are rebuilt in \
the measured process); write the value itself in the call to measure it.'
    """
    for argument in call.unpacked:
        return (f"{argument.written} unpacks values Offload Lab cannot see; write the arguments out in the call "
                "to measure it.")
    for index, argument in enumerate(call.positional):
        if index > 0 and not _value(argument.source, resolve=False)[0]:
            return (f"positional argument {argument.source} names a value Offload Lab cannot see; write the value "
                    "itself in the call to measure it.")
    for argument in call.keywords:
        if argument.name in ("offload_folder", CHECKPOINT_PARAMETER):
            continue
        if not _value(argument.source, resolve=False)[0]:
            return (f"{argument.written} names a value Offload Lab cannot see (only literals and torch dtypes are "
                    "rebuilt in the measured process); write the value itself in the call to measure it.")
    return None


def call_values(call: ParsedCall, checkpoint: str | os.PathLike[str],
                offload_folder: str | os.PathLike[str] | None) -> tuple[list[Any], dict[str, Any]]:
    """The positional and keyword values to run ``call`` with: the checkpoint in place of the learner's model
    name, ``offload_folder`` (when the call gives one) in place of theirs, every other value rebuilt from its
    text (imports torch for a ``torch.<dtype>``). Raises the sentence of :func:`unmeasurable` otherwise.

    >>> call_values(parse_call("from_pretrained('gpt2', 'x', device_map='auto', offload_folder=tmp)"), "/ck", "/o")
    (['/ck', 'x'], {'device_map': 'auto', 'offload_folder': '/o'})
    """
    reason = unmeasurable(call)
    if reason is not None:
        raise OptionError(reason, kind="not_measurable")
    args: list[Any] = []
    for index, argument in enumerate(call.positional):
        args.append(str(checkpoint) if index == 0 else _value(argument.source, resolve=True)[1])
    kwargs: dict[str, Any] = {}
    for argument in call.keywords:
        if argument.name == CHECKPOINT_PARAMETER:
            kwargs[argument.name] = str(checkpoint)
        elif argument.name == "offload_folder" and offload_folder is not None:
            kwargs[argument.name] = str(offload_folder)
        else:
            known, value = _value(argument.source, resolve=True)
            if not known:
                raise OptionError(f"{argument.written} is not a literal or a torch dtype; write the value itself.",
                                  kind="not_measurable")
            kwargs[argument.name] = value  # type: ignore[index]
    return args, kwargs

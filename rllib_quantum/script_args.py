"""Command-line flags from a script's ``Args`` dataclass (a small stand-in for CleanRL's ``tyro``).

Every field ``some_name: T = default`` becomes ``--some-name VALUE``; ``bool`` fields become
``--flag`` / ``--no-flag``; ``tuple``/``list`` fields take one or more values
(``--modules paddle_0 paddle_1``), and a repeated flag adds to them (``--set a=1 --set b=2``);
``Optional[T]`` fields also accept ``none``. A ``# comment`` after a field in the script's source
becomes its ``--help`` text. The examples use it so that
the same script runs at full size by default and tiny in CI:

    python examples/train_independent_quantum_pong.py --iterations 1 --n-layers 1

Example:
    >>> import dataclasses
    >>> @dataclasses.dataclass
    ... class Args:
    ...     iterations: int = 20
    ...     lr: float = 0.01
    ...     modules: tuple = ("paddle_0", "paddle_1")
    ...     greedy: bool = False
    >>> parse_args(Args, ["--iterations", "1", "--modules", "paddle_0", "--greedy"])
    Args(iterations=1, lr=0.01, modules=('paddle_0',), greedy=True)
    >>> parse_args(Args, ["--modules", "paddle_0", "--modules", "paddle_1"]).modules
    ('paddle_0', 'paddle_1')
    >>> parse_args(Args, [])
    Args(iterations=20, lr=0.01, modules=('paddle_0', 'paddle_1'), greedy=False)
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import typing
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type, TypeVar

T = TypeVar("T")

_COMMENT = re.compile(r"^\s*(\w+)\s*:[^#]*#\s*(.+?)\s*$")


def _field_comments(cls: type) -> Dict[str, str]:
    """``{field: comment}`` from ``name: type = default  # comment`` lines of ``cls``'s source."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):  # defined interactively or in a doctest
        return {}
    return {m.group(1): m.group(2) for m in map(_COMMENT.match, source.splitlines()) if m}


def _unwrap_optional(tp: Any) -> Tuple[Any, bool]:
    if typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _scalar(tp: Any, optional: bool):
    """An argparse ``type=`` callable for ``tp`` (``none`` -> None when ``optional``)."""
    convert = tp if isinstance(tp, type) else str  # int, float, str, Path, ...

    def parse(text: str):
        if optional and text.lower() == "none":
            return None
        return convert(text)

    parse.__name__ = getattr(convert, "__name__", "str")  # argparse names the type in its errors
    return parse


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def build_parser(cls: type, description: Optional[str] = None) -> argparse.ArgumentParser:
    """The ``argparse.ArgumentParser`` with one flag per field of the dataclass ``cls``."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"parse_args expects a dataclass type, got {cls!r}")
    hints = typing.get_type_hints(cls)
    comments = _field_comments(cls)
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    for field in dataclasses.fields(cls):
        default = _default(field)
        flag = "--" + field.name.replace("_", "-")
        tp, optional = _unwrap_optional(hints.get(field.name, type(default)))
        note = comments.get(field.name)
        shown = " ".join(map(str, default)) if isinstance(default, (tuple, list)) else default
        help_text = f"{note} (default: {shown})" if note else f"default: {shown}"
        kwargs: Dict[str, Any] = {"dest": field.name, "default": default, "help": help_text.replace("%", "%%")}
        origin = typing.get_origin(tp) or tp
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin in (tuple, list):
            item_types = [a for a in typing.get_args(tp) if a is not Ellipsis]
            item = item_types[0] if item_types else (type(default[0]) if default else str)
            # "extend": a repeated flag adds its values (``--set a=1 --set b=2`` keeps both) instead
            # of the last one silently winning; the dataclass default applies when the flag is absent.
            kwargs.update(action="extend", nargs="+", default=None, type=_scalar(item, False),
                          metavar=field.name.upper())
        else:
            kwargs["type"] = _scalar(tp, optional)
        parser.add_argument(flag, **kwargs)
    return parser


def parse_args(cls: Type[T], argv: Optional[Sequence[str]] = None, description: Optional[str] = None) -> T:
    """An instance of the dataclass ``cls`` from command-line flags (``argv``: default ``sys.argv[1:]``).

    Args:
        cls: a dataclass whose fields all have defaults (the script's settings).
        argv: the flags; ``None`` reads the command line.
        description: ``--help`` text, e.g. the script's ``__doc__``.
    """
    parser = build_parser(cls, description)
    values = vars(parser.parse_args(None if argv is None else list(argv)))
    hints = typing.get_type_hints(cls)
    out: Dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        value = values[field.name]
        if value is None and isinstance(_default(field), (tuple, list)):  # a list flag not given:
            value = _default(field)  # its argparse default is None (build_parser's "extend")
        origin = typing.get_origin(_unwrap_optional(hints.get(field.name, object))[0])
        if isinstance(value, list) and (origin is tuple or hints.get(field.name) is tuple or isinstance(field.default, tuple)):
            value = tuple(value)
        out[field.name] = value
    return cls(**out)


__all__: List[str] = ["build_parser", "parse_args"]

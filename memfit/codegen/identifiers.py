"""C identifiers for names that come from models (tensor, op and model names)."""

from __future__ import annotations

import re

_NOT_IDENTIFIER = re.compile(r"[^0-9A-Za-z_]+")

_RESERVED = """
auto break case char const continue default do double else enum extern float for goto if inline
int long register restrict return short signed sizeof static struct switch typedef union
unsigned void volatile while _Bool _Complex _Imaginary _Alignas _Alignof _Atomic _Generic
_Noreturn _Static_assert _Thread_local main
"""
C_RESERVED = frozenset(_RESERVED.split())
"""C keywords, and ``main`` (the example program's file is main.c)."""


def c_identifier(text: str, fallback: str = "model") -> str:
    """``text`` as a C identifier: runs of other characters become one underscore, a leading
    digit gets an underscore before it, keywords get an underscore after them."""
    name = _NOT_IDENTIFIER.sub("_", text).strip("_").lower() or fallback
    if name[0].isdigit():
        name = "_" + name
    if name in C_RESERVED:
        name += "_"
    return name


def c_comment(text: str) -> str:
    """``text`` safe inside a C block comment (model names may hold ``*/``)."""
    return text.replace("*/", "* /").replace("/*", "/ *").replace("\n", " ")

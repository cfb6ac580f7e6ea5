"""Jinja2 with less work per value: what the templates say and render is unchanged.

A 50,000-paper digest page outputs about 700,000 values and calls its card macro 50,000
times; Jinja2's generic paths for both cost more than the rendering itself. The compiled
templates' `escape` becomes `html_escape` (markupsafe's escaping, without a Python-level
`Markup()` per value) and their macros `_Macro`, which `_Context.call` calls directly when
nothing about the call needs Jinja2's argument matching. Any template, a user's override
included, gets both: they change no output.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from types import CodeType
from typing import Any

from jinja2 import Environment, Template
from jinja2.runtime import Context, Macro
from jinja2.utils import missing
from markupsafe import Markup, escape

from digest.text import escape_text

# The scope that compiled templates pass with every call: only `pass_context` callables use it.
_SCOPE_ARGS = frozenset({"_loop_vars", "_block_vars"})
_new_str = str.__new__


class _Macro(Macro):
    """A macro; `plain` when it takes no `caller`, `*varargs` or `**kwargs`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plain = not (self.caller or self.catch_kwargs or self.catch_varargs
                          or self.explicit_caller or self._environment.is_async)


class _Context(Context):
    """A context whose calls of a plain macro with positional arguments (`paper_card(paper,
    history_base)`) go straight to the macro's function, with what `Context.call` and
    `Macro.__call__` would give it (`missing` for the arguments not passed) and return what
    they would (the same text, Markup when autoescaping). Any other call takes their path."""

    def call(self, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        if (type(obj) is _Macro and obj.plain and len(args) <= obj._argument_count
                and kwargs.keys() <= _SCOPE_ARGS):
            try:
                done = obj._func(*args, *(missing,) * (obj._argument_count - len(args)))
            except StopIteration:  # as Context.call answers it
                return self.environment.undefined(
                    "value was undefined because a callable raised a StopIteration exception")
            return _new_str(Markup, done) if self.eval_ctx.autoescape else done
        return super().call(obj, *args, **kwargs)


def _escape_output(value: Any) -> str:
    """What `escape(value)` outputs, as a plain str: a compiled template only ever outputs
    (yields, or joins into a macro's or block's text) what it escapes. Escaped text as a str
    is neither copied into a Markup nor tracked by the garbage collector: a 50,000-paper page
    has 700,000 of them, and its staging holds thousands at a time."""
    kind = type(value)
    if kind is str:
        return escape_text(value)
    if kind is int:
        return str(value)
    if kind is Markup:
        return value  # type: ignore[no-any-return]
    return escape(value)


class _Template(Template):
    """A template whose compiled module escapes with `html_escape` and makes `_Macro`s."""

    @classmethod
    def from_code(cls, environment: Environment, code: CodeType,
                  globals: MutableMapping[str, Any],
                  uptodate: Callable[[], bool] | None = None) -> Template:
        template = super().from_code(environment, code, globals, uptodate)
        module = template.root_render_func.__globals__  # what the compiled code looks names up in
        module["escape"] = _escape_output
        module["Macro"] = _Macro
        return template


def lighten(env: Environment) -> Environment:
    """Make `env` compile its templates with the cheaper escape and macro calls."""
    env.template_class = _Template
    env.context_class = _Context
    return env

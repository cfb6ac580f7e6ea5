"""Template errors as one line naming the template, its file and line, found before anything
is committed: every template compiled up front, the new outputs rendered before the commit."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from digest.errors import DigestError, TemplateError

# Jinja2 and the renderer are imported in the functions: a cycle with nothing to render
# (the bundled templates, nothing new) never loads them.

FIX = "fix the template (or remove the override to use the bundled one)"


def check_templates(user_templates: str | None) -> None:
    """Compile every template the outputs may use; TemplateError on the first that fails.

    Only with override templates: the bundled ones are compiled by the test suite (and by
    every golden-file test), and compiling them all on every cycle costs more than a steady
    cycle's work."""
    if user_templates is None:
        return
    from digest.publish.render import environment

    env = environment(user_templates)
    with template_errors():
        for name in env.list_templates(filter_func=_is_template):
            env.get_template(name)


@contextmanager
def template_errors() -> Iterator[None]:
    """Turn a Jinja2 error (syntax, undefined name, missing include), or an error raised by
    a template's own code (`{{ 1/0 }}`, a macro given too many arguments), into
    TemplateError. An error raised in our Python (a filter, a view) is a bug: raised as is."""
    import jinja2

    try:
        yield
    except jinja2.TemplateSyntaxError as exc:
        where = _where(exc.name, exc.filename, exc.lineno)
        raise TemplateError(where, " ".join((exc.message or "syntax error").split()), FIX) from None
    except jinja2.TemplateError as exc:
        filename, line = _template_frame(exc.__traceback__)
        where = _where(Path(filename).name if filename else None, filename, line)
        raise TemplateError(where, " ".join((exc.message or type(exc).__name__).split()),
                            FIX) from None
    except DigestError:  # already one line (a full disk while a stream is staged)
        raise
    except Exception as exc:
        filename, line = _template_frame(exc.__traceback__)
        if filename is None or not _raised_by_template(exc.__traceback__):
            raise
        where = _where(Path(filename).name, filename, line)
        raise TemplateError(where, " ".join(f"{type(exc).__name__}: {exc}".split()), FIX) from None


def _raised_by_template(tb: TracebackType | None) -> bool:
    """Whether the innermost frame is template code or Jinja2's own runtime (which checks a
    macro's arguments; publish.templating stands in for part of it), not the Python a
    template calls."""
    from digest.publish import templating

    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    filename = tb.tb_frame.f_code.co_filename
    is_template = not filename.endswith(".py") and not filename.startswith("<")
    return is_template or Path(filename).parent.name == "jinja2" or filename == templating.__file__


def _is_template(name: str) -> bool:
    return not name.endswith(".css")


def _where(name: str | None, filename: str | None, line: int | None) -> str:
    text = f"template {name or '?'}"
    if filename:
        text += f" ({filename}" + (f", line {line})" if line else ")")
    return text


def _template_frame(tb: TracebackType | None) -> tuple[str | None, int | None]:
    """The innermost frame that is template code (Jinja2 rewrites them to the template's
    file and line)."""
    found: tuple[str | None, int | None] = (None, None)
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not filename.endswith(".py") and not filename.startswith("<"):
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found

"""Jinja templates in automation actions, sandboxed with Prefect's limits, and bounded.

Templates are compiled when an automation file is loaded, so a syntax error
or a template over the limits is a validation error, not a runtime surprise.

Prefect's sandbox limits loops (how many, how deep) and `range`. A template can
still ask for gigabytes or hours without them (`'x' * 10**9`, `'%999999999d'`,
`s | indent(10**6)`, a macro that calls itself twice, `~` in a loop that doubles a
string), and Jinja would even fold constant expressions at compile time, that is
at `validate`. So here every value a template builds is at most MAX_OUTPUT long,
checked before it is built where it could be large; every loop iteration and call
spends one unit of a budget of MAX_WORK per render; and the output is at most
MAX_OUTPUT. Over a bound, rendering raises TemplateLimit (a failed action).
"""

from __future__ import annotations

import contextvars
import functools
import math
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from jinja2 import ChainableUndefined, Template, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

# Prefect's limits for user templates.
MAX_RANGE = 100
MAX_LOOP_COUNT = 10
MAX_NESTED_LOOP_DEPTH = 2
# This project's bounds: as large as a tracker file may be; loop iterations and calls.
MAX_OUTPUT = 1024 * 1024
MAX_WORK = 100_000
_MAX_POWER_BITS = 64 * 1024


class TemplateError(ValueError):
    """A template that does not compile or breaks a limit."""

    def __init__(self, message: str, lineno: int = 1) -> None:
        super().__init__(message)
        self.lineno = lineno


class TemplateLimit(SecurityError):
    """Rendering would go past a bound on size or work."""


def _bounded_range(*args: int) -> range:
    result = range(*args)
    if len(result) > MAX_RANGE:
        raise OverflowError(f"range() is limited to {MAX_RANGE} items in templates")
    return result


# -- the bounds ----------------------------------------------------------------------------

# Work left in the render under way; None outside one (compile-time folding, which
# builds nothing unbounded either: each value is checked as it is made).
_work: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("work", default=None)


def _spend(units: int = 1) -> None:
    left = _work.get()
    if left is not None:
        left[0] -= units
        if left[0] < 0:
            raise TemplateLimit(f"the template does more than {MAX_WORK} loop steps and calls")


def _size(estimate: int) -> None:
    if estimate > MAX_OUTPUT:
        raise TemplateLimit(f"the template would build a value over {MAX_OUTPUT} characters")


def _sized(value: Any) -> Any:
    if isinstance(value, str | list | tuple | dict | bytes):
        _size(len(value))
    return value


def _length(value: Any) -> int:
    return len(value) if isinstance(value, str | list | tuple | bytes) else 0


def _numbers(args: Iterable[Any]) -> None:
    """No count or width a template passes is over the bound: every one of them
    (center, ljust, zfill, indent, batch, slice, truncate...) sizes what is built."""
    for value in args:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_OUTPUT:
            raise TemplateLimit(f"the number {value} is too large for a template")


# Widths and precisions of %-formats and format specs: each sizes the result.
_WIDTHS = re.compile(r"%[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?|[:<>^=]\s*0?(\d+)")


def _format_string(text: str) -> None:
    for match in _WIDTHS.finditer(text):
        for group in match.groups():
            if group == "*":
                raise TemplateLimit("a '*' width is not allowed in templates")
            if group and int(group) > MAX_OUTPUT:
                raise TemplateLimit(f"the width {group} is too large for a template")


def _before(operation: str, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """What a string operation would build, bounded before it is built."""
    _numbers((*args, *kwargs.values()))
    if not isinstance(value, str):
        return
    if operation == "replace" and len(args) >= 2:
        old, new = str(args[0]), str(args[1])
        _size(len(value) + (value.count(old) + (old == "")) * len(new))
    elif operation == "join" and args:
        _size(len(value) * max(len(args[0]) if hasattr(args[0], "__len__") else 0, 1))
    elif operation in ("expandtabs", "indent"):
        width = args[0] if args and isinstance(args[0], int) else 8
        _size(len(value) + (value.count("\t") + value.count("\n") + 1) * width)
    elif operation in ("format", "format_map"):
        _format_string(value)


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    # The value comes first, after the context or environment a filter may ask for.
    skip = 1 if getattr(function, "jinja_pass_arg", None) else 0

    @functools.wraps(function)  # keeps that marker
    def bounded(*args: Any, **kwargs: Any) -> Any:
        values = args[skip:]
        value, rest = (values[0], tuple(values[1:])) if values else (None, ())
        _spend()
        if name == "join":
            _size(_length(value) * max(len(str(rest[0])) if rest else 0, 1))
        elif name == "format" and isinstance(value, str):
            _format_string(value)
        _before(name, value, rest, kwargs)
        return _sized(function(*args, **kwargs))

    return bounded


def _bounded_iteration(iterable: Any) -> Iterator[Any]:
    for item in iterable:
        _spend()
        yield item


def _concat(parts: list[Any]) -> str:
    texts = [str(part) for part in parts]
    _size(sum(map(len, texts)))
    return "".join(texts)


class _Bounded(NodeTransformer):
    """Loops iterate through the budget; `~` concatenates through the size check."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _filter(node.iter, "gi_iteration")
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _filter(nodes.List(node.nodes, lineno=node.lineno), "gi_concat")


def _filter(node: nodes.Node, name: str) -> nodes.Node:
    wrapped = nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)
    return wrapped.set_environment(ENVIRONMENT)


class _Sandbox(ImmutableSandboxedEnvironment):
    # Intercepted operators are also never folded at compile time (Jinja's rule).
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                if isinstance(count, int) and not isinstance(count, bool):
                    _size(_length(sequence) * count)
        elif operator == "**" and _integers(left, right) and abs(left) > 1 and right > 0:
            if right * math.log2(abs(left)) > _MAX_POWER_BITS:
                raise TemplateLimit("the power is too large for a template")
        elif operator == "%" and isinstance(left, str):
            _format_string(left)
        elif operator == "+":
            _size(_length(left) + _length(right))
        return _sized(super().call_binop(context, operator, left, right))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        text: str = value.__self__  # the format string itself, checked before it is used

        @functools.wraps(wrapped)
        def checked(*args: Any, **kwargs: Any) -> str:
            _format_string(text)
            return wrapped(*args, **kwargs)

        return checked

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _spend()  # a macro that calls itself spends it too
        owner = getattr(__obj, "__self__", None)
        _before(getattr(__obj, "__name__", ""), owner, args, kwargs)
        return _sized(super().call(__context, __obj, *args, **kwargs))


def _integers(*values: Any) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) for v in values)


def _environment() -> _Sandbox:
    env = _Sandbox(undefined=ChainableUndefined, autoescape=False)
    # A local bound instead of changing jinja2.sandbox.MAX_RANGE for the whole process.
    env.globals["range"] = _bounded_range
    del env.globals["lipsum"]  # Lorem ipsum by the million words: nothing a message needs
    env.filters = {name: _bounded_filter(name, f) for name, f in env.filters.items()}
    env.filters["gi_iteration"] = _bounded_iteration
    env.filters["gi_concat"] = _concat
    return env


ENVIRONMENT = _environment()


@functools.lru_cache(maxsize=4096)
def compile_template(source: str) -> Template:
    """Compile `source`, or raise TemplateError with the template line."""
    try:
        tree = ENVIRONMENT.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message}", exc.lineno or 1) from None
    loops = list(tree.find_all(nodes.For))
    if len(loops) > MAX_LOOP_COUNT:
        raise TemplateError(
            f"template has {len(loops)} for loops; at most {MAX_LOOP_COUNT} are allowed",
            loops[MAX_LOOP_COUNT].lineno,
        )
    for loop in loops:
        depth = _loop_depth(loop)
        if depth > MAX_NESTED_LOOP_DEPTH:
            raise TemplateError(
                f"template nests for loops {depth} deep; at most {MAX_NESTED_LOOP_DEPTH} "
                "are allowed",
                loop.lineno,
            )
    try:
        return ENVIRONMENT.from_string(_Bounded().visit(tree))
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message}", exc.lineno or 1) from None


def render(template: Template, context: dict[str, Any]) -> str:
    """The template's output, within the bounds (TemplateLimit past them)."""
    token = _work.set([MAX_WORK])
    try:
        parts, size = [], 0
        for part in template.generate(context):
            size += len(part)
            _size(size)
            parts.append(part)
        return "".join(parts)
    finally:
        _work.reset(token)


def _loop_depth(node: nodes.Node) -> int:
    """How many for loops nest at and below `node`."""
    below = max((_loop_depth(child) for child in node.iter_child_nodes()), default=0)
    return below + isinstance(node, nodes.For)

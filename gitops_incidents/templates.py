"""Jinja templates in automation actions, sandboxed with Prefect's limits.

Templates are compiled when an automation file is loaded, so a syntax error
or a template over the limits is a validation error, not a runtime surprise.
"""

from __future__ import annotations

from functools import lru_cache

from jinja2 import ChainableUndefined, Template, TemplateSyntaxError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

# Prefect's limits for user templates.
MAX_RANGE = 100
MAX_LOOP_COUNT = 10
MAX_NESTED_LOOP_DEPTH = 2


class TemplateError(ValueError):
    """A template that does not compile or breaks a limit."""

    def __init__(self, message: str, lineno: int = 1) -> None:
        super().__init__(message)
        self.lineno = lineno


def _bounded_range(*args: int) -> range:
    result = range(*args)
    if len(result) > MAX_RANGE:
        raise OverflowError(f"range() is limited to {MAX_RANGE} items in templates")
    return result


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=ChainableUndefined, autoescape=False)
    # A local bound instead of changing jinja2.sandbox.MAX_RANGE for the whole process.
    env.globals["range"] = _bounded_range
    return env


ENVIRONMENT = _environment()


@lru_cache(maxsize=4096)
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
    return ENVIRONMENT.from_string(tree)


def _loop_depth(node: nodes.Node) -> int:
    """How many for loops nest at and below `node`."""
    below = max((_loop_depth(child) for child in node.iter_child_nodes()), default=0)
    return below + isinstance(node, nodes.For)

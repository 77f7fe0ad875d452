"""Parsed-module context shared by the Python (ast) rules: import aliases, parents, helpers."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from agents.analysis.base import make_finding
from agents.analysis.finding import RawFinding, Severity

FUNC_NODES = (ast.FunctionDef, ast.AsyncFunctionDef)


def _import_aliases(tree: ast.Module) -> dict[str, str]:
    """Map local names to the dotted names they import (`sp` -> `subprocess`)."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    aliases[a.asname] = a.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                if a.name != "*":
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    return aliases


def _module_defined_names(tree: ast.Module) -> set[str]:
    """Top-level names the module defines itself; these shadow builtins like eval/open."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (*FUNC_NODES, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


@dataclass
class PyContext:
    """Everything a rule needs about one parsed Python file."""

    path: str
    lines: list[str]
    tree: ast.Module
    aliases: dict[str, str] = field(default_factory=dict)
    shadowed: set[str] = field(default_factory=set)
    parents: dict[ast.AST, ast.AST] = field(default_factory=dict)

    @classmethod
    def build(cls, path: str, lines: list[str], tree: ast.Module) -> PyContext:
        """Precompute aliases, shadowed builtins and the child -> parent map."""
        parents: dict[ast.AST, ast.AST] = {}
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                parents[child] = node
        return cls(path, lines, tree, _import_aliases(tree), _module_defined_names(tree), parents)

    def qualname(self, node: ast.AST) -> str | None:
        """Dotted name of a Name/Attribute chain with the first segment import-resolved."""
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        parts.append(self.aliases.get(node.id, node.id))
        return ".".join(reversed(parts))

    def is_builtin_call(self, call: ast.Call, name: str) -> bool:
        """True for a plain `name(...)` call that is not shadowed by a module-level def."""
        return (
            isinstance(call.func, ast.Name)
            and call.func.id == name
            and name not in self.shadowed
            and name not in self.aliases
        )

    def enclosing_function(self, node: ast.AST) -> ast.AST:
        """Nearest enclosing function, or the module for top-level code."""
        cur = self.parents.get(node)
        while cur is not None and not isinstance(cur, FUNC_NODES):
            cur = self.parents.get(cur)
        return cur if cur is not None else self.tree

    def finding(
        self,
        rule: str,
        node: ast.AST,
        *,
        confidence: float,
        end_node: ast.AST | None = None,
        severity: Severity | None = None,
        title: str | None = None,
        extra: str = "",
        evidence: str | None = None,
    ) -> RawFinding:
        """Finding anchored at `node` (line range of the node unless end_node is given)."""
        start = getattr(node, "lineno", 1)
        end = getattr(end_node or node, "end_lineno", None) or start
        # Multi-line statements are capped so evidence stays the offending lines, not a block.
        end = min(end, start + 4)
        return make_finding(
            rule,
            self.path,
            self.lines,
            start,
            end,
            confidence=confidence,
            severity=severity,
            title=title,
            extra=extra,
            evidence=evidence,
        )


def keyword(call: ast.Call, name: str) -> ast.keyword | None:
    """The `name=` keyword of a call, if passed explicitly."""
    for kw in call.keywords:
        if kw.arg == name:
            return kw
    return None


def passes(call: ast.Call, name: str, value: object) -> bool:
    """The call passes keyword `name` as the literal `value` (`verify=False`)."""
    found = keyword(call, name)
    return found is not None and is_const(found.value, value)


def has_star_kwargs(call: ast.Call) -> bool:
    """A `**kwargs` argument might carry any keyword, so keyword-absence rules must skip."""
    return any(kw.arg is None for kw in call.keywords)


def is_const(node: ast.AST | None, value: object) -> bool:
    """True when `node` is the literal `value` (compared by identity for True/False/None)."""
    return isinstance(node, ast.Constant) and node.value is value


def is_str_const(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def is_dynamic_string(node: ast.AST) -> bool:
    """True for strings assembled at runtime: f-strings with fields, `"..." + x`,
    `"..." % x` and `"...".format(...)`."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return is_str_const(node.left) or is_dynamic_string(node.left)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        sides = (node.left, node.right)
        has_text = any(is_str_const(s) or is_dynamic_string(s) for s in sides)
        has_var = any(not is_str_const(s) for s in sides)
        return has_text and has_var
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
    ):
        return is_str_const(node.func.value)
    return False

"""Static checks on a candidate's Python source (a KernelBench-style `ModelNew` solution file).

The dynamic checks catch most cheating; these name two tricks precisely before anything runs: a try/except that
could fall back to PyTorch when the kernel fails, and a candidate that builds or calls the reference `Model`.
"""

from __future__ import annotations

import ast

from .result import Check


def check_candidate_source(source: str, reference_class: str = "Model") -> list[Check]:
    """Checks on candidate source text; each failure names the line."""
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        return [Check("candidate source parses", False, f"line {e.lineno}: {e.msg}")]
    checks = [Check("candidate source parses", True)]
    tries = [n.lineno for n in ast.walk(tree) if isinstance(n, (ast.Try, getattr(ast, "TryStar", ast.Try)))]
    checks.append(Check("no try/except around the computation", not tries,
                        f"try statement at line(s) {', '.join(map(str, sorted(set(tries))))}: a fallback to PyTorch "
                        "when the kernel fails is not allowed" if tries else ""))
    uses = sorted({n.lineno for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == reference_class})
    checks.append(Check(f"does not use the reference class {reference_class}", not uses,
                        f"{reference_class} is used at line(s) {', '.join(map(str, uses))}" if uses else ""))
    return checks

# type: ignore
# ruff: noqa
# Semgrep test target for rules/code-execution.yaml (run with `semgrep --test`); never imported.
import ast
import builtins
import re

user_code = input()


def dynamic(expr):
    # ruleid: wormhole.python.eval-exec-nonliteral
    eval(expr)
    # ruleid: wormhole.python.eval-exec-nonliteral
    exec(f"result = {user_code}")
    # ruleid: wormhole.python.eval-exec-nonliteral
    code = compile("x = " + expr, "<input>", "exec")
    # ruleid: wormhole.python.eval-exec-nonliteral
    builtins.eval(user_code, {})
    # ruleid: wormhole.python.eval-exec-nonliteral
    exec("print(%s)" % expr)
    return code


def safe(expr):
    # ok: wormhole.python.eval-exec-nonliteral
    eval("1 + 1")
    # ok: wormhole.python.eval-exec-nonliteral
    exec("import math")
    # ok: wormhole.python.eval-exec-nonliteral
    re.compile(expr)
    # ok: wormhole.python.eval-exec-nonliteral
    pattern.compile(expr)
    # ok: wormhole.python.eval-exec-nonliteral
    ast.literal_eval(expr)
    # ok: wormhole.python.eval-exec-nonliteral
    tree = compile(expr, "<input>", "exec", ast.PyCF_ONLY_AST)
    return tree

"""Shared test set-up. Async tests use ``tests.integration.helpers.async_test`` (plain
``asyncio.run`` with a hard timeout), so the same files need no asyncio plugin and the sans-I/O
ones run unchanged in Pyodide."""

# Import hypothesis up front: its pytest plugin otherwise imports it lazily in the terminal
# summary, where CPython 3.11's AST validator can trip over a recursion-depth count left off by
# an earlier deep traceback ("SystemError: AST constructor recursion depth mismatch").
import hypothesis  # noqa: F401

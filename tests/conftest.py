"""Shared test helpers. Async tests use :func:`run` (plain ``asyncio.run`` with a hard timeout),
so the same files need no asyncio plugin and the sans-I/O ones run unchanged in Pyodide."""

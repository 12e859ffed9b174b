"""Host layer: connection upgrade, streams, protocol routing, ping and identify services.

Written on asyncio, which runs natively and on Pyodide's event loop alike; only the transports
below it differ between runtimes.
"""

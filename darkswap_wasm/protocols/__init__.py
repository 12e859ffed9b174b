"""Sans-I/O protocol machines: bytes and time in, bytes and events out. No sockets, no sleeps, no ``js``."""

"""Wire layer: varints, a minimal protobuf codec, base58/multibase, multiaddr, length-prefixed framing.

Pure functions over bytes; nothing here does I/O. Lowest layer: imports nothing above it.
"""

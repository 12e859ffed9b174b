"""Clock-free policy: plain state machines for the host's decisions (redial backoff, relay
reservations, heartbeats). Same contract as ``protocols/``: times are arguments, nothing is read
or awaited here, nothing imports ``host/`` or ``api/``; tests call them directly."""

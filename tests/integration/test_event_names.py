"""Event names are declared once (darkswap_wasm/events.py); the page's declarations
(``EVENTS`` in js_glue/darkswap.js, ``EventMap`` in js_glue/darkswap.d.ts) list exactly the
page events, and the host refuses names it does not know. Reads the checkout."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from darkswap_wasm import events
from darkswap_wasm.errors import UsageError
from darkswap_wasm.host.host import Host, HostConfig
from darkswap_wasm.identity import Identity

from .helpers import async_test

ROOT = Path(__file__).resolve().parents[2]


def test_darkswap_js_events_are_the_declared_page_events():
    js = (ROOT / "js_glue" / "darkswap.js").read_text()
    m = re.search(r"var EVENTS = \[(.*?)\];", js, re.S)
    assert m, "darkswap.js declares no EVENTS array"
    assert tuple(re.findall(r'"([a-z:]+)"', m.group(1))) == events.JS_EVENTS


def test_darkswap_d_ts_event_map_is_the_declared_page_events():
    dts = (ROOT / "js_glue" / "darkswap.d.ts").read_text()
    m = re.search(r"export interface EventMap \{(.*?)\n\}", dts, re.S)
    assert m, "darkswap.d.ts has no EventMap"
    keys = re.findall(r'^\s*"?([a-z:]+)"?\s*:', m.group(1), re.M)
    assert tuple(keys) == events.JS_EVENTS


def test_every_event_the_code_emits_or_listens_to_is_declared():
    used = set()
    for path in (ROOT / "darkswap_wasm").rglob("*.py"):
        src = path.read_text()
        used |= set(re.findall(r'\b(?:emit|on|_emit)\(\s*"([a-z]+:[a-z]+|message|close)"', src))
    assert used, "the scan found no event use at all"
    assert used - events.HOST_EVENTS - set(events.JS_EVENTS) == set()


@async_test(timeout=10)
async def test_the_host_refuses_an_unknown_event_name():
    host = Host(Identity.generate(), [], HostConfig())
    try:
        with pytest.raises(UsageError, match="unknown host event 'peer:conect'"):
            host.on("peer:conect", lambda peer: None)
        with pytest.raises(UsageError):
            host.emit("relay:reserve", None)
        seen = []
        host.on(events.PEER_CONNECT, seen.append)
        host.emit(events.PEER_CONNECT, "x")
        assert seen == ["x"]
    finally:
        await host.close()

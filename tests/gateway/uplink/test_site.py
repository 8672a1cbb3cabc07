"""The site topic: neighbouring door gateways exchange claim summaries through a real
mosquitto. One gateway's claims reach the others and not itself; what is too big, not JSON,
on a bad topic or retained is dropped and counted; a full queue drops the oldest; without a
site nothing is subscribed or sent; nothing a message holds raises into the uplink."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foundation.clock import SystemClock
from gateway.outbox import Outbox
from gateway.uplink import ConnectionState, SiteMessage, Uplink, UplinkConfig
from gateway.uplink._mqtt import InboundMessage
from gateway.uplink.site import SITE_QUEUE_MESSAGES
from tests.fixtures.mosquitto import Broker, free_port
from tests.gateway.uplink.helpers import STATUS, open_outbox, plain_config, subscribe

SITE: Final = "dock-a"
CLAIMS: Final = f"tagrelay/v1/site/{SITE}/claims"
DOOR_2: Final = "gw-door-2"
DOOR_3: Final = "gw-door-3"
#: Counter polls (the uplink has no event per dropped message), failing after this long.
DEADLINE_S: Final = 20.0


def claim(door: str, item: str, level: float = -61.5) -> bytes:
    return json.dumps(
        [{"door": door, "item": item, "level_dbm": level, "peak_dbm": -55, "sightings": 9}]
    ).encode()


@asynccontextmanager
async def gateway(config: UplinkConfig, gateway_id: str, tmp_path: Path) -> AsyncIterator[Uplink]:
    d = tmp_path / gateway_id
    d.mkdir()
    async with (
        open_outbox(d) as outbox,
        Uplink(config, gateway_id, outbox, SystemClock(), status=STATUS) as uplink,
    ):
        yield uplink


async def until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(DEADLINE_S):
        while not predicate():  # noqa: ASYNC110 - no event per dropped message
            await asyncio.sleep(0.01)


async def _next(it: AsyncIterator[SiteMessage]) -> SiteMessage:
    async with asyncio.timeout(DEADLINE_S):
        return await anext(it)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_a_claim_reaches_the_neighbour_and_not_its_sender(
    mosquitto: Broker, tmp_path: Path, protocol: str
) -> None:
    config = plain_config(mosquitto, protocol=protocol, site=SITE)
    async with (
        gateway(config, DOOR_2, tmp_path) as door2,
        gateway(config, DOOR_3, tmp_path) as door3,
    ):
        await door2.wait_state(ConnectionState.CONNECTED)
        await door3.wait_state(ConnectionState.CONNECTED)
        from2, from3 = door2.site_messages(), door3.site_messages()
        door3.publish_site(claim("door-3", "PCL-0001"))
        got = await _next(from2)
        assert got.sender == DOOR_3
        assert got.payload == claim("door-3", "PCL-0001")
        assert got.data == json.loads(claim("door-3", "PCL-0001"))
        # Door 3's own claim would reach door 3 before door 2's answer, which the broker
        # received only after it had passed door 3's on: door 3 sees door 2's first.
        door2.publish_site(claim("door-2", "PCL-0001", -70.0))
        back = await _next(from3)
        assert back.sender == DOOR_2
        assert back.data == json.loads(claim("door-2", "PCL-0001", -70.0))
        s2, s3 = door2.stats(), door3.stats()
    assert (s3.site_published, s3.site_received) == (1, 1)
    assert (s2.site_published, s2.site_received) == (1, 1)
    # MQTT 5: the broker does not echo (no local); 3.1.1: the uplink drops its own.
    own = {"own": 1} if protocol == "3.1.1" else {}
    assert s3.site_dropped == own
    assert s2.site_not_sent == s3.site_not_sent == {}


async def test_oversize_garbage_bad_topics_and_retained_claims_are_dropped_and_counted(
    mosquitto: Broker, tmp_path: Path
) -> None:
    config = plain_config(mosquitto, protocol="3.1.1", site=SITE, site_max_bytes=1024)
    async with subscribe(mosquitto, "unused/#", protocol="3.1.1") as raw:
        # Retained before the gateway subscribes: 3.1.1 sends it with the retain flag.
        await raw.client.publish(f"{CLAIMS}/gw-door-9", claim("door-9", "OLD"), qos=1, retain=True)
        async with gateway(config, DOOR_2, tmp_path) as door2:
            await door2.wait_state(ConnectionState.CONNECTED)
            hostile: list[tuple[str, bytes]] = [
                (f"{CLAIMS}/gw-door-4", b"[" + b" " * 1100 + b"]"),  # over site_max_bytes
                (f"{CLAIMS}/gw-door-4", b"not json"),
                (f"{CLAIMS}/gw-door-4", b"42"),  # JSON, not an object or array
                (f"{CLAIMS}/gw-door-4", b"[NaN]"),
                (f"{CLAIMS}/gw-door-4", b'{"item": "\\ud800"}'),  # a lone surrogate
                (f"{CLAIMS}/gw-door-4", b"\xff\xfe"),
                (f"{CLAIMS}/gw-door-4", b"[" * 1000),  # nested beyond the parser
                (f"{CLAIMS}/", claim("door-4", "X")),  # empty sender level
                (f"{CLAIMS}/{DOOR_2}", claim("door-2", "SPOOF")),  # "from" ourselves
            ]
            for topic, payload in hostile:
                await raw.client.publish(topic, payload, qos=1)
            await raw.client.publish(f"{CLAIMS}/gw-door-4", claim("door-4", "GOOD"), qos=1)
            got = await _next(door2.site_messages())
            assert got.sender == "gw-door-4"
            assert got.data == json.loads(claim("door-4", "GOOD"))
            stats = door2.stats()
            door2.publish_site(b"[" + b"0," * 600 + b"0]")  # ours too big: not sent
            assert door2.stats().site_not_sent == {"oversize": 1}
            assert door2.state == ConnectionState.CONNECTED
            # Still serving commands and the site: nothing above cost the connection.
            await raw.client.publish(f"{CLAIMS}/gw-door-4", claim("door-4", "AFTER"), qos=1)
            after = await _next(door2.site_messages())
            assert after.data == json.loads(claim("door-4", "AFTER"))
            assert door2.stats().connects == 1
        await raw.client.publish(f"{CLAIMS}/gw-door-9", b"", qos=1, retain=True)
    assert stats.site_received == 1
    assert stats.site_dropped == {
        "retained": 1,
        "oversize": 1,
        "garbage": 6,
        "bad_topic": 1,
        "own": 1,
    }


async def test_a_full_queue_drops_the_oldest_claims(mosquitto: Broker, tmp_path: Path) -> None:
    config = plain_config(mosquitto, site=SITE)
    extra = 5
    async with (
        gateway(config, DOOR_2, tmp_path) as door2,
        gateway(config, DOOR_3, tmp_path) as door3,
    ):
        await door2.wait_state(ConnectionState.CONNECTED)
        await door3.wait_state(ConnectionState.CONNECTED)
        total = SITE_QUEUE_MESSAGES + extra
        for n in range(total):
            door3.publish_site(claim("door-3", f"PCL-{n:04d}"))
        await until(lambda: door2.stats().site_received == total)
        stats = door2.stats()
        it = door2.site_messages()
        first = await _next(it)
    assert stats.site_dropped == {"queue_full": extra}
    assert first.data == json.loads(claim("door-3", f"PCL-{extra:04d}"))  # oldest went


async def test_without_a_site_nothing_is_subscribed_or_sent(
    mosquitto: Broker, tmp_path: Path
) -> None:
    sited = plain_config(mosquitto, site=SITE)
    assert plain_config(mosquitto).site is None
    async with (
        gateway(plain_config(mosquitto), DOOR_2, tmp_path) as door2,
        gateway(sited, DOOR_3, tmp_path) as door3,
        subscribe(mosquitto, f"{CLAIMS}/#") as watcher,
    ):
        await door2.wait_state(ConnectionState.CONNECTED)
        await door3.wait_state(ConnectionState.CONNECTED)
        door2.publish_site(claim("door-2", "PCL-0001"))
        assert [m async for m in door2.site_messages()] == []  # ends at once
        door3.publish_site(claim("door-3", "PCL-0002"))
        await watcher.wait_until(lambda m: len(m) >= 1)
        stats2 = door2.stats()
    # Door 3's claim went out; door 2 sent nothing (the watcher saw only door 3's) and had
    # no subscription to receive it on.
    assert [m.topic for m in watcher.messages] == [f"{CLAIMS}/{DOOR_3}"]
    assert stats2.site_not_sent == {"disabled": 1}
    assert (stats2.site_published, stats2.site_received, stats2.site_dropped) == (0, 0, {})


async def test_claims_are_not_sent_while_disconnected_and_the_iterator_ends_at_stop(
    tmp_path: Path,
) -> None:
    config = UplinkConfig(
        host="127.0.0.1", port=free_port(), transport="tcp", reconnect_min_s=0.05, site=SITE
    )
    async with gateway(config, DOOR_2, tmp_path) as door2:
        it = door2.site_messages()
        pending = asyncio.create_task(_next(it))
        door2.publish_site(claim("door-2", "PCL-0001"))
        assert door2.stats().site_not_sent == {"disconnected": 1}
        assert not pending.done()
    with pytest.raises(StopAsyncIteration):
        await pending


async def test_the_gateway_id_site_is_refused_when_a_site_is_configured(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        outbox = await stack.enter_async_context(open_outbox(tmp_path))
        with pytest.raises(ValueError, match="reserved"):
            Uplink(UplinkConfig(site=SITE), "site", outbox, SystemClock(), status=STATUS)
        Uplink(UplinkConfig(), "site", outbox, SystemClock(), status=STATUS)  # no site: fine


_TOPICS = st.one_of(
    st.just(f"{CLAIMS}/gw-door-4"),
    st.just(f"{CLAIMS}/{DOOR_2}"),
    st.builds(lambda s: f"{CLAIMS}/{s}", st.text(max_size=12)),
    st.text(max_size=40),
)
_PAYLOADS = st.one_of(
    st.binary(max_size=2048),
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(),
        lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
        max_leaves=20,
    ).map(lambda v: json.dumps(v).encode()),
)


def test_no_message_raises_into_the_uplink(tmp_path: Path) -> None:
    """Hypothesis: any topic, payload, retain flag and malformed mark; the handler (what
    paho calls from its reader) never raises and counts each message exactly once."""

    async def main() -> None:
        async with open_outbox(tmp_path) as outbox:
            check(outbox)

    def check(outbox: Outbox) -> None:
        config = UplinkConfig(site=SITE, site_max_bytes=1024)
        uplink = Uplink(config, DOOR_2, outbox, SystemClock(), status=STATUS)

        @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
        @given(topic=_TOPICS, payload=_PAYLOADS, retain=st.booleans(), bad=st.booleans())
        def one(topic: str, payload: bytes, retain: bool, bad: bool) -> None:
            before = _total(uplink)
            malformed = "ValueError: U+FEFF" if bad else None
            msg = InboundMessage(topic, payload, None, None, retain=retain, malformed=malformed)
            uplink._site.on_message(msg)  # the boundary paho calls
            assert _total(uplink) == before + 1

        one()

    asyncio.run(main())


def _total(uplink: Uplink) -> int:
    """Messages taken or refused: each counts once (a full queue's drop is counted on top,
    against the older message it pushed out)."""
    s = uplink.stats()
    return s.site_received + sum(n for r, n in s.site_dropped.items() if r != "queue_full")

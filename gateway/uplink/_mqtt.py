"""One MQTT connection to the broker, with paho-mqtt 2.x running on the asyncio loop.

This is the only module that imports paho. paho is driven through its socket callbacks
(``on_socket_open`` / ``on_socket_register_write`` ... with ``loop_read`` / ``loop_write`` /
``loop_misc``), the way aiomqtt does it, so everything runs on the event loop thread. We use
paho rather than aiomqtt because delivery needs the PUBACK reason code of every publish (paho's
v2 ``on_publish`` gives it; aiomqtt drops it) and a publish that is never "timed out" while
paho still holds it: see docs/mqtt.md.

One ``MqttSession`` is one connection: a new paho client per connect. The broker's session,
though, outlives it: the CONNECT asks to resume the session (MQTT 5: clean start off and a
session expiry interval; 3.1.1: clean session off), so commands published while the gateway
was offline are queued by the broker and delivered after reconnect. Our own publishes
unacknowledged when the connection drops are not resent by paho; the outbox leases them again
(the outbox is the retry queue, so there is exactly one). docs/mqtt.md, "Sessions".

Inbound (command) messages never cost the connection: the command subscription asks the broker
not to send retained messages (MQTT 5 retain handling 2), and a PUBLISH whose properties paho
refuses to read (it rejects U+FEFF, which MQTT allows) is acknowledged and handed on marked
malformed instead of ending the session as a protocol error.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import inspect
import logging
import socket
import ssl
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.exception import MalformedPacket, MQTTException
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from foundation.lifecycle import TaskOwner
from gateway.uplink.config import UplinkConfig
from gateway.uplink.errors import UplinkError, UplinkErrorReason

__all__ = ["SESSION_TAKEN_OVER", "InboundMessage", "MqttSession", "PubAck", "Will"]

_log = logging.getLogger(__name__)

#: paho's keepalive / retry housekeeping wants a call about once a second.
MISC_INTERVAL_S: Final = 1.0
#: paho's own in-flight cap; the publisher's window is the real limit, so keep paho's out of
#: the way (alarms, birth and command responses may go beyond the telemetry window).
PAHO_MAX_IN_FLIGHT: Final = 65_535
#: Incoming (command) messages buffered between paho and the command loop; beyond this a
#: command is dropped and counted (the platform retries; commands are idempotent).
INBOUND_QUEUE_MESSAGES: Final = 256


#: MQTT 5 DISCONNECT reason code: another client connected with our client id.
SESSION_TAKEN_OVER: Final = 0x8E

#: Linux only; elsewhere PUBACK pacing is left to the kernel's defaults.
_QUICKACK: Final[int | None] = getattr(socket, "TCP_QUICKACK", None)


@dataclass(frozen=True, slots=True)
class PubAck:
    """The broker's answer to one QoS 1 publish."""

    reason_code: int  # 0 = success; >= 0x80 = refused (MQTT 5); always 0 under 3.1.1
    reason: str

    @property
    def ok(self) -> bool:
        return self.reason_code < 0x80


@dataclass(frozen=True, slots=True)
class InboundMessage:
    topic: str
    payload: bytes
    response_topic: str | None
    correlation_data: bytes | None
    #: Set on a retained message the broker sent because we subscribed (MQTT 3.1.1, or a
    #: broker that ignores retain handling): not a command anyone is waiting for.
    retain: bool = False
    #: Why paho could not read the packet's properties (then the two above are None).
    malformed: str | None = None


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    retain: bool = True


AckCallback = Callable[[PubAck], None]


class _PropertiesPackedOnce(Properties):
    """Properties that serialise once: a backlog's publishes share one object (see
    ``MqttSession.publish``) and paho would otherwise re-encode it for every message.
    Only for objects that are not modified after their first publish."""

    def pack(self) -> bytes:
        packed: bytes | None = self.__dict__.get("_packed")
        if packed is None:
            packed = super().pack()  # type: ignore[no-untyped-call]
            object.__setattr__(self, "_packed", packed)  # paho's __setattr__ checks names
        return packed


def _properties(packet_type: int) -> Properties:
    return _PropertiesPackedOnce(packet_type)  # type: ignore[no-untyped-call]  # paho leaves it untyped


class _TlsHandshakeFailed(OSError):
    """The TCP connection stood, the TLS handshake on it failed (``__cause__`` says how)."""


class _ClosingSSLSocket(ssl.SSLSocket):
    """An SSL socket that closes itself when its handshake fails (paho would leak it) and
    marks the failure as the handshake's, so that it can be explained (a plain broker?)."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except OSError as exc:  # ssl.SSLError is an OSError
            self.close()
            raise _TlsHandshakeFailed(str(exc)) from exc
        except BaseException:
            self.close()
            raise


def _tls_context(config: UplinkConfig) -> ssl.SSLContext:
    """TLS 1.2+ with certificate and host name checks; raises TLS_CONFIG if files are bad.

    paho wraps the socket with this context and sets its host name; our context checks the
    host name itself (check_hostname), and its ``sslsocket_class`` (public ssl API) closes a
    socket whose handshake failed."""
    tls = config.tls
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname + CERT_REQUIRED by default
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.sslsocket_class = _ClosingSSLSocket
    try:
        if tls.ca_file is not None:
            ctx.load_verify_locations(cafile=str(tls.ca_file))
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
        if tls.cert_file is not None and tls.key_file is not None:
            ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    except (OSError, ssl.SSLError) as exc:
        raise UplinkError(UplinkErrorReason.TLS_CONFIG, f"cannot load TLS files: {exc}") from exc
    return ctx


#: What a TLS client sees when the listener speaks plain MQTT: the broker hangs up on the
#: ClientHello (reset, EOF) or answers with bytes that are not a TLS record.
_PLAIN_LISTENER_SIGNS: Final = ("WRONG_VERSION_NUMBER", "record layer failure", "UNEXPECTED_EOF")


def _translate_connect_error(exc: BaseException, where: str) -> UplinkError:
    """Say what failed, and what it likely means, in the operator's terms."""
    if isinstance(exc, _TlsHandshakeFailed):
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        if isinstance(cause, ssl.SSLCertVerificationError):
            return UplinkError(
                UplinkErrorReason.TLS_VERIFY,
                f"server certificate of {where}: {cause.verify_message}",
            )
        plain = isinstance(cause, ConnectionResetError | BrokenPipeError | ssl.SSLEOFError) or any(
            sign in str(cause) for sign in _PLAIN_LISTENER_SIGNS
        )
        hint = (
            ': is the broker plain MQTT? set transport = "tcp" (or use its TLS port)'
            if plain
            else ""
        )
        return UplinkError(
            UplinkErrorReason.TLS_HANDSHAKE, f"TLS handshake with {where} failed ({cause}){hint}"
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return UplinkError(
            UplinkErrorReason.TLS_VERIFY, f"server certificate of {where}: {exc.verify_message}"
        )
    if isinstance(exc, ssl.SSLError):
        return UplinkError(UplinkErrorReason.TLS_HANDSHAKE, f"TLS handshake with {where}: {exc}")
    if isinstance(exc, TimeoutError | socket.timeout):
        return UplinkError(UplinkErrorReason.CONNECT_TIMEOUT, f"{where}: {exc}")
    if isinstance(exc, ConnectionRefusedError):
        return UplinkError(
            UplinkErrorReason.CONNECT_FAILED,
            f"connection refused by {where}: is the broker running and listening there? ({exc})",
        )
    if isinstance(exc, socket.gaierror):
        return UplinkError(UplinkErrorReason.CONNECT_FAILED, f"cannot resolve {where}: {exc}")
    if isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return UplinkError(UplinkErrorReason.CONNECT_FAILED, f"{where} is unreachable: {exc}")
    return UplinkError(UplinkErrorReason.CONNECT_FAILED, f"{where}: {exc}")


@dataclass(frozen=True, slots=True)
class _RawPublish:
    qos: int
    mid: int
    retain: bool
    topic: bytes
    payload: bytes


def _read_publish_skipping_properties(command: int, packet: bytes | bytearray) -> _RawPublish:
    """An MQTT 5 PUBLISH read without decoding its properties (only their length is read);
    raises ValueError if even that much is not there."""
    qos = (command & 0x06) >> 1
    topic_len = int.from_bytes(packet[0:2], "big")
    pos = 2 + topic_len
    mid = 0
    if qos:
        mid = int.from_bytes(packet[pos : pos + 2], "big")
        pos += 2
    props_len, shift = 0, 0
    for _ in range(4):  # a variable byte integer: at most four bytes
        if pos >= len(packet):
            break
        byte = packet[pos]
        pos += 1
        props_len |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    else:
        raise ValueError("property length longer than four bytes")
    if pos + props_len > len(packet) or shift == 0:
        raise ValueError("PUBLISH shorter than its header")
    return _RawPublish(
        qos,
        mid,
        bool(command & 0x01),
        bytes(packet[2 : 2 + topic_len]),
        bytes(packet[pos + props_len :]),
    )


@functools.cache
def paho_internals_problem() -> str | None:
    """None if paho still has the private names :class:`_Client` relies on, else what moved.

    paho has no public hook for a PUBLISH it cannot parse, so the fix below overrides a
    private method and reads private state. Checked once per process; when something moved,
    the fix is off (paho's own behaviour: such a message ends the connection) and this is
    logged as an error; tests/gateway/uplink/test_paho_internals.py fails on it."""
    problems: list[str] = []
    for name, params in (("_handle_publish", []), ("_send_puback", ["mid"])):
        method = getattr(paho.Client, name, None)
        if not callable(method):
            problems.append(f"paho.Client.{name} is gone")
            continue
        found = [p for p in inspect.signature(method).parameters if p != "self"]
        if found != params:
            problems.append(f"paho.Client.{name} takes {found}, expected {params}")
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    packet = getattr(client, "_in_packet", None)
    if not isinstance(packet, dict) or not {"command", "packet"} <= packet.keys():
        problems.append("paho.Client._in_packet is not a dict with 'command' and 'packet'")
    if getattr(client, "_protocol", None) != paho.MQTTv5:
        problems.append("paho.Client._protocol does not hold the protocol version")
    return "; ".join(problems) or None


class _Client(paho.Client):
    """paho's client with one fix: an inbound PUBLISH whose properties paho refuses does not
    end the connection. This is the one place that relies on paho's private names
    (``_handle_publish``, ``_in_packet``, ``_protocol``, ``_send_puback``); each is checked by
    :func:`paho_internals_problem` when a session is made, and by a test, so a paho release
    that renames one fails loudly instead of silently losing the fix."""

    #: Called with (topic, payload, retain, reason) for such a PUBLISH.
    on_malformed_publish: Callable[[str, bytes, bool, str], None] | None = None

    def _handle_publish(self) -> MQTTErrorCode:
        if paho_internals_problem() is not None:
            return super()._handle_publish()
        try:
            return super()._handle_publish()
        except (MQTTException, ValueError, KeyError, IndexError, struct.error) as exc:
            # paho's property reader refuses strings MQTT 5 allows (U+FEFF), and raises on
            # what a less careful broker may pass on (invalid UTF-8, an unknown or repeated
            # property): one such command from anyone allowed to publish on the command topic
            # would drop the connection (and, retained, every reconnect). Our own callbacks
            # raise none of these (see _on_message).
            packet = self._in_packet
            try:
                if self._protocol != paho.MQTTv5:
                    raise ValueError("only MQTT 5 properties are skipped")
                raw = _read_publish_skipping_properties(packet["command"], packet["packet"])
                if raw.qos > 1:
                    raise ValueError("QoS 2: we subscribe at QoS 1")
            except (ValueError, IndexError):
                # Not even a header: a protocol error, which paho ends the connection for.
                raise MalformedPacket(f"{type(exc).__name__}: {exc}") from exc
            handler = self.on_malformed_publish
            if handler is not None:
                reason = f"{type(exc).__name__}: {exc}"
                handler(raw.topic.decode("utf-8", "replace"), raw.payload, raw.retain, reason)
            if raw.qos == 1:
                return self._send_puback(raw.mid)
            return MQTTErrorCode.MQTT_ERR_SUCCESS


@functools.cache
def _warn_if_paho_moved() -> None:
    """Once per process."""
    problem = paho_internals_problem()
    if problem is not None:
        _log.error(
            "paho-mqtt changed (%s): a command with properties paho cannot read will drop "
            "the connection; pin paho-mqtt to a tested version",
            problem,
        )


class MqttSession:
    """One connection. ``connect()``, then publish / subscribe / read ``inbound`` until
    ``closed`` resolves (connection lost) or ``disconnect()`` ends it cleanly."""

    def __init__(
        self,
        config: UplinkConfig,
        client_id: str,
        will: Will,
        password: str | None,
        *,
        side_topic_prefix: str | None = None,
        on_side_message: Callable[[InboundMessage], None] | None = None,
    ) -> None:
        """Messages on topics starting with ``side_topic_prefix`` (the site's claims) go to
        ``on_side_message`` instead of ``inbound``, so they never crowd out commands."""
        self._config = config
        self._side_prefix = side_topic_prefix
        self._on_side = on_side_message
        #: The broker still held our session (MQTT 5 / 3.1.1 CONNACK "session present").
        self.session_present = False
        #: The reason code the connection ended with (MQTT 5 DISCONNECT from the broker, or
        #: paho's own for a lost socket); None while it stands.
        self.disconnect_code: int | None = None
        self._loop = asyncio.get_running_loop()
        self._v5 = config.protocol == "5"
        _warn_if_paho_moved()
        self._client = _Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if self._v5 else MQTTProtocolVersion.MQTTv311,
            # 3.1.1 has no expiry: the broker keeps a non-clean session as long as it likes.
            clean_session=None if self._v5 else config.session_expiry_s == 0,
        )
        c = self._client
        c.connect_timeout = config.connect_timeout_s
        c.max_inflight_messages_set(PAHO_MAX_IN_FLIGHT)
        c.max_queued_messages_set(0)
        c.suppress_exceptions = False
        if config.transport == "tls":
            c.tls_set_context(_tls_context(config))
        if config.username is not None:
            c.username_pw_set(config.username, password)
        c.will_set(will.topic, will.payload, qos=1, retain=will.retain)
        c.on_socket_open = self._on_socket_open
        c.on_socket_close = self._on_socket_close
        c.on_socket_register_write = self._on_socket_register_write
        c.on_socket_unregister_write = self._on_socket_unregister_write
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        c.on_malformed_publish = self._on_malformed_publish
        self._connack: asyncio.Future[ReasonCode] = self._loop.create_future()
        self._closed: asyncio.Future[str] = self._loop.create_future()
        self._acks: dict[int, AckCallback] = {}
        self._subacks: dict[int, asyncio.Future[list[ReasonCode]]] = {}
        self._sock: socket.socket | None = None
        self._writing = False  # our writer callback is registered with the loop
        self._owner = TaskOwner("mqtt")
        self.inbound: asyncio.Queue[InboundMessage] = asyncio.Queue(INBOUND_QUEUE_MESSAGES)
        self.inbound_dropped = 0
        self._last_props_key: tuple[object, ...] | None = None
        self._last_props: Properties | None = None

    # -- paho socket callbacks (may run on the executor thread during connect) ------------

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        def register() -> None:
            self._sock = sock
            # paho writes each packet with its own send(): without TCP_NODELAY, Nagle holds
            # the next small PUBLISH until the previous one is ACKed (tens of ms per round).
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._loop.add_reader(sock, self._read)

        self._call_on_loop(register)

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        def unregister() -> None:
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)
            self._writing = False
            self._sock = None

        self._call_on_loop(unregister)

    def _on_socket_register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        # paho asks for every queued packet; re-registering costs an epoll_ctl each time.
        def register() -> None:
            if not self._writing:
                self._writing = True
                self._loop.add_writer(sock, self._write)

        self._call_on_loop(register)

    def _on_socket_unregister_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        def unregister() -> None:
            if self._writing:
                self._writing = False
                self._loop.remove_writer(sock)

        self._call_on_loop(unregister)

    def _call_on_loop(self, func: Callable[[], None]) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            func()
        else:
            self._loop.call_soon_threadsafe(func)

    def _read(self) -> None:
        self._client.loop_read()
        sock = self._sock
        if _QUICKACK is not None and sock is not None:
            # Brokers usually leave Nagle on: each small PUBACK waits for our ACK of the
            # previous one, and delayed ACKs make that 10 to 40 ms. Quick ACKs (reset by the
            # kernel after a while, hence after every read) keep PUBACKs flowing.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)

    def _write(self) -> None:
        self._client.loop_write()

    # -- paho protocol callbacks (on the loop thread once connected) ---------------------

    def _on_connect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        present = bool(flags.session_present)

        def resolve() -> None:
            self.session_present = present
            if not self._connack.done():
                self._connack.set_result(reason_code)

        self._call_on_loop(resolve)

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: Any,
        flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        code = reason_code.value

        def resolve() -> None:
            if not self._closed.done():
                self.disconnect_code = code
                self._closed.set_result(str(reason_code))
            if not self._connack.done():
                self._connack.set_exception(
                    UplinkError(
                        UplinkErrorReason.CONNECTION_LOST,
                        f"connection closed before CONNACK: {reason_code}",
                    )
                )
            # Callbacks of unacknowledged publishes are dropped: the outbox leases those
            # rows again after reconnect.
            self._acks.clear()
            for fut in self._subacks.values():
                fut.cancel()
            self._subacks.clear()

        self._call_on_loop(resolve)

    def _on_publish(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        callback = self._acks.pop(mid, None)
        if callback is not None:
            callback(PubAck(reason_code.value, str(reason_code)))

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        fut = self._subacks.pop(mid, None)
        if fut is not None and not fut.done():
            fut.set_result(reason_codes)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        # Runs inside paho's packet reader: an exception here would leave paho's input state
        # half reset, so nothing may escape (everything used is plain attribute access).
        props = message.properties
        response_topic = getattr(props, "ResponseTopic", None) if props is not None else None
        correlation = getattr(props, "CorrelationData", None) if props is not None else None
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = ""
        self._enqueue(
            InboundMessage(
                topic,
                bytes(message.payload),
                response_topic if isinstance(response_topic, str) else None,
                bytes(correlation) if isinstance(correlation, bytes | bytearray) else None,
                retain=bool(message.retain),
            )
        )

    def _on_malformed_publish(self, topic: str, payload: bytes, retain: bool, reason: str) -> None:
        self._enqueue(InboundMessage(topic, payload, None, None, retain=retain, malformed=reason))

    def _enqueue(self, msg: InboundMessage) -> None:
        side = self._on_side
        if side is not None and self._side_prefix and msg.topic.startswith(self._side_prefix):
            try:
                side(msg)
            except Exception:  # runs inside paho's reader: nothing may escape
                _log.exception("side message handler failed")
            return
        try:
            self.inbound.put_nowait(msg)
        except asyncio.QueueFull:
            self.inbound_dropped += 1

    # -- the session API ----------------------------------------------------------------

    @property
    def v5(self) -> bool:
        return self._v5

    @property
    def closed(self) -> asyncio.Future[str]:
        """Resolves with the disconnect reason when the connection ends."""
        return self._closed

    async def connect(self) -> None:
        """TCP + TLS + CONNECT, then wait for a successful CONNACK; raise UplinkError."""
        cfg = self._config
        where = f"{cfg.host}:{cfg.port}"
        props: Properties | None = None
        if self._v5:
            props = _properties(PacketTypes.CONNECT)
            # Sent on every CONNECT, so a changed setting applies to the resumed session.
            props.SessionExpiryInterval = cfg.session_expiry_s
        if not self._owner.running:
            await self._owner.start()
            self._owner.spawn(self._misc_loop(), name="misc")
        try:
            # connect() blocks on DNS, TCP and the TLS handshake: keep it off the loop.
            rc = await self._loop.run_in_executor(
                None,
                lambda: self._client.connect(
                    cfg.host,
                    cfg.port,
                    keepalive=cfg.keepalive_s,
                    # Resume the broker's session (and the commands it queued for us). With
                    # expiry 0 a session left from an earlier setting is still resumed once,
                    # and ends with this connection. 3.1.1: clean_session was set on the
                    # client; clean_start is v5 only.
                    clean_start=False if self._v5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
                    properties=props,
                ),
            )
        except (OSError, ValueError) as exc:
            raise _translate_connect_error(exc, where) from exc
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise UplinkError(UplinkErrorReason.CONNECT_FAILED, f"{where}: {paho.error_string(rc)}")
        try:
            async with asyncio.timeout(cfg.connect_timeout_s):
                code = await self._connack
        except TimeoutError as exc:
            raise UplinkError(
                UplinkErrorReason.CONNECT_TIMEOUT, f"{where}: no CONNACK in time"
            ) from exc
        if code.is_failure:
            raise UplinkError(UplinkErrorReason.CONNECT_REFUSED, f"{where}: {code}")

    async def _misc_loop(self) -> None:
        while not self._closed.done():
            await asyncio.sleep(MISC_INTERVAL_S)
            self._client.loop_misc()

    def publish(
        self,
        topic: str,
        payload: bytes,
        on_ack: AckCallback,
        *,
        retain: bool = False,
        expiry_s: int | None = None,
        content_type: str | None = None,
        user_properties: Sequence[tuple[str, str]] = (),
        correlation_data: bytes | None = None,
    ) -> None:
        """Send at QoS 1; ``on_ack`` runs with the PUBACK, or never if the connection drops."""
        props: Properties | None = None
        if self._v5:
            key = (expiry_s, content_type, tuple(user_properties), correlation_data)
            if key == self._last_props_key:
                # A backlog's messages mostly share their properties: building paho's
                # Properties costs about as much as the rest of a publish.
                props = self._last_props
            else:
                props = _properties(PacketTypes.PUBLISH)
                if expiry_s is not None:
                    props.MessageExpiryInterval = max(1, expiry_s)
                if content_type is not None:
                    props.ContentType = content_type
                if user_properties:
                    props.UserProperty = list(user_properties)
                if correlation_data is not None:
                    props.CorrelationData = correlation_data
                self._last_props_key, self._last_props = key, props
        info = self._client.publish(topic, payload, qos=1, retain=retain, properties=props)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise UplinkError(
                UplinkErrorReason.CONNECTION_LOST, f"publish: {paho.error_string(info.rc)}"
            )
        self._acks[info.mid] = on_ack

    def publish_qos0(
        self,
        topic: str,
        payload: bytes,
        *,
        expiry_s: int | None = None,
        content_type: str | None = None,
    ) -> bool:
        """Send at QoS 0, not retained: fire and forget. False if the connection is gone."""
        props: Properties | None = None
        if self._v5:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            if expiry_s is not None:
                props.MessageExpiryInterval = max(1, expiry_s)
            if content_type is not None:
                props.ContentType = content_type
        if self._closed.done():
            return False
        info = self._client.publish(topic, payload, qos=0, retain=False, properties=props)
        return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    async def publish_and_wait(
        self, topic: str, payload: bytes, *, retain: bool = False, **kwargs: Any
    ) -> PubAck:
        """Publish one message and wait for its PUBACK (birth, death, command responses)."""
        fut: asyncio.Future[PubAck] = self._loop.create_future()

        def done(ack: PubAck) -> None:
            if not fut.done():
                fut.set_result(ack)

        self.publish(topic, payload, done, retain=retain, **kwargs)
        waiters: list[asyncio.Future[Any]] = [fut, self._closed]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if not fut.done():
            fut.cancel()
            raise UplinkError(UplinkErrorReason.CONNECTION_LOST, f"no PUBACK for {topic}")
        return fut.result()

    async def subscribe(self, topic: str, *, qos: int = 1, no_local: bool = False) -> None:
        """Subscribe (QoS 1 by default); under MQTT 5 without retained messages (retain
        handling 2): a retained command is someone's old message, not a request to run now.
        ``no_local`` (MQTT 5 only): the broker does not send us our own publishes.

        Subscribing again to a filter the resumed session already holds replaces it with
        the same options: no message is lost or sent twice by doing so."""
        if self._v5:
            options = SubscribeOptions(
                qos=qos, noLocal=no_local, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND
            )
            rc, mid = self._client.subscribe(topic, options=options)
        else:
            rc, mid = self._client.subscribe(topic, qos=qos)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise UplinkError(UplinkErrorReason.CONNECTION_LOST, f"subscribe {topic}: rc {rc}")
        fut: asyncio.Future[list[ReasonCode]] = self._loop.create_future()
        self._subacks[mid] = fut
        try:
            codes = await fut
        except asyncio.CancelledError:
            # The lost connection cancels the SUBACK future; a cancel of our caller wins.
            task = asyncio.current_task()
            if self._closed.done() and (task is None or task.cancelling() == 0):
                raise UplinkError(UplinkErrorReason.CONNECTION_LOST, f"subscribe {topic}") from None
            raise
        bad = [c for c in codes if c.is_failure]
        if bad:
            raise UplinkError(UplinkErrorReason.SUBSCRIBE_REFUSED, f"{topic}: {bad[0]}")

    async def disconnect(self, timeout_s: float) -> None:
        """Clean DISCONNECT: the broker discards the will."""
        if self._closed.done():
            return
        self._client.disconnect()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(self._closed)

    async def aclose(self) -> None:
        """Drop the socket (if still open) and stop housekeeping; idempotent. The socket is
        dropped also when the caller is cancelled meanwhile (the cancel then propagates)."""
        try:
            await self._owner.stop()
        finally:
            self._drop_socket()

    def _drop_socket(self) -> None:
        sock = self._sock
        if sock is not None and sock.fileno() >= 0:
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)
        if not self._closed.done():
            # Closes paho's socket and fires on_disconnect, which resolves `closed`.
            self._client.disconnect()
            self._client.loop_write()
        paho_sock = self._client.socket()
        if paho_sock is not None:
            paho_sock.close()
        if not self._closed.done():
            self._closed.set_result("closed")
        self._acks.clear()

"""The exec's WebSocket client (cluster._ExecStream) against a peer that writes raw bytes: the
upgrade's checks, how a refused upgrade's body is read, and the frames a server may send that
the test API server (aiohttp) never does: fragments, pings between them, masked or oversized
frames, a close."""
import base64
import hashlib
import os
import socket
import threading

import pytest

from kubectl_virtio.cluster import (EXEC_V4, EXEC_V5, HANDSHAKE_CAP, _ExecStream, _Refused, _TooLarge,
                                    _dechunk)

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PROTOCOLS = (EXEC_V5, EXEC_V4)


def frame(opcode, payload, fin=True, mask=None, rsv=0):
    """A server frame as RFC 6455 section 5.2 lays it out."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([mbit | 127]) + n.to_bytes(8, "big")
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


class Peer:
    """The server end of a socket pair: reads the upgrade request, answers what the test says."""

    def __init__(self):
        self.client, self.server = socket.socketpair()
        self.client.settimeout(5)
        self.server.settimeout(5)
        self.request = b""

    def read_request(self):
        while b"\r\n\r\n" not in self.request:
            self.request += self.server.recv(4096)
        lines = self.request.split(b"\r\n\r\n")[0].decode().split("\r\n")
        return lines[0], {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}

    def accept_key(self, headers):
        return base64.b64encode(hashlib.sha1(headers["sec-websocket-key"].encode() + GUID).digest()).decode()

    def answer(self, text, extra=b""):
        self.server.sendall(text.replace("\n", "\r\n").encode() + extra)

    def upgrade(self, answer, after=b""):
        """Run the client's upgrade while this thread answers with answer(headers)."""
        box = {}

        def serve():
            _, headers = self.read_request()
            self.answer(answer(headers), after)

        t = threading.Thread(target=serve)
        t.start()
        try:
            box["stream"] = _ExecStream.upgrade(self.client, "/api/v1/namespaces/ns/pods/p/exec?command=virsh",
                                                "127.0.0.1:6443", "Bearer abc", PROTOCOLS)
        finally:
            t.join()
        return box["stream"]

    def switching(self, protocol=EXEC_V5, accept=None):
        return lambda h: ("HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\nConnection: Upgrade\n"
                          "Sec-WebSocket-Accept: %s\nSec-WebSocket-Protocol: %s\n\n"
                          % (accept or self.accept_key(h), protocol))

    def close(self):
        self.client.close()
        self.server.close()


@pytest.fixture
def peer():
    p = Peer()
    yield p
    p.close()


def test_the_upgrade_request_offers_v5_and_v4_with_the_token(peer):
    stream = peer.upgrade(peer.switching(EXEC_V4))
    line, headers = peer.read_request()
    assert line == "GET /api/v1/namespaces/ns/pods/p/exec?command=virsh HTTP/1.1"
    assert headers["sec-websocket-protocol"] == "v5.channel.k8s.io,v4.channel.k8s.io"
    assert headers["authorization"] == "Bearer abc"
    assert headers["upgrade"] == "websocket" and headers["sec-websocket-version"] == "13"
    assert len(base64.b64decode(headers["sec-websocket-key"])) == 16
    assert headers["host"] == "127.0.0.1:6443"
    assert stream.subprotocol == EXEC_V4


def test_frames_that_came_with_the_upgrade_answer_are_kept(peer):
    stream = peer.upgrade(peer.switching(), after=frame(2, b"\x01<domain/>"))
    assert stream.message(1 << 20) == (2, b"\x01<domain/>")


def test_a_wrong_accept_key_is_not_a_websocket(peer):
    with pytest.raises(ValueError, match="not a WebSocket handshake"):
        peer.upgrade(peer.switching(accept=base64.b64encode(os.urandom(20)).decode()))


def test_a_protocol_that_was_not_offered_is_refused(peer):
    with pytest.raises(ValueError, match="channel.k8s.io"):
        peer.upgrade(peer.switching(protocol="channel.k8s.io"))


def test_an_answer_that_is_not_http_is_refused(peer):
    with pytest.raises(ValueError, match="not HTTP"):
        peer.upgrade(lambda h: "SSH-2.0-OpenSSH_9.2\n\n")


def test_endless_headers_stop_at_the_cap(peer):
    def serve():
        peer.read_request()
        try:
            peer.server.sendall(b"HTTP/1.1 101 Switching Protocols\r\n" + b"X-Pad: " + b"a" * (HANDSHAKE_CAP + 20000))
        except OSError:
            pass

    t = threading.Thread(target=serve)
    t.start()
    with pytest.raises(ValueError, match="KiB of headers"):
        _ExecStream.upgrade(peer.client, "/x", "h", None, PROTOCOLS)
    t.join()


STATUS = '{"kind":"Status","status":"Failure","reason":"Forbidden","code":403}'


@pytest.mark.parametrize("how", ["length", "chunked", "close"])
def test_a_refused_upgrade_carries_its_status_body(peer, how):
    body = STATUS.encode()
    if how == "length":
        head = "HTTP/1.1 403 Forbidden\nContent-Type: application/json\nContent-Length: %d\n\n" % len(body)
    elif how == "chunked":
        head = "HTTP/1.1 403 Forbidden\nTransfer-Encoding: chunked\n\n"
        body = b"%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (10, body[:10], len(body) - 10, body[10:])
    else:
        head = "HTTP/1.1 403 Forbidden\nConnection: close\n\n"

    def serve():
        peer.read_request()
        peer.answer(head, body)
        if how == "close":
            peer.server.shutdown(socket.SHUT_WR)

    t = threading.Thread(target=serve)
    t.start()
    with pytest.raises(_Refused) as e:
        _ExecStream.upgrade(peer.client, "/x", "h", None, PROTOCOLS)
    t.join()
    assert e.value.status == 403 and e.value.body == STATUS


def test_a_refusal_without_a_length_is_not_waited_for(peer):
    """Neither Content-Length nor chunked nor close: no body (RFC 9112 section 6.3); the client
    must not sit until its deadline waiting for one."""
    peer.client.settimeout(30)

    def serve():
        peer.read_request()
        peer.answer("HTTP/1.1 500 Internal Server Error\n\n")

    t = threading.Thread(target=serve)
    t.start()
    with pytest.raises(_Refused) as e:
        _ExecStream.upgrade(peer.client, "/x", "h", None, PROTOCOLS)
    t.join()
    assert e.value.status == 500 and e.value.body == ""


def test_dechunk_keeps_whole_chunks_only():
    assert _dechunk(b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n") == b"abcde"
    assert _dechunk(b"zz\r\nabc") == b""


def stream_with(peer, data):
    peer.server.sendall(data)
    return _ExecStream(peer.client, EXEC_V5, b"")


def test_fragments_are_joined_and_a_ping_between_them_is_answered(peer):
    data = (frame(2, b"\x01<dom", fin=False) + frame(9, b"hi") + frame(0, b"ain", fin=False)
            + frame(0, b"/>") + frame(2, b"\x03{}"))
    s = stream_with(peer, data)
    assert s.message(1 << 20) == (2, b"\x01<domain/>")
    assert s.message(1 << 20) == (2, b"\x03{}")
    pong = peer.server.recv(100)
    assert pong[0] == 0x80 | 10 and pong[1] == 0x80 | 2  # FIN + pong, masked, 2 bytes
    mask = pong[2:6]
    assert bytes(b ^ mask[i % 4] for i, b in enumerate(pong[6:8])) == b"hi"


def test_lengths_of_16_and_64_bits(peer):
    mid, big = b"\x01" + b"a" * 300, b"\x01" + b"b" * 70000
    s = stream_with(peer, frame(2, mid) + frame(2, big))
    assert s.message(1 << 20) == (2, mid)
    assert s.message(1 << 20) == (2, big)


def test_a_frame_over_the_limit_is_refused_before_it_is_read(peer):
    # 2^40 bytes announced: reading it would never end; the limit is checked on the header
    s = stream_with(peer, b"\x82\x7f" + (1 << 40).to_bytes(8, "big"))
    with pytest.raises(_TooLarge):
        s.message(8 * 1024 * 1024)


def test_fragments_over_the_limit_together_are_refused(peer):
    s = stream_with(peer, frame(2, b"x" * 600, fin=False) + frame(0, b"y" * 600))
    with pytest.raises(_TooLarge):
        s.message(1000)


@pytest.mark.parametrize("data, what", [
    (frame(2, b"\x01abc", mask=b"\x01\x02\x03\x04"), "mask"),
    (frame(2, b"\x01abc", rsv=0x40), "reserved"),
    (frame(0, b"abc"), "continuation"),
    (frame(2, b"\x01a", fin=False) + frame(2, b"\x01b"), "inside a fragmented"),
    (frame(9, b"p" * 126), "control"),
])
def test_protocol_violations_end_the_stream(peer, data, what):
    s = stream_with(peer, data)
    with pytest.raises(ValueError, match=what):
        s.message(1 << 20)


def test_a_close_frame_is_returned_and_a_closed_connection_is_eof(peer):
    s = stream_with(peer, frame(8, b"\x03\xe8"))
    assert s.message(1 << 20) == (8, b"\x03\xe8")
    peer.server.shutdown(socket.SHUT_WR)
    with pytest.raises(EOFError):
        s.message(1 << 20)


def test_close_sends_a_masked_normal_close(peer):
    s = _ExecStream(peer.client, EXEC_V5, b"")
    s.close()
    data = peer.server.recv(100)
    assert data[0] == 0x88 and data[1] == 0x82
    mask = data[2:6]
    assert bytes(b ^ mask[i % 4] for i, b in enumerate(data[6:8])) == b"\x03\xe8"
    assert peer.server.recv(100) == b""  # and the connection is closed

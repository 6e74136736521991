"""The front <-> agent binary frames: round trips, damage, limits and other versions."""

from __future__ import annotations

import socket

import pytest

from cni_bridge_py.agent.protocol import (
    MAX_FRAME,
    VERSION,
    AgentRequest,
    OtherVersion,
    Oversized,
    ProtocolError,
    decode_reply,
    decode_request,
    encode_answer,
    encode_refusal,
    encode_request,
    read_frame,
)

ENV = {
    b"CNI_COMMAND": b"ADD",
    b"CNI_ARGS": b"IgnoreUnknown=1;K=a=b",  # "=" inside a value
    b"ODD": b"\xff\xfe not UTF-8",
    b"EMPTY": b"",
    b"=STARTS": b"with an equals sign",  # like the C library, the name ends at the next "="
}
STDIN = b'\x00{"name": "net1"}\xff\n'


def pair() -> tuple[socket.socket, socket.socket]:
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


def through_a_socket(frame: bytes) -> bytes:
    """The body of `frame` as the other end reads it."""
    a, b = pair()
    with a, b:
        a.sendall(frame)
        return read_frame(b)


def test_a_request_round_trips_byte_for_byte() -> None:
    netns = (2**64 - 1, 4026531840)
    body = through_a_socket(encode_request(ENV, STDIN, netns))
    assert decode_request(body) == AgentRequest(ENV, STDIN, netns)


def test_an_empty_environment_and_stdin_round_trip() -> None:
    body = through_a_socket(encode_request({}, b"", (1, 2)))
    assert decode_request(body) == AgentRequest({}, b"", (1, 2))


def test_the_agent_sees_the_environment_as_os_environ_would() -> None:
    request = AgentRequest({b"A": b"caf\xc3\xa9", b"B": b"\xff"}, b"", (1, 2))
    assert request.text_env() == {"A": "café", "B": "\udcff"}


def test_an_answer_and_a_refusal_round_trip() -> None:
    answer = through_a_socket(encode_answer(1, b'{"code": 6}\n', b"diagnostics\xff"))
    assert decode_reply(answer) == (1, b'{"code": 6}\n', b"diagnostics\xff")
    assert decode_reply(through_a_socket(encode_answer(0, b"", b""))) == (0, b"", b"")
    assert decode_reply(through_a_socket(encode_refusal("another namespace"))) is None


def test_frames_are_small_and_binary() -> None:
    """No JSON or base64: the request is its parts plus a 25-byte header."""
    frame = encode_request({b"K": b"V"}, b"xyz", (1, 2))
    assert len(frame) == 4 + 1 + 8 + 8 + 4 + len(b"K=V") + 3
    assert frame[4] == VERSION and frame.endswith(b"K=Vxyz")


def test_a_truncated_frame_is_a_protocol_error() -> None:
    frame = encode_request(ENV, STDIN, (1, 2))
    for cut in (2, 4, len(frame) - 1):
        a, b = pair()
        with b:
            a.sendall(frame[:cut])
            a.close()
            with pytest.raises(ProtocolError, match="closed"):
                read_frame(b)


def test_an_oversized_frame_is_refused_before_its_body_is_read() -> None:
    a, b = pair()
    with a, b:
        a.sendall((MAX_FRAME + 1).to_bytes(4, "big"))  # no body follows: none is waited for
        with pytest.raises(Oversized, match="limit"):
            read_frame(b)
    assert issubclass(Oversized, ProtocolError)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        bytes([VERSION]) + b"\x00" * 10,  # shorter than the header
        bytes([VERSION]) + b"\x00" * 16 + (100).to_bytes(4, "big") + b"A=1",  # env past the end
        bytes([VERSION]) + b"\x00" * 16 + (5).to_bytes(4, "big") + b"NOEQ\x00",  # no "="
    ],
    ids=["empty", "short-header", "env-past-end", "entry-without-equals"],
)
def test_malformed_requests_are_protocol_errors(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_request(body)


def test_a_request_of_another_version_is_told_apart() -> None:
    body = bytearray(encode_request(ENV, STDIN, (1, 2))[4:])
    body[0] = VERSION + 1
    with pytest.raises(OtherVersion):
        decode_request(bytes(body))
    # A front of protocol 1 sent length-prefixed JSON: its first byte is "{".
    with pytest.raises(OtherVersion):
        decode_request(b'{"version": 1, "env": {}}')


def test_a_reply_of_another_version_means_nothing_was_done() -> None:
    """An agent acts only on requests of its own version, so any reply in another version
    (protocol 1's JSON included) tells the front to run the request itself."""
    answer = bytearray(encode_answer(0, b"result", b"")[4:])
    answer[0] = VERSION + 1
    assert decode_reply(bytes(answer)) is None
    assert decode_reply(b'{"stdout": "", "stderr": "", "exit_code": 0}') is None


@pytest.mark.parametrize(
    "body",
    [
        bytes([VERSION]),  # no kind
        bytes([VERSION, 7]) + b"\x00" * 8,  # an unknown kind
        bytes([VERSION, 0, 0]) + (50).to_bytes(4, "big") + b"short",  # stdout past the end
        bytes([VERSION, 0, 0]),  # shorter than an answer's header
    ],
    ids=["no-kind", "unknown-kind", "stdout-past-end", "short-answer"],
)
def test_malformed_replies_are_protocol_errors(body: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_reply(body)

"""The wire protocol as pure functions: round trips, the pinned layout, and every refusal."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from renderer import protocol
from renderer.protocol import (
    DEFAULT_LIMITS,
    ErrorCode,
    Flag,
    Limits,
    MsgType,
    ProtocolError,
    decode,
    encode,
)


def as_wire(frames: list) -> list[bytes]:
    """What arrives from a socket: every frame as plain bytes."""
    return [bytes(memoryview(frame).cast("B")) if isinstance(frame, np.ndarray) else bytes(frame)
            for frame in frames]


def refusal(frames: list, limits: Limits = DEFAULT_LIMITS, **kwargs) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        decode(frames, limits, **kwargs)
    return caught.value


def render_frames(label_ids=None, instance_ids=None, **kwargs) -> list[bytes]:
    if label_ids is None:
        label_ids = np.zeros((4, 6), np.uint8)
    return as_wire(protocol.render_request(kwargs.pop("session_id", 7), kwargs.pop("seq", 1),
                                           kwargs.pop("frame_id", 3), label_ids, instance_ids, **kwargs))


array_strategy = hnp.arrays(
    dtype=st.sampled_from([np.uint8, np.dtype("<u2"), np.int32, np.float32]),
    shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4),
)


@settings(max_examples=150, deadline=None, database=None)
@given(
    msg_type=st.sampled_from(list(MsgType)),
    session_id=st.integers(0, 2**64 - 1),
    seq=st.integers(0, 2**64 - 1),
    frame_id=st.integers(-(2**63), 2**63 - 1),
    flags=st.sampled_from([0, int(Flag.RESET), int(Flag.NO_IMAGE), int(Flag.RESET | Flag.NO_IMAGE)]),
    code=st.integers(0, 2**16 - 1),
    aux=st.integers(0, 2**32 - 1),
    arrays=st.lists(array_strategy, max_size=protocol.MAX_ARRAYS),
    text=st.text(max_size=50),
)
def test_every_message_survives_a_round_trip(msg_type, session_id, seq, frame_id, flags, code, aux, arrays, text):
    has_text = msg_type in (MsgType.PONG, MsgType.ERROR)
    arrays = arrays[: protocol.ARRAYS_OF_TYPE.get(msg_type, 0)]
    frames = encode(msg_type, session_id=session_id, seq=seq, frame_id=frame_id, flags=flags, code=code,
                    aux=aux, arrays=arrays, text=text if has_text else None)
    message = decode(as_wire(frames))
    assert (message.msg_type, message.session_id, message.seq, message.frame_id, message.flags,
            message.code, message.aux) == (msg_type, session_id, seq, frame_id, flags, code, aux)
    assert message.text == (text if has_text else None)
    assert len(message.arrays) == len(arrays)
    for sent, received in zip(arrays, message.arrays):
        assert received.dtype == sent.dtype and received.shape == sent.shape
        np.testing.assert_array_equal(received, sent)


def test_render_request_arrays_are_sent_as_they_are_and_received_without_copy():
    label_ids = np.arange(24, dtype=np.uint8).reshape(4, 6)
    instance_ids = (np.arange(24, dtype=np.int32) * 1000).reshape(4, 6)
    frames = protocol.render_request(5, 9, 11, label_ids, instance_ids, flags=int(Flag.RESET))
    assert frames[1] is label_ids and frames[2] is instance_ids  # nothing copied on the way out
    wire = [bytearray(frame) for frame in as_wire(frames)]
    message = decode(wire)
    labels, instances = protocol.check_render_request(message)
    wire[1][0] = 200  # the received array is a view on the received buffer
    assert labels[0, 0] == 200 and not labels.flags.writeable
    np.testing.assert_array_equal(instances, instance_ids)
    assert message.flags == Flag.RESET and message.frame_id == 11


def test_non_contiguous_and_big_endian_arrays_are_sent_in_wire_order():
    transposed = np.arange(12, dtype=np.uint8).reshape(3, 4).T
    big_endian = np.arange(6, dtype=">i4").reshape(2, 3)
    message = decode(as_wire(encode(MsgType.RENDER, session_id=1, arrays=[transposed, big_endian])))
    np.testing.assert_array_equal(message.arrays[0], transposed)
    np.testing.assert_array_equal(message.arrays[1], big_endian)
    assert message.arrays[1].dtype == np.dtype("<i4")


def test_header_layout_is_pinned():
    frames = encode(MsgType.RENDER, session_id=0x0102030405060708, seq=2, frame_id=-1, flags=1, aux=5,
                    arrays=[np.zeros((256, 512), np.uint8)])
    header = frames[0]
    assert len(header) == 40 + 16
    assert header[:4] == b"CNRW"
    assert struct.unpack_from("<BBH", header, 4) == (1, MsgType.RENDER, 1)
    assert struct.unpack_from("<QQq", header, 8) == (0x0102030405060708, 2, -1)
    assert struct.unpack_from("<HHI", header, 32) == (1, 0, 5)
    assert struct.unpack_from("<BBHIII", header, 40) == (1, 2, 0, 256, 512, 0)


@pytest.mark.parametrize(
    ("frames", "code", "words"),
    [
        ([], ErrorCode.BAD_HEADER, "empty"),
        ([b"CNRW"], ErrorCode.BAD_HEADER, "needs at least 40"),
        ([b"XXXX" + bytes(36)], ErrorCode.BAD_MAGIC, "not a carla-neural"),
    ],
)
def test_broken_headers_are_named(frames, code, words):
    error = refusal(frames)
    assert error.code == code and words in error.message


def patched_header(frames: list[bytes], fmt: str, offset: int, *values) -> list[bytes]:
    header = bytearray(frames[0])
    struct.pack_into(fmt, header, offset, *values)
    return [bytes(header), *frames[1:]]


def test_unknown_version_type_and_flags_are_named_and_echo_the_ids():
    frames = render_frames(session_id=42, seq=8, frame_id=77)
    error = refusal(patched_header(frames, "<B", 4, 9))
    assert error.code == ErrorCode.BAD_VERSION and "version 9" in error.message
    assert (error.session_id, error.seq, error.frame_id) == (42, 8, 77)
    error = refusal(patched_header(frames, "<B", 5, 99))
    assert error.code == ErrorCode.BAD_TYPE and "unknown message type 99" in error.message
    error = refusal(patched_header(frames, "<H", 6, 0x80))
    assert error.code == ErrorCode.BAD_FLAGS and "0x80" in error.message


def test_replies_are_refused_where_requests_are_expected():
    frames = as_wire(encode(MsgType.ACK, session_id=1, seq=1))
    error = refusal(frames, expect=protocol.REQUEST_TYPES)
    assert error.code == ErrorCode.BAD_TYPE and "ACK" in error.message


def test_frame_count_must_match_the_header():
    frames = render_frames()
    assert refusal(frames[:1]).code == ErrorCode.BAD_FRAME_COUNT
    error = refusal([*frames, b"extra"])
    assert error.code == ErrorCode.BAD_FRAME_COUNT and "got 3" in error.message
    assert refusal(patched_header(frames, "<H", 32, 200)).code == ErrorCode.BAD_FRAME_COUNT
    # header claims two arrays but carries one descriptor
    assert refusal(patched_header(frames, "<H", 32, 2)).code == ErrorCode.BAD_HEADER


def test_buffer_sizes_dtypes_shapes_and_limits_are_checked():
    frames = render_frames(label_ids=np.zeros((4, 6), np.uint8))
    error = refusal([frames[0], frames[1][:-1]])
    assert error.code == ErrorCode.BAD_SIZE and "23 bytes" in error.message and "needs 24" in error.message
    error = refusal(patched_header(frames, "<B", 40, 77))
    assert error.code == ErrorCode.BAD_DTYPE and "dtype code 77" in error.message
    assert refusal(patched_header(frames, "<B", 41, 0)).code == ErrorCode.BAD_SHAPE
    assert refusal(patched_header(frames, "<B", 41, 5)).code == ErrorCode.BAD_SHAPE
    assert refusal(patched_header(frames, "<I", 44, 0)).code == ErrorCode.BAD_SHAPE
    assert refusal(patched_header(frames, "<I", 52, 3)).code == ErrorCode.BAD_SHAPE  # stray 3rd dim
    error = refusal(patched_header(frames, "<II", 44, 100_000, 100_000))
    assert error.code == ErrorCode.TOO_LARGE and "limits" in error.message
    small = Limits(max_side=5, max_pixels=100)
    assert refusal(frames, small).code == ErrorCode.TOO_LARGE
    error = refusal(as_wire(encode(MsgType.ERROR, text="x" * 200)), Limits(max_text_bytes=100))
    assert error.code == ErrorCode.TOO_LARGE
    bad_text = as_wire(encode(MsgType.ERROR, text="ok"))
    assert refusal([bad_text[0], b"\xff\xfe"]).code == ErrorCode.BAD_VALUE


def test_render_request_semantics():
    def check(label_ids, instance_ids=None, session_id=7):
        return protocol.check_render_request(decode(render_frames(label_ids, instance_ids, session_id=session_id)))

    with pytest.raises(ProtocolError, match="label_ids must be uint8"):
        check(np.zeros((4, 6), np.float32))
    with pytest.raises(ProtocolError, match=r"label_ids must be \(H, W\)"):
        check(np.zeros((4, 6, 1), np.uint8))
    with pytest.raises(ProtocolError, match="instance_ids must be int32"):
        check(np.zeros((4, 6), np.uint8), np.zeros((4, 6), np.uint16))
    with pytest.raises(ProtocolError, match="differs"):
        check(np.zeros((4, 6), np.uint8), np.zeros((4, 5), np.int32))
    with pytest.raises(ProtocolError, match="session id 0"):
        check(np.zeros((4, 6), np.uint8), session_id=0)
    message = decode(as_wire(encode(MsgType.RENDER, session_id=1)))
    with pytest.raises(ProtocolError, match="got 0 array"):
        protocol.check_render_request(message)


def test_render_reply_semantics():
    rgb = np.zeros((4, 6, 3), np.uint8)
    message = decode(as_wire(encode(MsgType.RENDER_REPLY, arrays=[rgb])))
    assert protocol.check_render_reply(message, (4, 6)).shape == (4, 6, 3)
    with pytest.raises(ProtocolError, match="expected"):
        protocol.check_render_reply(message, (6, 4))
    no_image = decode(as_wire(encode(MsgType.RENDER_REPLY, flags=int(Flag.NO_IMAGE))))
    assert protocol.check_render_reply(no_image, (4, 6)) is None


def test_encode_refuses_what_cannot_be_sent():
    with pytest.raises(ProtocolError, match="cannot be sent"):
        encode(MsgType.RENDER, arrays=[np.zeros(3, np.complex64)])
    with pytest.raises(ProtocolError, match="needs text"):
        encode(MsgType.ERROR)
    with pytest.raises(ProtocolError, match="takes no text"):
        encode(MsgType.PING, text="hello")


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.binary(max_size=120), max_size=5))
def test_garbage_is_refused_with_a_protocol_error_never_anything_else(frames):
    try:
        decode(frames)
    except ProtocolError as error:
        assert error.code != ErrorCode.NONE and error.message


@settings(max_examples=200, deadline=None, database=None)
@given(st.data())
def test_corrupted_valid_messages_never_escape_as_other_exceptions(data):
    frames = render_frames(np.ones((3, 5), np.uint8), np.ones((3, 5), np.int32))
    header = bytearray(frames[0])
    for _ in range(data.draw(st.integers(1, 4))):
        header[data.draw(st.integers(0, len(header) - 1))] = data.draw(st.integers(0, 255))
    try:
        message = decode([bytes(header), *frames[1:]])
        protocol.check_render_request(message)
    except ProtocolError:
        pass


@pytest.mark.parametrize("msg_type", [MsgType.PING, MsgType.BYE, MsgType.RESET, MsgType.ACK, MsgType.PONG])
def test_types_without_arrays_refuse_them(msg_type: MsgType) -> None:
    # Well formed, but this type carries no arrays (docs/protocol.md): BAD_FRAME_COUNT, not an answer.
    frames = as_wire(encode(msg_type, session_id=9, seq=4, arrays=[np.zeros((2, 3), np.uint8)],
                            text="{}" if msg_type == MsgType.PONG else None))
    error = refusal(frames)
    assert error.code == ErrorCode.BAD_FRAME_COUNT and (error.session_id, error.seq) == (9, 4)
    assert f"{msg_type.name} carries no arrays, got 1" in error.message


def test_renders_and_replies_with_too_many_arrays_are_refused() -> None:
    two = [np.zeros((2, 2), np.uint8)] * 2
    error = refusal(as_wire(encode(MsgType.RENDER, session_id=7, arrays=two * 2)))
    assert error.code == ErrorCode.BAD_FRAME_COUNT and "RENDER carries at most 2 array(s), got 4" in error.message
    error = refusal(as_wire(encode(MsgType.RENDER_REPLY, session_id=7, arrays=two)))
    assert "RENDER_REPLY carries at most 1 array(s), got 2" in error.message


def test_a_nonzero_reserved_descriptor_field_is_refused() -> None:
    frames = render_frames()
    head = bytearray(frames[0])
    struct.pack_into("<H", head, protocol.HEADER_BYTES + 2, 1)  # the descriptor's reserved u16
    error = refusal([bytes(head), *frames[1:]])
    assert error.code == ErrorCode.BAD_HEADER and "array 0: reserved descriptor field is 1, must be 0" in error.message

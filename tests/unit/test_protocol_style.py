"""The STYLE message: encoding of the three choices and strict decoding of hostile ones."""

from __future__ import annotations

import numpy as np
import pytest

from renderer import protocol
from renderer.protocol import ErrorCode, MsgType, ProtocolError, StyleChoice


def _decoded(frames: list) -> protocol.Message:
    wire = [bytes(frame) if not isinstance(frame, np.ndarray) else frame.tobytes() for frame in frames]
    return protocol.decode(wire, expect=protocol.REQUEST_TYPES)


def test_style_choices_round_trip() -> None:
    vectors = np.arange(105, dtype=np.float32).reshape(35, 3) / 100
    by_index = protocol.check_style_request(_decoded(protocol.style_request(7, 1, StyleChoice(index=3))))
    assert by_index == StyleChoice(index=3)
    by_vectors = protocol.check_style_request(_decoded(protocol.style_request(7, 2, StyleChoice(vectors=vectors))))
    assert by_vectors is not None and np.array_equal(by_vectors.vectors, vectors)
    assert protocol.check_style_request(_decoded(protocol.style_request(7, 3, None))) is None
    header = protocol.style_request(7, 4, StyleChoice(index=3))[0]
    assert header[5] == MsgType.STYLE and int.from_bytes(header[36:40], "little") == 3


def _refused(frames: list) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        protocol.check_style_request(_decoded(frames))
    return caught.value


def test_hostile_style_values_are_refused_naming_the_field() -> None:
    error = _refused(protocol.encode(MsgType.STYLE, session_id=7, seq=1, aux=64))
    assert error.code == ErrorCode.BAD_VALUE and "aux" in error.message and "0..63" in error.message
    error = _refused(protocol.encode(MsgType.STYLE, session_id=7, seq=1, aux=protocol.STYLE_VECTORS,
                                     arrays=[np.full((35, 3), np.nan, np.float32)]))
    assert error.code == ErrorCode.BAD_VALUE and "vectors" in error.message
    error = _refused(protocol.encode(MsgType.STYLE, session_id=7, seq=1, aux=protocol.STYLE_VECTORS,
                                     arrays=[np.zeros((35, 3), np.int32)]))
    assert error.code == ErrorCode.BAD_DTYPE and "vectors" in error.message
    error = _refused(protocol.encode(MsgType.STYLE, session_id=7, seq=1, aux=2, arrays=[np.zeros((35, 3), np.float32)]))
    assert error.code == ErrorCode.BAD_FRAME_COUNT
    error = _refused(protocol.encode(MsgType.STYLE, session_id=7, seq=1, aux=protocol.STYLE_VECTORS))
    assert error.code == ErrorCode.BAD_FRAME_COUNT
    error = _refused(protocol.encode(MsgType.STYLE, session_id=0, seq=1, aux=0))
    assert error.code == ErrorCode.BAD_VALUE
    with pytest.raises(ProtocolError) as caught:  # two arrays: refused by decode itself
        _decoded(protocol.encode(MsgType.STYLE, session_id=7, seq=1, aux=protocol.STYLE_VECTORS,
                                 arrays=[np.zeros((35, 3), np.float32)] * 2))
    assert caught.value.code == ErrorCode.BAD_FRAME_COUNT

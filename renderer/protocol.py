"""The render wire protocol, version 1: a fixed binary header plus raw array buffers.

A message is a ZeroMQ multipart message (the ROUTER's routing frame is not part of it):

    frame 0       header: 40 fixed bytes + 16 bytes per array descriptor
    frame 1..N    one raw, C-ordered, little-endian buffer per array descriptor
    frame N+1     UTF-8 text, only for ERROR (the message) and PONG (JSON worker facts)

No pickle and no JSON-of-arrays: arrays travel as their bytes and are rebuilt with
`numpy.frombuffer`, so a received array is a read-only view on the ZeroMQ frame (zero-copy).
Every field of an incoming message is checked in `decode`; anything wrong raises
`ProtocolError` with an `ErrorCode` and a sentence naming the problem. `docs/protocol.md` is the
reference for the layout; the constants here are the single source of truth for the code.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import Any, Sequence
from urllib.parse import urlsplit

import numpy as np

MAGIC = b"CNRW"
VERSION = 1

# magic, version, type, flags, session_id, seq, frame_id, n_arrays, code, aux
_HEADER = struct.Struct("<4sBBHQQqHHI")
# dtype code, ndim, reserved, shape[0..2]
_ARRAY = struct.Struct("<BBHIII")
HEADER_BYTES = _HEADER.size
ARRAY_DESC_BYTES = _ARRAY.size
MAX_NDIM = 3
MAX_ARRAYS = 4
assert HEADER_BYTES == 40 and ARRAY_DESC_BYTES == 16


class MsgType(enum.IntEnum):
    """Message types; requests go client -> worker, replies worker -> client."""

    RENDER = 1  # request: label_ids (H, W) uint8 [, instance_ids (H, W) int32]
    RENDER_REPLY = 2  # reply: rgb (H, W, 3) uint8, or no array with Flag.NO_IMAGE
    RESET = 3  # request: start a new sequence for this session (creates it if needed)
    PING = 4  # request: heartbeat; refreshes the session's inactivity timer
    PONG = 5  # reply: JSON text with the worker's facts
    ERROR = 6  # reply: header.code is an ErrorCode, text names the problem
    BYE = 7  # request: end the session and free its renderer state
    ACK = 8  # reply to RESET, BYE and STYLE
    STYLE = 9  # request: the session's style (aux, optional vectors); starts a new sequence


REQUEST_TYPES = frozenset({MsgType.RENDER, MsgType.RESET, MsgType.PING, MsgType.BYE, MsgType.STYLE})
REPLY_TYPES = frozenset({MsgType.RENDER_REPLY, MsgType.PONG, MsgType.ERROR, MsgType.ACK})
# Types that carry one trailing UTF-8 text frame after their arrays.
_TEXT_TYPES = frozenset({MsgType.PONG, MsgType.ERROR})
# The most arrays each type carries (docs/protocol.md's table); more is BAD_FRAME_COUNT.
ARRAYS_OF_TYPE: dict[MsgType, int] = {MsgType.RENDER: 2, MsgType.RENDER_REPLY: 1, MsgType.STYLE: 1}

# STYLE's aux: a style index 0..MAX_STYLE_INDEX (the checkpoint's cluster K, no array), or one of
# these two (docs/protocol.md, "Styles").
MAX_STYLE_INDEX = 63
STYLE_VECTORS = 0xFFFFFFFE  # one float32 (label_nc, feat_nc) array of per-class vectors follows
STYLE_NONE = 0xFFFFFFFF  # no style: the checkpoint's default (StyleBank.default_vectors; no array)


class Flag(enum.IntFlag):
    """Header flag bits; any other bit set is an error (new bits need a new version)."""

    NONE = 0
    RESET = 1  # RENDER: reset the session's sequence before rendering this frame
    NO_IMAGE = 2  # RENDER: render (to build history) but send no image back


KNOWN_FLAGS = int(Flag.RESET | Flag.NO_IMAGE)


class ErrorCode(enum.IntEnum):
    """Why a message was refused; sent in header.code of an ERROR reply."""

    NONE = 0
    BAD_HEADER = 1  # header frame missing or of the wrong length
    BAD_MAGIC = 2
    BAD_VERSION = 3
    BAD_TYPE = 4
    BAD_FLAGS = 5
    BAD_FRAME_COUNT = 6
    BAD_DTYPE = 7
    BAD_SHAPE = 8
    BAD_SIZE = 9  # buffer length does not match dtype and shape
    TOO_LARGE = 10  # dimensions or text beyond the worker's limits
    BAD_VALUE = 11  # e.g. a label id the model does not know
    UNKNOWN_SESSION = 12  # RENDER without Flag.RESET for a session the worker does not hold
    TOO_MANY_SESSIONS = 13
    BUSY = 14  # the session's or the worker's render queue is full
    RENDER_FAILED = 15  # the renderer raised
    SHUTTING_DOWN = 16


class DType(enum.IntEnum):
    """Array element types on the wire (always little-endian)."""

    UINT8 = 1
    UINT16 = 2
    INT32 = 3
    FLOAT32 = 4


_NUMPY_DTYPES: dict[DType, np.dtype] = {
    DType.UINT8: np.dtype("u1"),
    DType.UINT16: np.dtype("<u2"),
    DType.INT32: np.dtype("<i4"),
    DType.FLOAT32: np.dtype("<f4"),
}
_DTYPE_CODES: dict[tuple[str, int], DType] = {
    (dt.kind, dt.itemsize): code for code, dt in _NUMPY_DTYPES.items()
}


class ProtocolError(ValueError):
    """A message broke the protocol; `code` says how, the text says what to fix."""

    def __init__(self, code: ErrorCode, message: str, *, session_id: int = 0, seq: int = 0,
                 frame_id: int = 0) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.session_id = session_id
        self.seq = seq
        self.frame_id = frame_id


@dataclass(frozen=True)
class Limits:
    """What a peer will accept; the worker refuses anything larger before allocating."""

    max_side: int = 8192
    max_pixels: int = 4096 * 4096
    max_text_bytes: int = 64 * 1024

    def max_frame_bytes(self) -> int:
        """Largest single ZeroMQ frame a valid message can have (an int32 map at max_pixels)."""
        return max(self.max_pixels * 4, self.max_text_bytes, HEADER_BYTES + MAX_ARRAYS * ARRAY_DESC_BYTES)


DEFAULT_LIMITS = Limits()


@dataclass
class Message:
    """One decoded protocol message."""

    msg_type: MsgType
    session_id: int = 0
    seq: int = 0
    frame_id: int = 0
    flags: int = 0
    code: int = 0
    aux: int = 0
    arrays: list[np.ndarray] = field(default_factory=list)
    text: str | None = None


def _dtype_code(array: np.ndarray) -> DType:
    code = _DTYPE_CODES.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        raise ProtocolError(ErrorCode.BAD_DTYPE, f"dtype {array.dtype} cannot be sent; "
                            f"use one of {', '.join(str(d) for d in _NUMPY_DTYPES.values())}")
    return code


def encode(msg_type: MsgType, *, session_id: int = 0, seq: int = 0, frame_id: int = 0,
           flags: int = 0, code: int = 0, aux: int = 0, arrays: Sequence[np.ndarray] = (),
           text: str | None = None) -> list[Any]:
    """Encode a message as multipart frames: header bytes, then the arrays themselves, then text.

    The arrays are returned as C-contiguous little-endian ndarrays (no copy when they already
    are), so `socket.send_multipart(frames, copy=False)` sends them without copying.
    """
    msg_type = MsgType(msg_type)
    if len(arrays) > MAX_ARRAYS:
        # Not ARRAYS_OF_TYPE: that is the receiver's check, and tests build messages that break it.
        raise ProtocolError(ErrorCode.BAD_FRAME_COUNT, f"{len(arrays)} arrays, at most {MAX_ARRAYS}")
    if (text is not None) != (msg_type in _TEXT_TYPES):
        raise ProtocolError(ErrorCode.BAD_FRAME_COUNT,
                            f"{msg_type.name} {'needs' if msg_type in _TEXT_TYPES else 'takes no'} text")
    parts: list[Any] = []
    descriptors = []
    for array in arrays:
        dtype_code = _dtype_code(array)
        if not 1 <= array.ndim <= MAX_NDIM:
            raise ProtocolError(ErrorCode.BAD_SHAPE, f"arrays have 1 to {MAX_NDIM} dimensions, got {array.ndim}")
        wire = np.ascontiguousarray(array, dtype=_NUMPY_DTYPES[dtype_code])
        shape = list(wire.shape) + [0] * (MAX_NDIM - wire.ndim)
        descriptors.append(_ARRAY.pack(dtype_code, wire.ndim, 0, *shape))
        parts.append(wire)
    header = _HEADER.pack(MAGIC, VERSION, msg_type, flags, session_id, seq, frame_id,
                          len(arrays), code, aux)
    frames: list[Any] = [header + b"".join(descriptors), *parts]
    if text is not None:
        frames.append(text.encode("utf-8"))
    return frames


def _too_many_arrays(msg_type: MsgType, count: int) -> str:
    most = ARRAYS_OF_TYPE.get(msg_type, 0)
    return f"{msg_type.name} carries {'no arrays' if most == 0 else f'at most {most} array(s)'}, got {count}"


def _view(part: Any) -> memoryview:
    """A byte view of a received frame: a zmq.Frame (zero-copy), bytes or a buffer."""
    buffer = getattr(part, "buffer", None)
    view = buffer if isinstance(buffer, memoryview) else memoryview(part)
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def decode(frames: Sequence[Any], limits: Limits = DEFAULT_LIMITS, *,
           expect: frozenset[MsgType] | None = None) -> Message:
    """Decode and check multipart frames; raise ProtocolError naming the first problem found.

    Arrays come back as read-only numpy views on the received frames.
    """
    if not frames:
        raise ProtocolError(ErrorCode.BAD_HEADER, "empty message")
    head = _view(frames[0])
    if len(head) < HEADER_BYTES:
        raise ProtocolError(ErrorCode.BAD_HEADER,
                            f"header frame is {len(head)} bytes, needs at least {HEADER_BYTES}")
    (magic, version, type_code, flags, session_id, seq, frame_id, n_arrays, code,
     aux) = _HEADER.unpack_from(head, 0)
    ids = {"session_id": session_id, "seq": seq, "frame_id": frame_id}
    if magic != MAGIC:
        raise ProtocolError(ErrorCode.BAD_MAGIC, f"magic is {bytes(magic)!r}, expected {MAGIC!r}: "
                            "not a carla-neural render message")
    if version != VERSION:
        raise ProtocolError(ErrorCode.BAD_VERSION, f"protocol version {version} is not supported; "
                            f"this side speaks version {VERSION}: upgrade the older side", **ids)
    try:
        msg_type = MsgType(type_code)
    except ValueError:
        raise ProtocolError(ErrorCode.BAD_TYPE, f"unknown message type {type_code}; known: "
                            f"{', '.join(f'{t.value}={t.name}' for t in MsgType)}", **ids) from None
    if expect is not None and msg_type not in expect:
        raise ProtocolError(ErrorCode.BAD_TYPE, f"message type {msg_type.name} is not accepted here; "
                            f"expected one of {', '.join(sorted(t.name for t in expect))}", **ids)
    if flags & ~KNOWN_FLAGS:
        raise ProtocolError(ErrorCode.BAD_FLAGS, f"unknown flag bits 0x{flags & ~KNOWN_FLAGS:x} "
                            f"(known: 0x{KNOWN_FLAGS:x})", **ids)
    if n_arrays > MAX_ARRAYS:
        raise ProtocolError(ErrorCode.BAD_FRAME_COUNT,
                            f"header declares {n_arrays} arrays, at most {MAX_ARRAYS}", **ids)
    if n_arrays > ARRAYS_OF_TYPE.get(msg_type, 0):
        raise ProtocolError(ErrorCode.BAD_FRAME_COUNT, _too_many_arrays(msg_type, n_arrays), **ids)
    header_len = HEADER_BYTES + n_arrays * ARRAY_DESC_BYTES
    if len(head) != header_len:
        raise ProtocolError(ErrorCode.BAD_HEADER, f"header frame is {len(head)} bytes; {n_arrays} "
                            f"array(s) need exactly {header_len}", **ids)
    n_text = 1 if msg_type in _TEXT_TYPES else 0
    expected_frames = 1 + n_arrays + n_text
    if len(frames) != expected_frames:
        raise ProtocolError(ErrorCode.BAD_FRAME_COUNT, f"{msg_type.name} with {n_arrays} array(s) "
                            f"needs {expected_frames} frame(s), got {len(frames)}", **ids)
    arrays = []
    for index in range(n_arrays):
        dtype_code, ndim, reserved, *shape_all = _ARRAY.unpack_from(head, HEADER_BYTES + index * ARRAY_DESC_BYTES)
        if reserved:
            # Zero now, so that a later version can give these bits a meaning.
            raise ProtocolError(ErrorCode.BAD_HEADER, f"array {index}: reserved descriptor field is "
                                f"{reserved}, must be 0", **ids)
        try:
            dtype = _NUMPY_DTYPES[DType(dtype_code)]
        except ValueError:
            raise ProtocolError(ErrorCode.BAD_DTYPE, f"array {index}: unknown dtype code {dtype_code}; "
                                f"known: {', '.join(f'{d.value}={d.name}' for d in DType)}", **ids) from None
        if not 1 <= ndim <= MAX_NDIM:
            raise ProtocolError(ErrorCode.BAD_SHAPE, f"array {index}: ndim {ndim}, must be 1..{MAX_NDIM}", **ids)
        shape = tuple(shape_all[:ndim])
        if any(side == 0 for side in shape) or any(side != 0 for side in shape_all[ndim:]):
            raise ProtocolError(ErrorCode.BAD_SHAPE, f"array {index}: shape {tuple(shape_all)} with "
                                f"ndim {ndim} has empty or stray dimensions", **ids)
        if max(shape[:2]) > limits.max_side or int(np.prod(shape[:2], dtype=np.int64)) > limits.max_pixels:
            raise ProtocolError(ErrorCode.TOO_LARGE, f"array {index}: shape {shape} is beyond this peer's "
                                f"limits (side <= {limits.max_side}, pixels <= {limits.max_pixels})", **ids)
        if ndim == 3 and shape[2] > 4:
            raise ProtocolError(ErrorCode.TOO_LARGE, f"array {index}: {shape[2]} channels, at most 4", **ids)
        expected_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        view = _view(frames[1 + index])
        if len(view) != expected_bytes:
            raise ProtocolError(ErrorCode.BAD_SIZE, f"array {index}: buffer is {len(view)} bytes, shape "
                                f"{shape} of {dtype} needs {expected_bytes}", **ids)
        array = np.frombuffer(view, dtype=dtype).reshape(shape)
        if array.flags.writeable:
            array.flags.writeable = False
        arrays.append(array)
    text = None
    if n_text:
        raw = _view(frames[-1])
        if len(raw) > limits.max_text_bytes:
            raise ProtocolError(ErrorCode.TOO_LARGE, f"text frame is {len(raw)} bytes, at most "
                                f"{limits.max_text_bytes}", **ids)
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError(ErrorCode.BAD_VALUE, f"text frame is not UTF-8 ({exc.reason})", **ids) from None
    return Message(msg_type=msg_type, session_id=session_id, seq=seq, frame_id=frame_id, flags=flags,
                   code=code, aux=aux, arrays=arrays, text=text)


def check_render_request(message: Message) -> tuple[np.ndarray, np.ndarray | None]:
    """Check a decoded RENDER's arrays: label_ids (H, W) uint8 and optional instance_ids (H, W) int32."""
    ids = {"session_id": message.session_id, "seq": message.seq, "frame_id": message.frame_id}
    if message.session_id == 0:
        raise ProtocolError(ErrorCode.BAD_VALUE, "session id 0 is reserved; pick a random nonzero 64-bit id", **ids)
    if not 1 <= len(message.arrays) <= 2:
        raise ProtocolError(ErrorCode.BAD_FRAME_COUNT, f"RENDER carries label_ids and optionally "
                            f"instance_ids, got {len(message.arrays)} array(s)", **ids)
    label_ids = message.arrays[0]
    if label_ids.dtype != np.uint8:
        raise ProtocolError(ErrorCode.BAD_DTYPE, f"label_ids must be uint8, got {label_ids.dtype}", **ids)
    if label_ids.ndim != 2:
        raise ProtocolError(ErrorCode.BAD_SHAPE, f"label_ids must be (H, W), got shape {label_ids.shape}", **ids)
    instance_ids = None
    if len(message.arrays) == 2:
        instance_ids = message.arrays[1]
        if instance_ids.dtype != np.int32:
            raise ProtocolError(ErrorCode.BAD_DTYPE, f"instance_ids must be int32, got {instance_ids.dtype}", **ids)
        if instance_ids.shape != label_ids.shape:
            raise ProtocolError(ErrorCode.BAD_SHAPE, f"instance_ids shape {instance_ids.shape} differs "
                                f"from label_ids shape {label_ids.shape}", **ids)
    return label_ids, instance_ids


@dataclass(frozen=True)
class StyleChoice:
    """What a STYLE message carries: a style ``index`` of the checkpoint's bank, or explicit
    per-class ``vectors`` (label_nc, feat_nc) float32 (e.g. encoded from a photo); neither: no
    style. ``name`` is for people (HUD, run.json), not sent."""

    index: int | None = None
    vectors: np.ndarray | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if self.index is not None and self.vectors is not None:
            raise ValueError("a style is an index or vectors, not both")
        if self.index is not None and not 0 <= self.index <= MAX_STYLE_INDEX:
            raise ValueError(f"style index {self.index} is outside 0..{MAX_STYLE_INDEX}")

    @property
    def label(self) -> str:
        """How to show it: 'style 2', the photo's name, or 'none'."""
        if self.name:
            return self.name
        return "none" if self.index is None and self.vectors is None else (
            f"style {self.index}" if self.index is not None else "vectors")


def style_request(session_id: int, seq: int, choice: StyleChoice | None) -> list[Any]:
    """Frames of a STYLE request (``choice`` None: no style)."""
    if choice is None or (choice.index is None and choice.vectors is None):
        return encode(MsgType.STYLE, session_id=session_id, seq=seq, aux=STYLE_NONE)
    if choice.index is not None:
        return encode(MsgType.STYLE, session_id=session_id, seq=seq, aux=choice.index)
    return encode(MsgType.STYLE, session_id=session_id, seq=seq, aux=STYLE_VECTORS,
                  arrays=[np.asarray(choice.vectors, dtype=np.float32)])


def check_style_request(message: Message) -> StyleChoice | None:
    """Check a decoded STYLE: an index (no array), vectors (one finite 2-D float32 array) or none;
    ProtocolError naming the field. The model's own checks (styles present, index in range,
    vectors' shape) are the worker's."""
    ids = {"session_id": message.session_id, "seq": message.seq, "frame_id": message.frame_id}
    if message.session_id == 0:
        raise ProtocolError(ErrorCode.BAD_VALUE, "session id 0 is reserved; pick a random nonzero 64-bit id", **ids)
    wants_array = message.aux == STYLE_VECTORS
    if len(message.arrays) != (1 if wants_array else 0):
        raise ProtocolError(ErrorCode.BAD_FRAME_COUNT, f"STYLE with aux {message.aux:#x} carries "
                            f"{'one vectors array' if wants_array else 'no array'}, got "
                            f"{len(message.arrays)}", **ids)
    if message.aux == STYLE_NONE:
        return None
    if not wants_array:
        if message.aux > MAX_STYLE_INDEX:
            raise ProtocolError(ErrorCode.BAD_VALUE, f"STYLE field aux (style index) = {message.aux}: "
                                f"allowed 0..{MAX_STYLE_INDEX}, {STYLE_VECTORS:#x} (vectors) or "
                                f"{STYLE_NONE:#x} (none)", **ids)
        return StyleChoice(index=int(message.aux))
    vectors = message.arrays[0]
    if vectors.dtype != np.float32 or vectors.ndim != 2:
        raise ProtocolError(ErrorCode.BAD_DTYPE, f"STYLE field vectors must be (label_nc, feat_nc) "
                            f"float32, got {vectors.shape} {vectors.dtype}", **ids)
    if not np.isfinite(vectors).all():
        raise ProtocolError(ErrorCode.BAD_VALUE, "STYLE field vectors holds NaN or infinity", **ids)
    return StyleChoice(vectors=vectors)


def check_render_reply(message: Message, shape: tuple[int, int]) -> np.ndarray | None:
    """Check a decoded RENDER_REPLY: rgb (H, W, 3) uint8 of the requested (H, W), or None with NO_IMAGE."""
    if message.flags & Flag.NO_IMAGE:
        if message.arrays:
            raise ProtocolError(ErrorCode.BAD_FRAME_COUNT, "a NO_IMAGE reply must carry no array")
        return None
    if len(message.arrays) != 1:
        raise ProtocolError(ErrorCode.BAD_FRAME_COUNT, f"RENDER_REPLY carries one rgb array, got {len(message.arrays)}")
    rgb = message.arrays[0]
    if rgb.dtype != np.uint8 or rgb.shape != (*shape, 3):
        raise ProtocolError(ErrorCode.BAD_SHAPE, f"rgb reply is {rgb.shape} {rgb.dtype}, "
                            f"expected {(*shape, 3)} uint8")
    return rgb


def render_request(session_id: int, seq: int, frame_id: int, label_ids: np.ndarray,
                   instance_ids: np.ndarray | None = None, flags: int = 0) -> list[Any]:
    """Frames of a RENDER request for label_ids (H, W) uint8 and optional instance_ids (H, W) int32."""
    arrays = [label_ids] if instance_ids is None else [label_ids, instance_ids]
    return encode(MsgType.RENDER, session_id=session_id, seq=seq, frame_id=frame_id, flags=flags, arrays=arrays)


def error_reply(error: ProtocolError) -> list[Any]:
    """Frames of an ERROR reply that echoes the ids of the refused request."""
    return encode(MsgType.ERROR, session_id=error.session_id, seq=error.seq, frame_id=error.frame_id,
                  code=int(error.code), text=error.message)


def is_ipv6_endpoint(endpoint: str) -> bool:
    """True for a tcp endpoint whose host is an IPv6 literal (tcp://[::1]:5555): its sockets need
    zmq.IPV6 set, and hosts without IPv6 cannot use it at all."""
    parts = urlsplit(endpoint)
    return parts.scheme == "tcp" and ":" in (parts.hostname or "")

"""I2C link layer (PROTOCOL.md §11), sans-I/O: both ends driven directly, no bus, no threads."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rayzig_core.errors import TransportError
from rayzig_core.protocol.frames import MAX_FRAME
from rayzig_core.protocol.link import (
    CHUNK_OVERHEAD,
    CHUNK_SIZES,
    STATUS_LEN,
    ChunkFlags,
    Command,
    I2CHostLink,
    I2CLinkError,
    I2CLinkResetError,
    I2CSlaveLink,
    Op,
    Outcome,
    Reply,
    StatusFlags,
    Transaction,
    crc16_ccitt,
    payload_per_chunk,
)

Corrupt = Callable[[int, str, bytes], bytes]


def step(host: I2CHostLink, slave: I2CSlaveLink) -> tuple[Transaction, bytes, Outcome]:
    tx = host.next_transaction()
    slave.handle_write(tx.write)
    reply = slave.handle_read(tx.read_len)
    return tx, reply, host.handle_reply(tx, reply)


def pump(
    host: I2CHostLink,
    slave: I2CSlaveLink,
    until: Callable[[], bool],
    *,
    corrupt: Corrupt | None = None,
    limit: int = 50_000,
) -> int:
    """Run transactions until ``until()``; ``corrupt(step, 'w'|'r', bytes)`` may damage them."""
    for index in range(limit):
        if until():
            return index
        tx = host.next_transaction()
        write = corrupt(index, "w", tx.write) if corrupt else tx.write
        slave.handle_write(write)
        reply = slave.handle_read(tx.read_len)
        if corrupt:
            reply = corrupt(index, "r", reply)
        host.handle_reply(tx, reply)
    raise AssertionError("link did not converge")


def linked_pair(
    host_max: int = 256, slave_max: int = 256, *, epoch: int = 7
) -> tuple[I2CHostLink, I2CSlaveLink]:
    host = I2CHostLink(max_chunk=host_max)
    slave = I2CSlaveLink(max_chunk=slave_max, epoch=epoch)
    pump(host, slave, lambda: host.linked)
    return host, slave


def test_crc16_ccitt_false_check_value() -> None:
    assert crc16_ccitt(b"123456789") == 0x29B1
    assert crc16_ccitt(b"") == 0xFFFF


def _crc16_bitwise(data: bytes, crc: int = 0xFFFF) -> int:
    """The textbook definition, bit by bit: poly 0x1021, MSB first, no reflection, no final XOR."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


@given(st.binary(max_size=300), st.integers(0, 0xFFFF))
def test_crc16_ccitt_matches_the_bitwise_definition(data: bytes, init: int) -> None:
    assert crc16_ccitt(data) == _crc16_bitwise(data)
    assert crc16_ccitt(data, init) == _crc16_bitwise(data, init)
    assert crc16_ccitt(bytearray(data)) == crc16_ccitt(memoryview(data)) == _crc16_bitwise(data)
    head, tail = data[: len(data) // 2], data[len(data) // 2 :]
    assert crc16_ccitt(tail, crc16_ccitt(head)) == crc16_ccitt(data)


@pytest.mark.parametrize("host_max", CHUNK_SIZES)
@pytest.mark.parametrize("slave_max", CHUNK_SIZES)
def test_negotiation_uses_the_smaller_size(host_max: int, slave_max: int) -> None:
    host = I2CHostLink(max_chunk=host_max)
    slave = I2CSlaveLink(max_chunk=slave_max, epoch=9)
    tx = host.next_transaction()
    assert tx.op is Op.HELLO
    assert len(tx.write) <= 32  # fits before negotiation
    slave.handle_write(tx.write)
    reply = slave.handle_read(tx.read_len)
    assert reply[0] == Reply.HELLO_ACK
    assert host.handle_reply(tx, reply) is Outcome.PROGRESS
    assert host.chunk_size == slave.chunk_size(0) == min(host_max, slave_max)
    assert host.epoch == 9
    assert slave.linked


@pytest.mark.parametrize("size", [0, 16, 48, 512])
def test_chunk_sizes_must_be_powers_of_two_in_range(size: int) -> None:
    with pytest.raises(ValueError, match="chunk size"):
        I2CHostLink(max_chunk=size)
    with pytest.raises(ValueError, match="chunk size"):
        I2CSlaveLink(max_chunk=size)


def test_version_mismatch_is_a_link_error() -> None:
    host = I2CHostLink()
    slave = I2CSlaveLink()
    tx = host.next_transaction()
    hello = bytearray(tx.write[:-2])
    hello[1] = 99
    slave.handle_write(bytes(hello) + crc16_ccitt(hello).to_bytes(2, "big"))
    with pytest.raises(I2CLinkError, match="version"):
        host.handle_reply(tx, slave.handle_read(tx.read_len))
    assert not slave.linked


@pytest.mark.parametrize("size", CHUNK_SIZES)
def test_chunking_both_directions(size: int) -> None:
    host, slave = linked_pair(size, 256)
    up = random.Random(size).randbytes(MAX_FRAME)
    down = random.Random(size + 1).randbytes(MAX_FRAME - 1)
    slave.push_frame(0, down)
    host.send(up)
    writes: list[bytes] = []
    reads: list[bytes] = []
    for _ in range(10_000):
        if slave.pending_frames == 0 and host.pending_frames == 0 and slave.stats.frames_received:
            break
        tx = host.next_transaction()
        slave.handle_write(tx.write)
        reply = slave.handle_read(tx.read_len)
        assert len(tx.write) <= size
        assert tx.read_len <= size
        if tx.op is Op.PUT:
            writes.append(tx.write)
        if tx.op is Op.GET:
            reads.append(reply)
        host.handle_reply(tx, reply)
    per = payload_per_chunk(size)
    assert len(writes) == math.ceil(len(up) / per)
    assert len(reads) == math.ceil(len(down) / per)
    assert all(len(w) == size for w in writes[:-1])
    assert [w[3] for w in writes] == list(range(len(writes)))  # chunk index
    assert [bool(w[4] & ChunkFlags.LAST) for w in writes] == [False] * (len(writes) - 1) + [True]
    assert slave.frames_received() == [up]
    assert host.take_frames() == [down]


def test_corrupted_write_is_retransmitted_with_identical_bytes() -> None:
    host, slave = linked_pair(32, 32)
    frame = bytes(range(60))  # 3 chunks of 24
    host.send(frame)
    first = host.next_transaction()
    damaged = bytearray(first.write)
    damaged[10] ^= 0x40
    slave.handle_write(bytes(damaged))
    reply = slave.handle_read(first.read_len)
    assert reply[2] & StatusFlags.WRITE_ERROR
    assert host.handle_reply(first, reply) is Outcome.RETRY
    again = host.next_transaction()
    assert again.write == first.write
    assert not again.poll
    pump(host, slave, lambda: host.pending_frames == 0)
    assert slave.frames_received() == [frame]
    assert slave.stats.write_errors == 1
    assert host.stats.retransmissions == 1


def test_corrupted_chunk_is_served_again_identically() -> None:
    host, slave = linked_pair(64, 64)
    frame = bytes(range(200))
    slave.push_frame(0, frame)
    pump(host, slave, lambda: host.next_transaction().op is Op.GET)
    tx = host.next_transaction()
    slave.handle_write(tx.write)
    original = slave.handle_read(tx.read_len)
    damaged = bytearray(original)
    damaged[20] ^= 0x01
    assert host.handle_reply(tx, bytes(damaged)) is Outcome.RETRY
    retry = host.next_transaction()
    assert retry.write == tx.write
    slave.handle_write(retry.write)
    assert slave.handle_read(retry.read_len) == original  # same chunk bytes (same ciphertext)
    pump(host, slave, lambda: bool(host._rx_frames))
    assert host.take_frames() == [frame]


def test_lost_acknowledgement_duplicate_is_dropped_by_the_slave() -> None:
    host, slave = linked_pair(32, 32)
    frame = b"x" * 50
    host.send(frame)
    tx = host.next_transaction()
    slave.handle_write(tx.write)  # accepted by the slave...
    slave.handle_read(tx.read_len)
    host.handle_failure(tx, "errno 110")  # ...but the host saw a timeout
    again = host.next_transaction()
    assert again.write == tx.write
    pump(host, slave, lambda: host.pending_frames == 0)
    assert slave.stats.duplicates == 1
    assert slave.frames_received() == [frame]  # exactly once


def test_replayed_chunk_is_dropped_by_the_host() -> None:
    host, slave = linked_pair(32, 32)
    frame = bytes(range(70))
    slave.push_frame(0, frame)
    pump(host, slave, lambda: host.next_transaction().op is Op.GET)
    _, first_reply, outcome = step(host, slave)
    assert outcome is Outcome.PROGRESS
    second = host.next_transaction()
    assert second.op is Op.GET
    assert host.handle_reply(second, first_reply) is Outcome.PROGRESS  # a replay of chunk 0
    assert host.stats.duplicates == 1
    pump(host, slave, lambda: bool(host._rx_frames))
    assert host.take_frames() == [frame]


def test_busy_means_poll_the_same_transaction_later() -> None:
    host, slave = linked_pair()
    host.send(b"request")
    slave.busy = True
    tx, reply, outcome = step(host, slave)
    assert reply[0] == Reply.BUSY
    assert outcome is Outcome.BUSY
    retry = host.next_transaction()
    assert retry.write == tx.write
    assert retry.poll
    assert slave.frames_received() == []
    assert host.handle_reply(retry, b"\xff" * STATUS_LEN) is Outcome.BUSY  # floating bus
    slave.busy = False
    pump(host, slave, lambda: host.pending_frames == 0)
    assert slave.frames_received() == [b"request"]
    assert host.consecutive_failures == 0


def test_idle_status_poll() -> None:
    host, slave = linked_pair()
    tx, reply, outcome = step(host, slave)
    assert tx.op is Op.STATUS
    assert tx.poll
    assert reply[0] == Reply.IDLE
    assert outcome is Outcome.IDLE


def test_notification_is_announced_by_status_and_fetched() -> None:
    host, slave = linked_pair()
    slave.push_frame(0, b"event", notify=True)
    tx, reply, outcome = step(host, slave)
    assert tx.op is Op.STATUS
    assert reply[0] == Reply.NOTIFY_PENDING
    assert int.from_bytes(reply[6:8], "big") == len(b"event")
    assert outcome is Outcome.PROGRESS
    get = host.next_transaction()
    assert get.op is Op.GET
    assert not get.poll
    slave.handle_write(get.write)
    chunk = slave.handle_read(get.read_len)
    assert chunk[0] == Reply.CHUNK
    assert chunk[4] & ChunkFlags.NOTIFY
    assert host.handle_reply(get, chunk) is Outcome.PROGRESS
    assert host.take_frames() == [b"event"]
    assert (host.stats.frames_received, host.stats.notifications_received) == (1, 1)
    assert host.answers_received == 0  # a notification answers nothing


def test_answers_are_counted_apart_from_notifications() -> None:
    host, slave = linked_pair()
    slave.push_frame(0, b"answer")
    slave.push_frame(0, b"note", notify=True)
    slave.push_frame(0, b"x" * 600, notify=True)  # three chunks, counted once
    received: list[bytes] = []
    while len(received) < 3:
        step(host, slave)
        received += host.take_frames()
    assert received == [b"answer", b"note", b"x" * 600]
    assert host.answers_received == 1
    assert host.stats.notifications_received == 2


def test_response_ready_carries_length_and_more_flag() -> None:
    host, slave = linked_pair()
    slave.push_frame(0, b"a" * 10)
    slave.push_frame(0, b"b" * 20)
    _, reply, _ = step(host, slave)
    assert reply[0] == Reply.RESPONSE_READY
    assert int.from_bytes(reply[6:8], "big") == 10
    assert reply[8] == 2  # frames pending
    _, chunk, _ = step(host, slave)
    assert chunk[4] & ChunkFlags.MORE
    assert not host.next_transaction().poll  # more is queued: ask at once
    pump(host, slave, lambda: len(host._rx_frames) == 2)
    assert host.take_frames() == [b"a" * 10, b"b" * 20]


def test_gateway_reboot_is_a_transport_error() -> None:
    host, _ = linked_pair(epoch=7)
    rebooted = I2CSlaveLink(epoch=8)
    tx = host.next_transaction()
    rebooted.handle_write(tx.write)
    with pytest.raises(I2CLinkResetError, match="restarted") as info:
        host.handle_reply(tx, rebooted.handle_read(tx.read_len))
    assert isinstance(info.value, TransportError)
    with pytest.raises(I2CLinkResetError):
        host.next_transaction()
    with pytest.raises(I2CLinkResetError):
        host.send(b"x")


def test_reboot_with_the_same_epoch_is_caught_by_the_linked_flag() -> None:
    host, _ = linked_pair(epoch=7)
    host.send(b"hello")
    rebooted = I2CSlaveLink(epoch=7)
    tx = host.next_transaction()
    rebooted.handle_write(tx.write)
    with pytest.raises(I2CLinkResetError):
        host.handle_reply(tx, rebooted.handle_read(tx.read_len))
    assert rebooted.frames_received() == []


def test_reboot_during_a_chunk_read_is_detected() -> None:
    host, slave = linked_pair(32, 32, epoch=1)
    slave.push_frame(0, b"z" * 100)
    pump(host, slave, lambda: host.next_transaction().op is Op.GET)
    step(host, slave)
    rebooted = I2CSlaveLink(max_chunk=32, epoch=2)
    tx = host.next_transaction()
    assert tx.op is Op.GET
    assert tx.read_len >= STATUS_LEN
    rebooted.handle_write(tx.write)
    with pytest.raises(I2CLinkResetError):
        host.handle_reply(tx, rebooted.handle_read(tx.read_len))


def test_retries_are_bounded() -> None:
    host = I2CHostLink(max_retries=3)
    slave = I2CSlaveLink()
    pump(host, slave, lambda: host.linked)
    host.send(b"data")
    for _ in range(3):
        host.handle_failure(host.next_transaction(), "errno 121")
    with pytest.raises(I2CLinkError, match="4 failed put"):
        host.handle_failure(host.next_transaction(), "errno 121")


def test_slave_rejects_writes_larger_than_the_negotiated_chunk() -> None:
    _, slave = linked_pair(64, 64)
    big = I2CHostLink(max_chunk=256)
    big._chunk, big._epoch = 256, slave.epoch  # a host that ignores the negotiation
    big.send(b"q" * 200)
    tx = big.next_transaction()
    assert len(tx.write) > 64
    slave.handle_write(tx.write)
    assert slave.handle_read(STATUS_LEN)[2] & StatusFlags.WRITE_ERROR
    assert slave.frames_received() == []


def test_hello_resets_the_slave_and_reports_connect() -> None:
    connects: list[int] = []
    slave = I2CSlaveLink(on_connect=connects.append)
    host = I2CHostLink()
    pump(host, slave, lambda: host.linked)
    slave.push_frame(0, b"stale")
    pump(I2CHostLink(), slave, lambda: slave.pending_frames == 0, limit=3)
    assert connects == [0, 0]


def test_slave_callback_may_push_reentrantly() -> None:
    host = I2CHostLink(max_chunk=32)
    slave = I2CSlaveLink(max_chunk=32)
    slave._on_frame = lambda channel, frame: slave.push_frame(channel, frame[::-1])
    pump(host, slave, lambda: host.linked)
    frames = [bytes([n]) * (n * 13 + 1) for n in range(12)]
    for frame in frames:
        host.send(frame)
    pump(host, slave, lambda: len(host._rx_frames) == len(frames))
    assert host.take_frames() == [frame[::-1] for frame in frames]


def test_sequence_numbers_wrap() -> None:
    host, slave = linked_pair(32, 32)
    frames = [bytes([n % 256]) * 30 for n in range(200)]  # 400 chunks each way > 256
    for frame in frames:
        host.send(frame)
        slave.push_frame(0, frame)
    got: list[bytes] = []

    def done() -> bool:
        got.extend(host.take_frames())
        return len(got) == len(frames) and host.pending_frames == 0

    pump(host, slave, done)
    assert got == frames
    assert slave.frames_received() == frames


def _corrupter(at: int, direction: str, position: int, xor: int) -> Corrupt:
    def corrupt(index: int, kind: str, data: bytes) -> bytes:
        if index != at or kind != direction or not data:
            return data
        damaged = bytearray(data)
        damaged[position % len(damaged)] ^= xor
        return bytes(damaged)

    return corrupt


frames_strategy = st.lists(st.binary(min_size=1, max_size=700), min_size=1, max_size=4)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    up=frames_strategy,
    down=frames_strategy,
    host_max=st.sampled_from(CHUNK_SIZES),
    slave_max=st.sampled_from(CHUNK_SIZES),
    at=st.integers(0, 80),
    direction=st.sampled_from(["w", "r"]),
    position=st.integers(0, 300),
    xor=st.integers(1, 255),
)
def test_round_trip_with_one_corrupted_byte(  # noqa: PLR0917 - hypothesis arguments
    up: list[bytes],
    down: list[bytes],
    host_max: int,
    slave_max: int,
    at: int,
    direction: str,
    position: int,
    xor: int,
) -> None:
    host = I2CHostLink(max_chunk=host_max)
    slave = I2CSlaveLink(max_chunk=slave_max, epoch=3)
    corrupt = _corrupter(at, direction, position, xor)
    # Corruption may hit the HELLO too; the gateway only queues frames once the link is up.
    steps = pump(host, slave, lambda: host.linked, corrupt=corrupt)
    for frame in down:
        slave.push_frame(0, frame)
    for frame in up:
        host.send(frame)
    received: list[bytes] = []
    delivered: list[bytes] = []

    def done() -> bool:
        received.extend(host.take_frames())
        delivered.extend(slave.frames_received())
        return len(received) == len(down) and len(delivered) == len(up)

    pump(host, slave, done, corrupt=lambda i, k, d: corrupt(i + steps, k, d))
    assert received == down
    assert delivered == up
    assert host.stats.retransmissions + host.stats.busy <= 1  # one fault, one repair


@settings(max_examples=60, deadline=None)
@given(
    frame=st.binary(min_size=1, max_size=MAX_FRAME),
    host_max=st.sampled_from(CHUNK_SIZES),
    slave_max=st.sampled_from(CHUNK_SIZES),
)
def test_any_frame_round_trips_at_any_chunk_size(
    frame: bytes, host_max: int, slave_max: int
) -> None:
    host, slave = linked_pair(host_max, slave_max)
    slave._on_frame = slave.push_frame  # echo
    host.send(frame)
    pump(host, slave, lambda: bool(host._rx_frames))
    assert host.take_frames() == [frame]
    size = min(host_max, slave_max)
    expected_chunks = math.ceil(len(frame) / (size - CHUNK_OVERHEAD))
    assert host.stats.chunks_sent == host.stats.chunks_received == expected_chunks


# --- link channels (§11.2) -------------------------------------------------------------------


def linked_on(slave: I2CSlaveLink, channel: int, host_max: int = 256) -> I2CHostLink:
    host = I2CHostLink(channel=channel, max_chunk=host_max)
    pump(host, slave, lambda: host.linked)
    return host


def test_every_command_byte_carries_the_channel_in_its_high_nibble() -> None:
    slave = I2CSlaveLink(epoch=4)
    host = I2CHostLink(channel=11, max_chunk=32)
    hello = host.next_transaction()
    assert hello.write[0] == 0xB1
    pump(host, slave, lambda: host.linked)
    assert host.channel == 11
    assert slave.linked_channels == (11,)
    assert not slave.is_linked(0)
    host.send(b"p" * 30)
    seen: dict[Op, int] = {}
    slave.push_frame(11, b"g" * 30)
    for _ in range(20):
        tx, reply, _ = step(host, slave)
        seen[tx.op] = tx.write[0]
        if tx.op is not Op.GET:
            assert reply[2] >> 4 == 11  # status flags: the channel the block belongs to
        else:
            assert reply[4] >> 4 == 11  # chunk flags: same
    assert seen == {Op.PUT: 0xB3, Op.GET: 0xB4, Op.STATUS: 0xB2}
    assert slave.frames_received(11) == [b"p" * 30]
    assert slave.frames_received(0) == []


def test_channels_are_independent_links() -> None:
    slave = I2CSlaveLink(epoch=3, max_chunk=64)
    a = linked_on(slave, 0, host_max=32)
    b = linked_on(slave, 5, host_max=128)
    assert (slave.chunk_size(0), slave.chunk_size(5), slave.chunk_size(9)) == (32, 64, 32)
    up_a = [bytes([n]) * (n * 17 + 1) for n in range(10)]
    up_b = [bytes([100 + n]) * (n * 23 + 5) for n in range(10)]
    for frame in up_a:
        a.send(frame)
    for frame in up_b:
        b.send(frame)
    for n in range(10):
        slave.push_frame(0, b"A%d" % n)
        slave.push_frame(5, b"B%d" % n * 40)
    got_a: list[bytes] = []
    got_b: list[bytes] = []
    for _ in range(2_000):  # interleave transactions of both hosts, as a shared bus does
        if len(got_a) == len(got_b) == 10 and a.pending_frames == b.pending_frames == 0:
            break
        for host in (a, b):
            step(host, slave)
        got_a.extend(a.take_frames())
        got_b.extend(b.take_frames())
    assert got_a == [b"A%d" % n for n in range(10)]
    assert got_b == [b"B%d" % n * 40 for n in range(10)]
    assert slave.frames_received(0) == up_a
    assert slave.frames_received(5) == up_b


def test_status_reports_only_its_own_channel() -> None:
    slave = I2CSlaveLink(epoch=1)
    a = linked_on(slave, 0)
    b = linked_on(slave, 3)
    slave.push_frame(3, b"for b only", notify=True)
    tx, reply, outcome = step(a, slave)
    assert tx.op is Op.STATUS
    assert reply[0] == Reply.IDLE
    assert outcome is Outcome.IDLE
    _, reply, _ = step(b, slave)
    assert reply[0] == Reply.NOTIFY_PENDING
    assert slave.pending_on(3) == 1
    assert slave.pending_on(0) == 0


def test_hello_on_one_channel_resets_only_that_channel() -> None:
    connects: list[int] = []
    slave = I2CSlaveLink(epoch=2, on_connect=connects.append)
    a = linked_on(slave, 0)
    b = linked_on(slave, 7)
    slave.push_frame(0, b"kept for a")
    slave.push_frame(7, b"lost with the old link of b")
    b2 = linked_on(slave, 7)  # a new session on channel 7 (e.g. a new bridge client)
    assert connects == [0, 7, 7]
    assert slave.pending_on(7) == 0
    assert slave.pending_on(0) == 1
    pump(a, slave, lambda: bool(a._rx_frames))
    assert a.take_frames() == [b"kept for a"]
    b2.send(b"new")
    pump(b2, slave, lambda: b2.pending_frames == 0)
    assert slave.frames_received(7) == [b"new"]
    assert b.epoch == b2.epoch == slave.epoch  # the epoch is per device


def test_close_channel_ends_that_link_after_its_last_frame() -> None:
    slave = I2CSlaveLink(epoch=9)
    a = linked_on(slave, 0, host_max=32)
    b = linked_on(slave, 2)
    slave.push_frame(0, b"last words" * 10)  # several chunks
    slave.close_channel(0)
    slave.push_frame(0, b"dropped: the channel is closing")
    assert slave.stats.frames_dropped == 1
    with pytest.raises(I2CLinkResetError, match="ended the link on channel 0") as info:
        pump(a, slave, lambda: False, limit=100)
    assert "restarted" not in str(info.value).split("(")[0]
    assert a.take_frames() == [b"last words" * 10]  # delivered before the link ended
    assert slave.linked_channels == (2,)
    b.send(b"unaffected")
    pump(b, slave, lambda: b.pending_frames == 0)
    assert slave.frames_received(2) == [b"unaffected"]
    # The host reconnects with HELLO and the channel works again.
    a2 = linked_on(slave, 0)
    a2.send(b"again")
    pump(a2, slave, lambda: a2.pending_frames == 0)
    assert slave.frames_received(0) == [b"again"]
    assert slave.stats.closes == 1


def test_close_of_an_idle_channel_is_immediate() -> None:
    slave = I2CSlaveLink(epoch=9)
    a = linked_on(slave, 4)
    slave.close_channel(4)
    assert not slave.is_linked(4)
    with pytest.raises(I2CLinkResetError, match="channel 4"):
        step(a, slave)


def test_frames_pushed_on_an_unlinked_channel_are_dropped() -> None:
    slave = I2CSlaveLink()
    slave.push_frame(6, b"nobody listens")
    assert slave.pending_frames == 0
    assert slave.stats.frames_dropped == 1
    host = linked_on(slave, 6)
    tx, reply, _ = step(host, slave)
    assert tx.op is Op.STATUS
    assert reply[0] == Reply.IDLE


def test_a_write_damaged_into_another_channel_is_retransmitted_not_a_reset() -> None:
    slave = I2CSlaveLink(epoch=5)
    host = linked_on(slave, 1)
    host.send(b"payload")
    tx = host.next_transaction()
    damaged = bytearray(tx.write)
    damaged[0] ^= 0x40  # channel 1 -> channel 5, which is not linked; the CRC no longer matches
    slave.handle_write(bytes(damaged))
    reply = slave.handle_read(tx.read_len)
    assert reply[2] & StatusFlags.WRITE_ERROR
    assert not reply[2] & StatusFlags.LINKED
    assert host.handle_reply(tx, reply) is Outcome.RETRY
    pump(host, slave, lambda: host.pending_frames == 0)
    assert slave.frames_received(1) == [b"payload"]


def test_a_reply_for_another_channel_breaks_the_protocol() -> None:
    slave = I2CSlaveLink(epoch=5)
    a = linked_on(slave, 1)
    linked_on(slave, 2)
    tx = a.next_transaction()
    assert tx.op is Op.STATUS
    # The slave serves channel 2 instead (as if the command byte had been misread).
    body = bytes(((2 << 4) | Command.STATUS, 0xFF))
    slave.handle_write(body + crc16_ccitt(body).to_bytes(2, "big"))
    with pytest.raises(I2CLinkError, match="status block for channel 2 on channel 1"):
        a.handle_reply(tx, slave.handle_read(tx.read_len))


@pytest.mark.parametrize("channel", [-1, 16, 255])
def test_channel_must_be_0_to_15(channel: int) -> None:
    with pytest.raises(ValueError, match="channel"):
        I2CHostLink(channel=channel)
    with pytest.raises(ValueError, match="channel"):
        I2CSlaveLink().push_frame(channel, b"x")

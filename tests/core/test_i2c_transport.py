"""I2C transport over smbus2's real code path, with the kernel faked (PROTOCOL.md §11)."""

from __future__ import annotations

import asyncio
import fcntl
import heapq
import importlib
import itertools
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import smbus2

from rayzig_core.errors import DeviceNotFoundError, DevicePermissionError, TransportError
from rayzig_core.protocol.frames import MAX_FRAME
from rayzig_core.protocol.link import I2CLinkResetError
from rayzig_core.testing.fake_i2c import (
    BusTiming,
    FakeI2CBus,
    FakeI2CDevice,
    FaultPlan,
    fake_open_descriptors,
    install_fake_i2c,
)
from rayzig_core.transport import i2c as i2c_transport
from rayzig_core.transport.i2c import I2CConnector, I2CTransport, WorkerClock
from rayzig_core.transport.i2c_bus import FairLock, bus_lock
from tests.core.conftest import HANG_TIMEOUT, wait_for

smbus2_impl: Any = importlib.import_module("smbus2.smbus2")  # the names the fake kernel patches
ADDRESS = 0x42
FAST_POLL = 0.0005


def i2c_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("rayzig-i2c-")]


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    yield
    assert i2c_threads() == []
    assert fake_open_descriptors() == 0


def echo_bus(number: int = 1, *, faults: FaultPlan | None = None) -> FakeI2CBus:
    bus = FakeI2CBus(number, faults=faults)
    device = bus.add_device(FakeI2CDevice(ADDRESS))
    device.attach(device.push_frame)
    return bus


async def connect(bus: int = 1, address: int = ADDRESS, **kwargs: object) -> I2CTransport:
    return await I2CConnector(bus, address, poll_interval=FAST_POLL, **kwargs).connect()  # type: ignore[arg-type]


async def test_echo_round_trip_and_close_joins_the_worker() -> None:
    with echo_bus().installed():
        transport = await connect()
        try:
            assert transport.description == "i2c://1/0x42"
            assert transport.chunk_size == 256
            assert i2c_threads() == ["rayzig-i2c-1-0x42"]
            for frame in (b"\x10hello", bytes(range(256)) * 16, b"x" * MAX_FRAME):
                await transport.send(frame)
                assert await asyncio.wait_for(transport.receive(), 5) == frame
        finally:
            await transport.close()
        assert i2c_threads() == []
        with pytest.raises(TransportError, match="closed"):
            await transport.send(b"late")
        with pytest.raises(TransportError, match="closed"):
            await transport.receive()


def test_connector_description_and_validation() -> None:
    assert I2CConnector(1, 0x42).description == "i2c://1/0x42"
    assert I2CConnector(22, 0x08).description == "i2c://22/0x08"
    assert I2CConnector(1, 0x42, channel=3).description == "i2c://1/0x42#3"
    assert I2CConnector(1, 0x42, channel=0).description == "i2c://1/0x42"
    with pytest.raises(ValueError, match="channel"):
        I2CConnector(1, 0x42, channel=16)
    with pytest.raises(ValueError, match="7-bit"):
        I2CConnector(1, 0x78)
    with pytest.raises(ValueError, match="bus"):
        I2CConnector(-1, 0x42)


async def _soak(plan: FaultPlan, count: int, *, max_size: int = 700) -> FakeI2CBus:
    bus = FakeI2CBus(1, faults=plan)
    device = bus.add_device(FakeI2CDevice(ADDRESS))
    at_gateway: list[int] = []

    def on_frame(channel: int, frame: bytes) -> None:
        at_gateway.append(int.from_bytes(frame[:4], "big"))
        device.push_frame(channel, frame)

    device.attach(on_frame)
    rng = random.Random(plan.seed)
    frames = [n.to_bytes(4, "big") + rng.randbytes(rng.randint(0, max_size)) for n in range(count)]
    with bus.installed():
        transport = await connect()
        try:

            async def sender() -> None:
                for frame in frames:
                    await transport.send(frame)

            task = asyncio.create_task(sender())
            received = 0
            for expected in frames:
                got = await asyncio.wait_for(transport.receive(), 10)
                assert got == expected  # exactly once, in order, intact
                received += 1
            await task
        finally:
            await transport.close()
    assert received == count
    assert at_gateway == list(range(count))  # the gateway also saw each frame exactly once
    stats = transport.link_stats
    assert stats.frames_sent == stats.frames_received == count
    return bus


async def test_soak_with_bit_flips_and_nacks() -> None:
    plan = FaultPlan(bit_flip_rate=0.01, nack_rate=0.01, seed=2024)
    await _soak(plan, 2_000)
    injected = plan.injected
    print(f"\nsoak: {injected}")
    assert injected.bit_flips >= 20
    assert injected.nacks >= 20


async def test_soak_with_every_fault_kind() -> None:
    plan = FaultPlan(bit_flip_rate=0.02, nack_rate=0.02, busy_rate=0.02, timeout_rate=0.02, seed=99)
    await _soak(plan, 400, max_size=MAX_FRAME - 4)
    injected = plan.injected
    assert min(injected.bit_flips, injected.nacks, injected.busy, injected.timeouts) > 0


async def test_gateway_reboot_mid_stream_is_a_transport_error() -> None:
    bus = echo_bus()
    device = bus.device(ADDRESS)
    with bus.installed():
        transport = await connect()
        try:
            for n in range(20):
                await transport.send(bytes([n]) * 100)
                assert await asyncio.wait_for(transport.receive(), 5) == bytes([n]) * 100
            device.reboot()

            async def keep_going() -> None:
                while True:
                    await asyncio.wait_for(transport.send(b"after reboot" * 40), 5)
                    await asyncio.wait_for(transport.receive(), 5)

            with pytest.raises(TransportError) as info:
                await keep_going()
            assert isinstance(info.value, I2CLinkResetError)
            assert "restarted" in str(info.value)
            assert "bus 1" in str(info.value)
            assert "0x42" in str(info.value)
            with pytest.raises(I2CLinkResetError):
                await transport.receive()
        finally:
            await transport.close()
    assert device.reboots == 1


async def test_a_fresh_connection_after_reboot_works() -> None:
    bus = echo_bus()
    with bus.installed():
        first = await connect()
        bus.device(ADDRESS).reboot()
        with pytest.raises(TransportError):
            await asyncio.wait_for(first.receive(), 5)
        await first.close()
        second = await connect()
        try:
            await second.send(b"again")
            assert await asyncio.wait_for(second.receive(), 5) == b"again"
        finally:
            await second.close()
    assert bus.device(ADDRESS).connects == 2


async def test_missing_bus_names_bus_and_address() -> None:
    with FakeI2CBus(3, open_error="missing").installed():
        with pytest.raises(DeviceNotFoundError) as info:
            await connect(bus=3)
        message = str(info.value)
        assert "bus 3" in message
        assert "/dev/i2c-3" in message
        assert "0x42" in message
        assert "dtparam=i2c_arm=on" in message
        assert "raspi-config" in message
        with pytest.raises(DeviceNotFoundError, match="bus 7"):
            await connect(bus=7)  # no such bus at all


async def test_permission_denied_suggests_the_i2c_group() -> None:
    with (
        FakeI2CBus(1, open_error="permission").installed(),
        pytest.raises(DevicePermissionError) as info,
    ):
        await connect()
    message = str(info.value)
    assert "i2c group" in message
    assert "/dev/i2c-1" in message
    assert "0x42" in message
    assert "container" in message


async def test_nothing_at_the_address_suggests_i2cdetect() -> None:
    with echo_bus().installed(), pytest.raises(DeviceNotFoundError) as info:
        await connect(address=0x43)
    message = str(info.value)
    assert "0x43" in message
    assert "bus 1" in message
    assert "i2cdetect -y 1" in message


async def test_notifications_arrive_without_a_request() -> None:
    bus = echo_bus()
    device = bus.device(ADDRESS)
    with bus.installed():
        transport = await connect()
        try:
            idle = transport.stats.transactions + 5
            await wait_for(lambda: transport.stats.transactions >= idle, what="idle polls")

            def push_notes() -> None:
                for n in range(5):
                    device.push_frame(0, b"note%d" % n, notify=True)

            pusher = threading.Thread(target=push_notes)
            pusher.start()
            pusher.join()
            got = [await asyncio.wait_for(transport.receive(), 2) for _ in range(3)]
            assert got == [b"note0", b"note1", b"note2"]
        finally:
            await transport.close()


async def test_two_gateways_share_one_bus_lock() -> None:
    bus = FakeI2CBus(1)
    for address in (0x42, 0x43):
        device = bus.add_device(FakeI2CDevice(address))
        device.attach(device.push_frame)
    with bus.installed():
        first = await connect(address=0x42)
        second = await connect(address=0x43)
        try:
            assert first._lock is second._lock is bus_lock(1)
            assert sorted(i2c_threads()) == ["rayzig-i2c-1-0x42", "rayzig-i2c-1-0x43"]

            async def echo(transport: I2CTransport, tag: bytes) -> None:
                for n in range(100):
                    frame = tag + n.to_bytes(2, "big") * 50
                    await transport.send(frame)
                    assert await asyncio.wait_for(transport.receive(), 5) == frame

            await asyncio.gather(echo(first, b"A"), echo(second, b"B"))
        finally:
            await first.close()
            await second.close()


async def test_connect_failure_leaves_no_thread_or_descriptor() -> None:
    with echo_bus().installed():
        for _ in range(3):
            with pytest.raises(DeviceNotFoundError):
                await connect(address=0x50)


def test_fake_kernel_patches_only_smbus2_and_restores_it() -> None:
    with echo_bus().installed():
        assert os.open is not smbus2_impl.os.open
        assert smbus2_impl.ioctl is not fcntl.ioctl
        with smbus2.SMBus(1) as raw:
            with pytest.raises(OSError) as info:
                raw.i2c_rdwr(smbus2.i2c_msg.read(0x10, 4))
            assert info.value.errno == 121
    assert smbus2_impl.os is os
    assert smbus2_impl.ioctl is fcntl.ioctl


def test_install_nests_and_refuses_a_second_bus_with_the_same_number() -> None:
    first, other = FakeI2CBus(1), FakeI2CBus(2)
    with install_fake_i2c(first), install_fake_i2c(other):
        with pytest.raises(ValueError, match="already installed"), install_fake_i2c(FakeI2CBus(1)):
            pass
        assert smbus2_impl.os is not os
    assert smbus2_impl.os is os


def test_bus_timing_model() -> None:
    standard = BusTiming(100_000)
    # write 1 byte + read 32 bytes: 9*(2 + 33) + 2 starts + stop = 318 clocks
    assert standard.transaction_time([1, 32]) == pytest.approx(318 / 100_000 + 4.7e-6)
    fast = BusTiming(400_000)
    assert fast.bus_free_time == 1.3e-6
    assert BusTiming(1_000_000).bus_free_time == 0.5e-6
    payload = 4096
    assert fast.transaction_time([payload]) == pytest.approx(
        (9 * (payload + 1) + 2) / 400_000 + 1.3e-6
    )
    fast.record([3, 11])
    fast.record([256])
    assert fast.transactions == 2
    assert fast.bytes == 270
    assert fast.wire_bytes == 273
    assert fast.seconds == pytest.approx(
        fast.transaction_time([3, 11]) + fast.transaction_time([256])
    )


def test_bus_timing_can_sleep_in_real_time() -> None:
    timing = BusTiming(100_000, sleep=True)
    started = time.perf_counter()
    for _ in range(20):
        timing.record([4, 256])
    # A lower bound only: the model really slept (a busy machine may only add to it).
    assert time.perf_counter() - started >= timing.seconds * 0.9


def test_a_started_transaction_lasts_its_modelled_time_from_its_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The emulated device's work is inside the transaction's time, not added to it."""
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(time, "perf_counter", lambda: now[0])
    monkeypatch.setattr(time, "sleep", sleep)
    timing = BusTiming(400_000, sleep=True)
    duration = timing.transaction_time([4, 256])
    timing.record([4, 256], started=now[0] - duration / 4)
    assert slept == [pytest.approx(duration * 3 / 4)]
    # A device slower than the bus: nothing is slept, and nothing is paid back later.
    timing.record([4, 256], started=now[0] - 2 * duration)
    timing.record([4, 256])
    assert slept[1:] == [pytest.approx(duration)]
    assert timing.seconds == pytest.approx(3 * duration)


async def test_timing_and_fault_counters_through_the_transport() -> None:
    timing = BusTiming(400_000)
    plan = FaultPlan(busy_rate=0.05, seed=5)
    bus = FakeI2CBus(1, timing=timing, faults=plan)
    device = bus.add_device(FakeI2CDevice(ADDRESS))
    device.attach(device.push_frame)
    with bus.installed():
        transport = await connect()
        try:
            for _ in range(50):
                await transport.send(b"y" * 500)
                assert await asyncio.wait_for(transport.receive(), 5) == b"y" * 500
        finally:
            await transport.close()
    assert timing.transactions == bus.transactions == plan.injected.transactions
    assert plan.injected.busy == transport.link_stats.busy > 0
    assert timing.seconds > 0
    assert transport.stats.wire_seconds == pytest.approx(timing.seconds, rel=0.05)


async def test_frames_without_a_handler_are_kept_for_the_gateway() -> None:
    bus = FakeI2CBus(1)
    device = bus.add_device(FakeI2CDevice(ADDRESS))
    with bus.installed():
        transport = await connect()
        try:
            await transport.send(b"kept")
        finally:
            await transport.close()
    assert device.frames_received() == [b"kept"]


async def test_attach_with_a_loop_schedules_callbacks_there() -> None:
    loop = asyncio.get_running_loop()
    bus = FakeI2CBus(1)
    device = bus.add_device(FakeI2CDevice(ADDRESS))
    seen: list[tuple[bytes, bool]] = []
    connected = asyncio.Event()

    def on_frame(channel: int, frame: bytes) -> None:
        seen.append((frame, threading.current_thread() is threading.main_thread()))
        device.push_frame(channel, frame.upper())

    device.attach(on_frame, on_connect=lambda channel: connected.set(), loop=loop)
    with bus.installed():
        transport = await connect()
        try:
            await asyncio.wait_for(connected.wait(), 2)
            await transport.send(b"abc")
            assert await asyncio.wait_for(transport.receive(), 5) == b"ABC"
        finally:
            await transport.close()
    assert seen == [(b"abc", True)]


async def test_a_device_that_only_answers_busy_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(i2c_transport, "HELLO_BUSY_TIMEOUT", 0.2)
    bus = echo_bus()
    bus.device(ADDRESS).busy = True
    with bus.installed(), pytest.raises(TransportError, match="only answers BUSY") as info:
        await connect()
    assert "0x42" in str(info.value)


async def test_a_gateway_busy_for_too_long_ends_the_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(i2c_transport, "BUSY_TIMEOUT", 0.2)
    bus = echo_bus()
    with bus.installed():
        transport = await connect()
        try:
            bus.device(ADDRESS).busy = True
            with pytest.raises(TransportError, match="busy"):
                await asyncio.wait_for(transport.receive(), 5)
        finally:
            await transport.close()


async def test_channels_share_one_gateway_and_one_bus() -> None:
    bus = FakeI2CBus(1)
    device = bus.add_device(FakeI2CDevice(ADDRESS))
    connects: list[int] = []
    device.attach(device.push_frame, on_connect=connects.append)  # echo on every channel
    with bus.installed():
        transports = [await connect(channel=channel) for channel in (0, 3, 15)]
        try:
            assert [t.description for t in transports] == [
                "i2c://1/0x42",
                "i2c://1/0x42#3",
                "i2c://1/0x42#15",
            ]
            assert sorted(i2c_threads()) == [
                "rayzig-i2c-1-0x42",
                "rayzig-i2c-1-0x42#15",
                "rayzig-i2c-1-0x42#3",
            ]
            assert device.link.linked_channels == (0, 3, 15)

            async def echo(transport: I2CTransport) -> None:
                tag = bytes([transport.channel])
                for n in range(60):
                    frame = tag + n.to_bytes(2, "big") * (n * 7 + 1)
                    await transport.send(frame)
                    assert await asyncio.wait_for(transport.receive(), 5) == frame

            await asyncio.gather(*(echo(t) for t in transports))
            # A new session on channel 3 resets channel 3 only.
            await transports[1].close()
            transports[1] = await connect(channel=3)
            await asyncio.gather(*(echo(t) for t in transports))
        finally:
            for transport in transports:
                await transport.close()
    assert sorted(connects) == [0, 3, 3, 15]


async def test_gateway_closing_a_channel_ends_only_that_transport() -> None:
    bus = echo_bus()
    device = bus.device(ADDRESS)
    with bus.installed():
        first = await connect()
        second = await connect(channel=1)
        try:
            device.push_frame(1, b"goodbye")
            device.close_channel(1)
            assert await asyncio.wait_for(second.receive(), 5) == b"goodbye"
            with pytest.raises(I2CLinkResetError, match="ended the link on channel 1"):
                await asyncio.wait_for(second.receive(), 5)
            await first.send(b"still here")
            assert await asyncio.wait_for(first.receive(), 5) == b"still here"
        finally:
            await first.close()
            await second.close()


def test_bus_lock_is_fair() -> None:
    lock = FairLock()
    order: list[int] = []
    lock.acquire()
    threads = []
    for n in range(5):
        thread = threading.Thread(target=lambda n=n: _take(lock, order, n))
        thread.start()
        threads.append(thread)
        deadline = time.monotonic() + HANG_TIMEOUT  # turns a hang into a failure
        while lock.waiting != n + 1:  # wait until thread n is queued
            assert time.monotonic() < deadline, f"thread {n} never queued for the lock"
            time.sleep(0.001)
    lock.release()
    for thread in threads:
        thread.join(5)
    assert order == [0, 1, 2, 3, 4]  # first come, first served
    assert not lock.locked()
    with pytest.raises(RuntimeError):
        lock.release()


def _take(lock: FairLock, order: list[int], n: int) -> None:
    with lock:
        order.append(n)


def test_threads_on_one_bus_lock_take_turns() -> None:
    """Two workers hammering one bus alternate transaction by transaction (no starvation)."""
    bus = echo_bus(5)
    log: list[int] = []
    start = threading.Barrier(2)

    def worker(tag: int) -> None:
        lock = bus_lock(5)
        with smbus2.SMBus(5) as raw:
            start.wait()
            for _ in range(2_000):
                with lock:  # exactly what I2CTransport._execute does
                    raw.i2c_rdwr(smbus2.i2c_msg.write(ADDRESS, b"\x02\xff\x00\x00"))
                    log.append(tag)

    with bus.installed():
        threads = [threading.Thread(target=worker, args=(tag,)) for tag in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    # From the moment the second worker got the CPU until the first one finished:
    first_switch = next(i for i, tag in enumerate(log) if tag != log[0])
    last_switch = max(i for i, tag in enumerate(log) if tag != log[-1])
    runs = [len(list(group)) for _, group in itertools.groupby(log[first_switch:last_switch])]
    assert len(runs) > 100
    # Strict alternation, except where the OS preempted a worker outside the lock (loaded CI).
    assert sum(run <= 2 for run in runs) >= 0.9 * len(runs), runs


# --- poll pacing: prompt after a send, backing off while idle (§11.10) ----------------------------


class SteppedClock(WorkerClock):
    """A fake clock for the transport's worker: a wait moves it on at once, running what falls due.

    Each wait still yields the thread for a moment of real time, so the loop can queue frames;
    nothing measures real time. ``late`` holds, for every callback run, how long after it was due
    the worker looked at the bus again: how long a frame pushed then waits to be polled.
    """

    def __init__(self) -> None:
        self.t = 0.0
        self.waits: list[tuple[float, float]] = []
        """(time, seconds) of every wait the worker asked for."""
        self.late: list[float] = []
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._lock = threading.Lock()

    def now(self) -> float:
        return self.t

    def call_later(self, seconds: float, callback: Callable[[], None]) -> None:
        with self._lock:
            heapq.heappush(self._timers, (self.t + seconds, next(self._order), callback))

    def wait(self, condition: threading.Condition, seconds: float) -> None:
        self.waits.append((self.t, seconds))
        end = self.t + seconds
        while True:
            with self._lock:
                if not self._timers or self._timers[0][0] > end:
                    break
                due, _, callback = heapq.heappop(self._timers)
            self.t = max(self.t, due)
            callback()
            self.late.append(end - due)
        self.t = end
        condition.wait(0.0001)

    async def reach(self, moment: float) -> None:
        """Wait (for events, not for a length of time) until the worker's clock is at ``moment``."""
        await wait_for(lambda: self.t >= moment, what=f"the worker's clock at {moment}")


async def test_notifications_do_not_end_the_wait_for_an_answer() -> None:
    """A notification that comes while a request is out is not its answer: polling stays prompt."""
    clock = SteppedClock()
    bus = FakeI2CBus(1)
    device = bus.add_device(FakeI2CDevice(ADDRESS))

    def notify_then_answer_later(channel: int, frame: bytes) -> None:
        device.push_frame(channel, b"note", notify=True)
        # A slow mesh: 40 ms to answer.
        clock.call_later(0.040, lambda: device.push_frame(channel, b"re:" + frame))

    device.attach(notify_then_answer_later)
    with bus.installed():
        # Counting the notification as the answer, polling would back off (2, 6, 14, 30 ms...)
        # and the answer would wait some 20 ms for a poll.
        transport = await I2CConnector(1, ADDRESS, poll_interval=0.002, clock=clock).connect()
        try:
            for n in range(5):
                await clock.reach(clock.t + 0.3)  # idle first: polling has backed off
                await transport.send(b"q%d" % n)
                assert await asyncio.wait_for(transport.receive(), HANG_TIMEOUT) == b"note"
                assert await asyncio.wait_for(transport.receive(), HANG_TIMEOUT) == b"re:q%d" % n
            # Prompt polling finds each answer at the next prompt poll.
            assert len(clock.late) == 5
            assert max(clock.late) <= i2c_transport.PROMPT_POLL + 1e-9, clock.late
            assert transport.link_stats.notifications_received == 5
        finally:
            await transport.close()


async def test_an_idle_transport_backs_off_its_polling() -> None:
    clock = SteppedClock()
    with echo_bus().installed():
        transport = await I2CConnector(1, ADDRESS, poll_interval=0.002, clock=clock).connect()
        try:
            for phase in ("after connecting", "after a round trip"):
                start = clock.t + 0.3  # any prompt window has ended, back-off is under way
                await clock.reach(start + 1.0)
                polls = sum(1 for at, _ in clock.waits if start <= at < start + 1.0)
                # Backed off to MAX_IDLE_POLL (50 ms): about 20 polls a second, never hundreds.
                assert polls <= 1.0 / i2c_transport.MAX_IDLE_POLL + 1, phase
                assert clock.waits[-1][1] == pytest.approx(i2c_transport.MAX_IDLE_POLL), phase
                await transport.send(b"ping")
                assert await asyncio.wait_for(transport.receive(), HANG_TIMEOUT) == b"ping"
        finally:
            await transport.close()


async def test_an_answer_after_a_send_is_found_promptly() -> None:
    clock = SteppedClock()
    bus = FakeI2CBus(1)
    device = bus.add_device(FakeI2CDevice(ADDRESS))

    def answer_later(channel: int, frame: bytes) -> None:
        # A slow gateway: 40 ms to answer.
        clock.call_later(0.040, lambda: device.push_frame(channel, b"re:" + frame))

    device.attach(answer_later)
    with bus.installed():
        # With the back-off alone the polls come at about 2, 6, 14, 30 and 62 ms after the send,
        # so this answer would wait some 20 ms for the fifth.
        transport = await I2CConnector(1, ADDRESS, poll_interval=0.002, clock=clock).connect()
        try:
            for n in range(5):
                await clock.reach(clock.t + 0.3)  # idle first: polling has backed off
                await transport.send(b"q%d" % n)
                assert await asyncio.wait_for(transport.receive(), HANG_TIMEOUT) == b"re:q%d" % n
            assert len(clock.late) == 5
            assert max(clock.late) <= i2c_transport.PROMPT_POLL + 1e-9, clock.late
        finally:
            await transport.close()

"""Every permission of the matrix (PROTOCOL.md §7), enforced by the virtual gateway.

One gateway for the module, with a user of each level created through AddUser and paired; every
request type is tried by every level over a real loopback session: allowed requests take effect,
refused ones raise PermissionDeniedError and change nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rayzig_core.client import ClientCredentials, RayzigClient
from rayzig_core.errors import InvalidRequestError, PermissionDeniedError
from rayzig_core.firmware import build_manifest, crc32, generate_signing_key, sign_manifest
from rayzig_core.models import FirmwarePart, RestorePreset, UserLevel, UserLimitation
from rayzig_core.permissions import PERMISSIONS, Permission, allowed
from rayzig_core.protocol import messages as m
from rayzig_core.testing.gateway import GatewayThread
from rayzig_core.virtual_gateway import HARDWARE, VirtualGateway
from tests.core.conftest import (
    LEVELS,
    OWNER,
    OWNER_PASSWORD,
    PASSWORDS,
    SCRYPT_N,
    add_users_sync,
    connected,
    output_state,
    pair,
    pair_sync,
    switchable_output,
)

ACTORS = {level: name for name, level in LEVELS.items()}
"""The user acting at each level: ursula (User), adam (Administrator), sybil (System), utility."""

P = Permission
SPECIFIED: dict[UserLevel, set[Permission]] = {
    UserLevel.USER: {P.READ, P.READ_EVENTS, P.SWITCH},
    UserLevel.ADMINISTRATOR: {
        P.READ, P.READ_EVENTS, P.SWITCH, P.SET_PRESET, P.MANAGE_USERS, P.MANAGE_UTILITY,
        P.MANAGE_CLIENTS,
    },
    UserLevel.SYSTEM: {
        P.READ, P.READ_EVENTS, P.SWITCH, P.SET_PRESET, P.MANAGE_USERS, P.MANAGE_UTILITY,
        P.MANAGE_CLIENTS, P.MANAGE_ADMINS, P.FIRMWARE, P.SYSTEM_SETTINGS,
    },
    UserLevel.UTILITY: {P.READ, P.READ_EVENTS, P.SWITCH_UTILITY},
}  # fmt: skip
"""The matrix of PROTOCOL.md §7.2 (User: switch and read; Administrator: + presets and User
management; System: + firmware, system settings, Administrator management; Utility: telemetry,
events and utility-controllable outputs only)."""


def test_matrix_is_the_specified_one() -> None:
    assert {level: set(perms) for level, perms in PERMISSIONS.items()} == SPECIFIED


@dataclass
class Ctx:
    """The module's gateway and everyone's credentials (updated when a test re-pairs a user)."""

    gw: GatewayThread
    creds: dict[str, ClientCredentials]
    signing_key: bytes
    versions: Iterator[int] = field(default_factory=lambda: itertools.count(8))
    names: Iterator[int] = field(default_factory=itertools.count)

    def image(self) -> tuple[m.FirmwareBegin, bytes, str]:
        """A signed TFT image newer than any installed so far."""
        version = f"1.0.{next(self.versions)}"
        image = version.encode() * 40
        manifest = build_manifest(
            hardware=HARDWARE,
            part=FirmwarePart.TFT,
            version=version,
            security_version=1,
            image=image,
        )
        signed = sign_manifest(self.signing_key, manifest)
        return m.FirmwareBegin(signed.manifest, signed.signature), image, version

    def fresh_name(self, prefix: str) -> str:
        return f"{prefix}{next(self.names)}"


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ctx]:
    signing_key, public_key = generate_signing_key()
    path: Path = tmp_path_factory.mktemp("permissions") / "gw.json"
    gw = GatewayThread(path, scrypt_n=SCRYPT_N, trusted_update_keys=(public_key,)).start()
    try:
        gw.setup_owner(OWNER_PASSWORD)
        add_users_sync(gw, list(LEVELS))
        creds = {name: pair_sync(gw, name, PASSWORDS[name]) for name in LEVELS}
        creds[OWNER] = pair_sync(gw, OWNER, OWNER_PASSWORD)
        yield Ctx(gw, creds, signing_key)
    finally:
        gw.stop()


def users(ctx: Ctx) -> dict[str, UserLevel]:
    return ctx.gw.call(lambda g: {name: u.level for name, u in g.users.items()})


def client_ids(ctx: Ctx) -> set[int]:
    return ctx.gw.call(lambda g: set(g.clients))


def utility_output(ctx: Ctx) -> tuple[int, int]:
    def find(g: VirtualGateway) -> tuple[int, int]:
        for module in g.site.modules():
            if module.kind.name == "MAINS":
                for output in module.outputs:
                    if output.utility_controllable:
                        return module.module_id, output.index
        raise AssertionError("no utility-controllable mains output")

    return ctx.gw.call(find)


def other_output(ctx: Ctx, avoid: tuple[int, int]) -> tuple[int, int]:
    def find(g: VirtualGateway) -> tuple[int, int]:
        for module in reversed(g.site.modules()):
            if module.kind.name == "MAINS":
                for output in module.outputs:
                    place = (module.module_id, output.index)
                    if not output.utility_controllable and place != avoid:
                        return place
        raise AssertionError("no second output")

    return ctx.gw.call(find)


async def restore_utility_user(ctx: Ctx, owner: RayzigClient) -> None:
    """Make sure the Utility user exists and its credentials are current."""
    if "utility" not in users(ctx):
        await owner.add_user("utility", UserLevel.UTILITY, PASSWORDS["utility"])
    if ctx.creds["utility"].client_id not in client_ids(ctx):
        ctx.creds["utility"] = (await pair(ctx.gw, "utility", PASSWORDS["utility"]))[1]


Op = Callable[[Ctx, RayzigClient, RayzigClient, bool], Awaitable[None]]
"""(context, actor, owner, expected to be allowed): performs the request as the actor, checks its
effect when allowed, or that nothing changed when it was refused (the refusal propagates)."""


async def op_ping(ctx: Ctx, actor: RayzigClient, owner: RayzigClient, ok: bool) -> None:
    assert await actor.request(m.Ping()) == m.Ok()


async def op_get_info(ctx: Ctx, actor: RayzigClient, owner: RayzigClient, ok: bool) -> None:
    info = await actor.get_info()
    assert info.serial == ctx.gw.call(lambda g: g.serial)


async def op_list_modules(ctx: Ctx, actor: RayzigClient, owner: RayzigClient, ok: bool) -> None:
    assert len(await actor.list_modules()) == 12


async def op_get_telemetry(ctx: Ctx, actor: RayzigClient, owner: RayzigClient, ok: bool) -> None:
    assert (await actor.get_telemetry(1)).reachable is True


async def op_firmware_versions(
    ctx: Ctx, actor: RayzigClient, owner: RayzigClient, ok: bool
) -> None:
    assert {v.part for v in await actor.firmware_versions()} == set(FirmwarePart)


async def op_read_events(ctx: Ctx, actor: RayzigClient, owner: RayzigClient, ok: bool) -> None:
    batch = await actor.read_events(1, 0)
    assert batch.events
    assert batch.events[0].seq == batch.oldest_seq


async def op_switch(ctx: Ctx, actor: RayzigClient, owner: RayzigClient, ok: bool) -> None:
    module_id, index = switchable_output(ctx.gw)
    before = output_state(ctx.gw, module_id, index)
    try:
        result = await actor.set_output(module_id, index, not before)
        assert result.is_on is (not before)
    finally:
        assert output_state(ctx.gw, module_id, index) is (before is not ok)


async def op_switch_utility_output(
    ctx: Ctx, actor: RayzigClient, owner: RayzigClient, ok: bool
) -> None:
    module_id, index = utility_output(ctx)
    before = output_state(ctx.gw, module_id, index)
    try:
        await actor.set_output(module_id, index, not before)
    finally:
        assert output_state(ctx.gw, module_id, index) is (before is not ok)


async def op_set_preset(ctx: Ctx, actor: RayzigClient, owner: RayzigClient, ok: bool) -> None:
    module_id, index = switchable_output(ctx.gw)
    before = ctx.gw.call(lambda g: g.site.module(module_id).outputs[index].preset)
    wanted = RestorePreset.ON if before is not RestorePreset.ON else RestorePreset.OFF
    try:
        assert (await actor.set_restore_preset(module_id, index, wanted)).preset is wanted
    finally:
        after = ctx.gw.call(lambda g: g.site.module(module_id).outputs[index].preset)
        assert after is (wanted if ok else before)


async def op_mark_utility_output(
    ctx: Ctx, actor: RayzigClient, owner: RayzigClient, ok: bool
) -> None:
    module_id, index = other_output(ctx, switchable_output(ctx.gw))
    try:
        result = await actor.set_utility_output(module_id, index, controllable=True)
        assert result.utility_controllable is True
    finally:
        marked = ctx.gw.call(lambda g: g.site.module(module_id).outputs[index].utility_controllable)
        assert marked is ok
        await owner.set_utility_output(module_id, index, controllable=False)


async def op_list_users(ctx: Ctx, actor: RayzigClient, owner: RayzigClient, ok: bool) -> None:
    listed = {u.name: u.level for u in await actor.list_users()}
    assert listed == users(ctx)


def op_add_user(level: UserLevel) -> Op:
    async def run(ctx: Ctx, actor: RayzigClient, owner: RayzigClient, ok: bool) -> None:
        name = ctx.fresh_name(f"new-{level.name.lower()}-")
        try:
            await actor.add_user(name, level, PASSWORDS["sybil"])
            assert users(ctx)[name] is level
        finally:
            assert (name in users(ctx)) is ok
            if ok:
                await owner.delete_user(name)

    return run


def op_delete_user(level: UserLevel) -> Op:
    async def run(ctx: Ctx, actor: RayzigClient, owner: RayzigClient, ok: bool) -> None:
        name = ctx.fresh_name(f"old-{level.name.lower()}-")
        await owner.add_user(name, level, PASSWORDS["sybil"])
        try:
            await actor.delete_user(name)
        finally:
            assert (name not in users(ctx)) is ok
            if not ok:
                await owner.delete_user(name)

    return run


async def op_add_utility_user(ctx: Ctx, actor: RayzigClient, owner: RayzigClient, ok: bool) -> None:
    if ok:
        await owner.delete_user("utility")  # a site has at most one Utility user
    before = users(ctx)
    try:
        await actor.add_user("utility", UserLevel.UTILITY, PASSWORDS["utility"])
        assert users(ctx)["utility"] is UserLevel.UTILITY
    finally:
        if not ok:
            assert users(ctx) == before
        await restore_utility_user(ctx, owner)


async def op_delete_utility_user(
    ctx: Ctx, actor: RayzigClient, owner: RayzigClient, ok: bool
) -> None:
    try:
        await actor.delete_user("utility")
    finally:
        assert ("utility" not in users(ctx)) is ok
        await restore_utility_user(ctx, owner)


async def op_set_user_limitation(
    ctx: Ctx, actor: RayzigClient, owner: RayzigClient, ok: bool
) -> None:
    name = ctx.fresh_name("limited-")
    await owner.add_user(name, UserLevel.USER, PASSWORDS["sybil"])
    limitation = UserLimitation((1,), read_only=True)
    try:
        await actor.set_user_limitation(name, limitation)
    finally:
        stored = ctx.gw.call(lambda g: g.users[name].limitation)
        assert stored == (limitation if ok else None)
        await owner.delete_user(name)


async def op_get_user_limitation(
    ctx: Ctx, actor: RayzigClient, owner: RayzigClient, ok: bool
) -> None:
    name = ctx.fresh_name("limited-")
    await owner.add_user(name, UserLevel.USER, PASSWORDS["sybil"])
    try:
        await owner.set_user_limitation(name, UserLimitation((2,)))
        assert await actor.get_user_limitation(name) == UserLimitation((2,))
    finally:
        await owner.delete_user(name)


async def op_get_own_limitation(
    ctx: Ctx, actor: RayzigClient, owner: RayzigClient, ok: bool
) -> None:
    assert await actor.get_user_limitation() is None


async def op_list_clients(ctx: Ctx, actor: RayzigClient, owner: RayzigClient, ok: bool) -> None:
    assert {c.client_id for c in await actor.list_clients()} == client_ids(ctx)


async def op_revoke_other_client(
    ctx: Ctx, actor: RayzigClient, owner: RayzigClient, ok: bool
) -> None:
    # A User's key: every level holding manage_clients may manage Users (keys of higher levels
    # need the permission for that level too: test_hardening).
    _, victim = await pair(ctx.gw, "ursula", PASSWORDS["ursula"])
    try:
        await actor.revoke_client(victim.client_id)
    finally:
        assert (victim.client_id not in client_ids(ctx)) is ok
        if not ok:
            await owner.revoke_client(victim.client_id)


async def op_revoke_own_client(
    ctx: Ctx, actor: RayzigClient, owner: RayzigClient, ok: bool
) -> None:
    assert actor.credentials is not None
    user = actor.credentials.user
    _, mine = await pair(ctx.gw, user, PASSWORDS[user])
    async with await connected(ctx.gw, mine) as client:
        await client.revoke_client(0)
    assert mine.client_id not in client_ids(ctx)


async def op_firmware_begin(ctx: Ctx, actor: RayzigClient, owner: RayzigClient, ok: bool) -> None:
    begin, image, _ = ctx.image()
    progress = await actor.request(begin)
    assert progress == m.FirmwareProgress(FirmwarePart.TFT, 0, len(image))


async def op_firmware_chunk(ctx: Ctx, actor: RayzigClient, owner: RayzigClient, ok: bool) -> None:
    begin, image, _ = ctx.image()
    await owner.request(begin)
    try:
        progress = await actor.request(m.FirmwareChunk(FirmwarePart.TFT, 0, image, crc32(image)))
        assert progress == m.FirmwareProgress(FirmwarePart.TFT, len(image), len(image))
    finally:
        held = ctx.gw.call(lambda g: g.firmware.progress(FirmwarePart.TFT))
        assert held == (FirmwarePart.TFT, len(image) if ok else 0, len(image))


async def op_firmware_commit(ctx: Ctx, actor: RayzigClient, owner: RayzigClient, ok: bool) -> None:
    begin, image, version = ctx.image()
    await owner.request(begin)
    await owner.request(m.FirmwareChunk(FirmwarePart.TFT, 0, image, crc32(image)))
    try:
        await actor.request(m.FirmwareCommit(FirmwarePart.TFT))
    finally:
        installed = {v.part: v.version for v in await owner.firmware_versions()}
        assert (installed[FirmwarePart.TFT] == version) is ok


OPS: dict[str, tuple[Op, tuple[Permission, ...]]] = {
    "ping": (op_ping, ()),
    "get_info": (op_get_info, ()),
    "list_modules": (op_list_modules, (P.READ,)),
    "get_telemetry": (op_get_telemetry, (P.READ,)),
    "firmware_versions": (op_firmware_versions, (P.READ,)),
    "read_events": (op_read_events, (P.READ_EVENTS,)),
    "switch_output": (op_switch, (P.SWITCH,)),
    "switch_utility_output": (op_switch_utility_output, (P.SWITCH, P.SWITCH_UTILITY)),
    "set_restore_preset": (op_set_preset, (P.SET_PRESET,)),
    "set_utility_output": (op_mark_utility_output, (P.MANAGE_UTILITY,)),
    "list_users": (op_list_users, (P.MANAGE_USERS,)),
    "add_user": (op_add_user(UserLevel.USER), (P.MANAGE_USERS,)),
    "add_administrator": (op_add_user(UserLevel.ADMINISTRATOR), (P.MANAGE_ADMINS,)),
    "add_system": (op_add_user(UserLevel.SYSTEM), (P.MANAGE_ADMINS,)),
    "add_utility": (op_add_utility_user, (P.MANAGE_UTILITY,)),
    "delete_user": (op_delete_user(UserLevel.USER), (P.MANAGE_USERS,)),
    "delete_administrator": (op_delete_user(UserLevel.ADMINISTRATOR), (P.MANAGE_ADMINS,)),
    "delete_system": (op_delete_user(UserLevel.SYSTEM), (P.MANAGE_ADMINS,)),
    "delete_utility": (op_delete_utility_user, (P.MANAGE_UTILITY,)),
    "set_user_limitation": (op_set_user_limitation, (P.MANAGE_USERS,)),
    "get_user_limitation": (op_get_user_limitation, (P.MANAGE_USERS,)),
    "get_own_limitation": (op_get_own_limitation, ()),
    "list_clients": (op_list_clients, (P.MANAGE_CLIENTS,)),
    "revoke_other_client": (op_revoke_other_client, (P.MANAGE_CLIENTS,)),
    "revoke_own_client": (op_revoke_own_client, ()),
    "firmware_begin": (op_firmware_begin, (P.FIRMWARE,)),
    "firmware_chunk": (op_firmware_chunk, (P.FIRMWARE,)),
    "firmware_commit": (op_firmware_commit, (P.FIRMWARE,)),
}
"""Every request type of the catalogue that needs a session, with the permissions that allow it
(any one suffices; none means every authenticated level)."""


def test_every_request_type_is_in_the_matrix_tests() -> None:
    pre_auth = {m.Pair, m.ChangePassword, m.RecoverPassword}
    requests = {cls for cls in m.CATALOGUE.values() if issubclass(cls, m.Request)}
    exercised = {
        m.Ping, m.GetInfo, m.ListModules, m.GetTelemetry, m.GetFirmware, m.ReadEvents,
        m.SetOutput, m.SetRestorePreset, m.SetUtilityOutput, m.ListUsers, m.AddUser,
        m.DeleteUser, m.ListClients, m.RevokeClient, m.FirmwareBegin, m.FirmwareChunk,
        m.FirmwareCommit, m.SetUserLimitation, m.GetUserLimitation,
    }  # fmt: skip
    assert requests - pre_auth == exercised


@pytest.mark.parametrize("level", list(ACTORS), ids=lambda level: level.name.lower())
@pytest.mark.parametrize("op_name", list(OPS))
async def test_permission_is_enforced_by_the_gateway(
    ctx: Ctx, level: UserLevel, op_name: str
) -> None:
    op, needs = OPS[op_name]
    expected = not needs or any(allowed(level, p) for p in needs)
    actor_name = ACTORS[level]
    async with (
        await connected(ctx.gw, ctx.creds[actor_name]) as actor,
        await connected(ctx.gw, ctx.creds[OWNER]) as owner,
    ):
        assert actor.info is not None
        assert actor.info.level is level
        if expected:
            await op(ctx, actor, owner, expected)
        else:
            with pytest.raises(PermissionDeniedError) as caught:
                await op(ctx, actor, owner, expected)
            assert caught.value.code == m.ErrorCode.PERMISSION_DENIED
        # A refusal is an answer, not a broken session.
        assert actor.stats.disconnects == 0
        assert (await actor.get_info()).user == actor_name


async def test_utility_user_switches_only_outputs_the_owner_marks(ctx: Ctx) -> None:
    async with (
        await connected(ctx.gw, ctx.creds["adam"]) as admin,
        await connected(ctx.gw, ctx.creds["utility"]) as utility,
    ):
        module_id, index = other_output(ctx, switchable_output(ctx.gw))
        before = output_state(ctx.gw, module_id, index)
        with pytest.raises(PermissionDeniedError):
            await utility.set_output(module_id, index, not before)
        await admin.set_utility_output(module_id, index, controllable=True)
        assert (await utility.set_output(module_id, index, not before)).is_on is (not before)
        await admin.set_utility_output(module_id, index, controllable=False)
        with pytest.raises(PermissionDeniedError):
            await utility.set_output(module_id, index, before)
        assert output_state(ctx.gw, module_id, index) is (not before)
        # The Utility user still reads telemetry and events.
        assert (await utility.get_telemetry(module_id)).reachable is True
        assert (await utility.read_events(module_id, 0)).newest_seq >= 1


async def test_a_site_has_one_utility_user_and_names_are_checked(ctx: Ctx) -> None:
    async with await connected(ctx.gw, ctx.creds[OWNER]) as owner:
        with pytest.raises(InvalidRequestError):
            await owner.add_user("second-utility", UserLevel.UTILITY, PASSWORDS["utility"])
        with pytest.raises(InvalidRequestError):
            await owner.add_user("x" * 33, UserLevel.USER, PASSWORDS["sybil"])
        with pytest.raises(InvalidRequestError):
            await owner.add_user("ursula", UserLevel.USER, PASSWORDS["sybil"])
    assert "second-utility" not in users(ctx)
    assert users(ctx)["ursula"] is UserLevel.USER


async def test_last_system_user_cannot_be_deleted(owned: GatewayThread) -> None:
    _, credentials = await pair(owned)
    async with await connected(owned, credentials) as owner:
        with pytest.raises(InvalidRequestError):
            await owner.delete_user(OWNER)
        assert OWNER in {u.name for u in await owner.list_users()}

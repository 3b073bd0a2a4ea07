"""The keys that sign links (service/reads/signing_keys.py, migration 0007), on a real
PostgreSQL: made once by the migration, shared by instances, rotated without refusing the
links signed before."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from service.domain.signing import file_path, sign, verify
from service.errors import LinkRefused
from service.reads.signing_keys import RETIRED_AFTER, KeyringCache, keyring, rotate

NOW = 1_800_000_000
PATH = file_path("rec_1", 1)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        yield pool
    finally:
        await pool.close()


async def test_the_migration_makes_one_random_key(pool: asyncpg.Pool) -> None:
    """A migrated database holds exactly one key of 32 bytes, which signs."""
    keys = await keyring(pool)
    assert list(keys.secrets) == [keys.current]
    secret = keys.secrets[keys.current]
    assert len(secret) == 32
    assert len(set(secret)) > 8, "not random"


async def test_two_instances_agree(pool: asyncpg.Pool) -> None:
    """A link minted through one instance's cache checks through another's."""
    one, other = KeyringCache(), KeyringCache()
    link = sign(await one.get(pool), PATH, now=NOW)
    verify(
        await other.checking(pool, link.signature.split(".")[0]),
        PATH,
        str(link.expires),
        link.signature,
        now=NOW,
    )


async def test_rotation_signs_with_the_new_key_and_checks_the_old(pool: asyncpg.Pool) -> None:
    """After a rotation, an instance that has not read the keys since still signs with the
    old key; another that meets a link of the new key reads the keys again (once) and
    checks it; the old key's links still check."""
    stale, fresh = KeyringCache(), KeyringCache()
    old_link = sign(await stale.get(pool), PATH, now=NOW)
    await fresh.get(pool)
    new_id = await rotate(pool)
    assert (await keyring(pool)).current == new_id
    new_link = sign(await keyring(pool), PATH, now=NOW)
    assert new_link.signature.startswith(f"{new_id}.")
    fresh._read_at -= KeyringCache.RELOAD + 1  # as if its last read were over a second ago
    checking = await fresh.checking(pool, new_id)
    verify(checking, PATH, str(new_link.expires), new_link.signature, now=NOW)
    verify(checking, PATH, str(old_link.expires), old_link.signature, now=NOW)
    assert (await stale.get(pool)).current != new_id, "read again before its TTL"


async def test_unknown_key_ids_are_read_at_most_once_a_second(pool: asyncpg.Pool) -> None:
    """Links naming made-up keys do not make a query each: within a second of the last
    read, the cached keyring answers (and refuses them)."""
    cache = KeyringCache()
    await cache.get(pool)
    new_id = await rotate(pool)
    link = sign(await keyring(pool), PATH, now=NOW)
    not_yet = await cache.checking(pool, new_id)
    assert new_id not in not_yet.secrets
    with pytest.raises(LinkRefused, match="no longer kept"):
        verify(not_yet, PATH, str(link.expires), link.signature, now=NOW)


async def test_rotation_deletes_keys_retired_long_ago(pool: asyncpg.Pool) -> None:
    """A rotation deletes the keys whose successor was made more than RETIRED_AFTER ago,
    and keeps the one it replaces."""
    first = (await keyring(pool)).current
    second = await rotate(pool)
    await pool.execute(
        "UPDATE signing_keys SET created_at = created_at - $1::interval",
        timedelta(seconds=RETIRED_AFTER + 60),
    )
    third = await rotate(pool)
    keys = await keyring(pool)
    assert set(keys.secrets) == {second, third}
    assert first not in keys.secrets
    assert keys.current == third

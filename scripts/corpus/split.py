"""The seeded split: packages (by name) and documents (by id) fall into
train, dev or test by a keyed hash, and every ordering the builder needs is a
keyed hash too, so that one item's place never depends on the others."""

import hashlib

SPLITS = ("train", "dev", "test")
DEV_SHARE, TEST_SHARE = 0.05, 0.05


def _unit(seed: int, namespace: str, name: str) -> float:
    digest = hashlib.sha256(f"{seed}\n{namespace}\n{name}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(name: str, seed: int, namespace: str = "package") -> str:
    """train (90%), dev (5%) or test (5%) for a package name or document id."""
    u = _unit(seed, namespace, name)
    if u < 1 - DEV_SHARE - TEST_SHARE:
        return "train"
    return "dev" if u < 1 - TEST_SHARE else "test"


def order(key: str, seed: int, purpose: str = "") -> bytes:
    """Position of an item in a seeded shuffle (ties broken by the caller)."""
    prefix = f"{purpose}\n" if purpose else ""
    return hashlib.sha256(f"{seed}\n{prefix}{key}".encode("utf-8")).digest()


def seeded(keys, seed: int, purpose: str = "") -> list:
    """The keys in seeded order."""
    return sorted(keys, key=lambda k: (order(k, seed, purpose), k))

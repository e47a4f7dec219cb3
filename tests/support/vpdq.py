"""vpdq frame lists for tests: random but reproducible frames, their digest and the signal."""

import hashlib
import random

import rfc8785


def random_frames(count: int, *, seed: int = 1) -> list[list]:
    rng = random.Random(seed)
    number, time_ms, frames = 0, 0, []
    for _ in range(count):
        frames.append([number, rng.randint(0, 100), rng.randbytes(32).hex(), time_ms])
        number += rng.randint(1, 40)
        time_ms += rng.randint(0, 1500)
    return frames


def digest_of(frames: list[list]) -> str:
    return hashlib.sha256(rfc8785.dumps(frames)).hexdigest()


def vpdq_signal(frames: list[list]) -> dict:
    return {"type": "vpdq", "value": digest_of(frames), "frames": frames}

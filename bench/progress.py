"""What `make bench` is doing now, how long it has taken and about how long is left.

The estimate comes from the section times of the newest earlier result (bench/results/*.json,
``section_seconds``): the machine is noisy, so it is only a guide. Lines are flushed, so a log
file or a pipe shows them as they happen.
"""

import json
import time
from pathlib import Path


def previous_section_seconds(results: Path) -> dict[str, float]:
    """Section -> seconds, from the newest result that recorded them."""
    for path in sorted(results.glob("*.json"), reverse=True):
        try:
            sections = json.loads(path.read_text()).get("section_seconds")
        except (OSError, ValueError, AttributeError):
            continue
        if sections:
            return sections
    return {}


def clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class Progress:
    def __init__(self, sections: list[str], previous: dict[str, float]) -> None:
        self.sections = sections
        self.previous = previous
        self.began = time.monotonic()

    def left(self, index: int) -> str:
        known = [self.previous.get(name) for name in self.sections[index:]]
        if not all(known):
            return ""
        return f", about {clock(sum(known))} left by the last run"  # type: ignore[arg-type]

    def start(self, index: int) -> None:
        name = self.sections[index]
        elapsed = clock(time.monotonic() - self.began)
        print(
            f"[bench {index + 1}/{len(self.sections)}] {name} (at {elapsed}{self.left(index)})",
            flush=True,
        )

    def step(self, message: str) -> None:
        print(f"  {message} (at {clock(time.monotonic() - self.began)})", flush=True)

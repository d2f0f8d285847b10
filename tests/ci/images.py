"""`make test`'s images step: the platform's images built once, as `make build` builds them,
before the compose and swarm suites use them from two lanes at once.

The compose suite then builds them again in its own copy of the checkout, all from the layer
cache, and the swarm suite finds them present. Two lanes building at once would each build them
(podman's builder does not share a build in progress), and builds started in parallel from a
cold cache leave layers a later build does not reuse (the Makefile's build target says more).

    python -m tests.ci.images
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import registry

REPO_ROOT = Path(__file__).resolve().parents[2]


def interpolation_stand_ins() -> dict[str, str]:
    """The compose file refuses to load without its required settings (`${NAME:?...}`), though
    a build reads none of them: stand-ins, so that no secret and no .env is written."""
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    return {name: "unused-by-a-build" for name in re.findall(r"\$\{([A-Z0-9_]+):\?", text)}


def main() -> int:
    env = {**interpolation_stand_ins(), **os.environ}
    compose = ["docker", "compose", "--env-file", os.devnull]
    services = registry.build_order(REPO_ROOT)
    began = time.monotonic()
    for number, service in enumerate(services, start=1):
        print(f"[images {number}/{len(services)}] {service}", flush=True)
        built = subprocess.run([*compose, "build", service], cwd=REPO_ROOT, env=env)
        if built.returncode:
            print(f"[images] building {service} failed (exit {built.returncode})", flush=True)
            return built.returncode
    print(f"[images] {len(services)} images in {time.monotonic() - began:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Remove run containers the DockerRunLauncher left behind for this stack.

Compose does not know them, and `down -v` cannot remove a network or volume they still use.
"""

import subprocess
import sys

from scripts.envfile import setting


def main() -> int:
    label = f"mlplatform.stack={setting('PLATFORM_NAME', 'mlplatform')}"
    found = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={label}"], capture_output=True, text=True
    )
    ids = found.stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], check=False, capture_output=True)
        print(f"removed {len(ids)} run container(s) labelled {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

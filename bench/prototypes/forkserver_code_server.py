"""Prototype: a team's gRPC code server whose runs start as forks of a warm forkserver.

Run by the team venv's python with this folder on PYTHONPATH (the code server's only)::

    PROTO_DEFS_MODULE=bakery.definitions PYTHONPATH=bench/prototypes \
        code_locations/bakery/.venv/bin/python -m forkserver_code_server \
        api grpc --module-name bakery.definitions --location-name bakery --host ... --port ...

It is the `dagster` CLI with one change: DagsterApiServer's multiprocessing context (spawn,
upstream) becomes a forkserver context whose server process imports `forkserver_preload`
(dagster, dagster_celery, dagster_team_celery and the team's definitions, warmed), so StartRun's
`self._mp_ctx.Process(target=start_run_in_subprocess)` forks that warm process instead of
starting a fresh interpreter.

PROTO_MP_CONTEXT=spawn keeps upstream's context, for a like-for-like `dagster api grpc`
baseline (the platform runs `dagster code-server start`, a proxy in front of `api grpc`).

Each run process re-imports this module as __mp_main__ (multiprocessing's main-module fixup),
so its top level imports nothing heavy and does nothing.
"""

import multiprocessing
import multiprocessing.forkserver
import multiprocessing.process
import multiprocessing.util
import os
import shutil
import sys
import tempfile

CONTEXT_ENV = "PROTO_MP_CONTEXT"
PRELOAD_MODULE = "forkserver_preload"
# sun_path holds 108 bytes; the forkserver's socket is <tempdir>/pymp-XXXXXXXX/listener-XXXXXXXX.
MAX_SOCKET_DIR = 60


def short_multiprocessing_tempdir() -> None:
    """The forkserver listens on a Unix socket in multiprocessing's temp dir, under TMPDIR. A
    local stack's per-team TMPDIR (deep in its state folder) can be too long for a socket path
    ("OSError: AF_UNIX path too long"), so use a private folder under /tmp instead then."""
    if len(tempfile.gettempdir()) <= MAX_SOCKET_DIR:
        return
    folder = tempfile.mkdtemp(prefix="pymp-", dir="/tmp")  # mode 0700
    multiprocessing.util.Finalize(None, shutil.rmtree, args=[folder, True], exitpriority=-100)
    multiprocessing.process.current_process()._config["tempdir"] = folder


def install() -> str:
    from dagster._grpc import server

    method = os.environ.get(CONTEXT_ENV, "forkserver")
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        # The forkserver is started from a clean interpreter (fork+exec), so the gRPC server's
        # threads are never forked; only the preloaded, single-threaded process is.
        short_multiprocessing_tempdir()
        context.set_forkserver_preload([PRELOAD_MODULE])
        # Started now, so its preload overlaps the code server's own load instead of delaying
        # the first run. (ensure_running does not wait for the preload to finish.)
        multiprocessing.forkserver.ensure_running()

    original_init = server.DagsterApiServer.__init__

    def __init__(self, *args, **kwargs) -> None:
        original_init(self, *args, **kwargs)
        self._mp_ctx = context

    server.DagsterApiServer.__init__ = __init__
    return method


def main() -> None:
    method = install()
    print(f"[forkserver_code_server] pid {os.getpid()}: runs start with {method!r}", flush=True)
    from dagster._cli import main as dagster_main

    sys.argv[0] = "dagster"
    dagster_main()


if __name__ == "__main__":
    main()

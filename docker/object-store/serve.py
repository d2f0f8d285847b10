"""Serve the bundled S3-compatible object store: SeaweedFS, with only its S3 API reachable.

Both modes run this file: the `object-store` service's image (docker/object-store/Dockerfile)
and local mode (devstack/infra.py), so the store the tests start is the one compose ships.

    python serve.py --dir DATA [--s3-bind ADDRESS] [--s3-port PORT] [--internal-ports N,N,...]

Why a launcher rather than `weed server` alone:

- **Credentials from the environment only.** SeaweedFS makes AWS_ACCESS_KEY_ID and
  AWS_SECRET_ACCESS_KEY its one admin identity; this refuses to start without them, so a store
  is never open to anonymous requests, and no secret is on a command line.
- **Nothing but S3 on the network.** The master, volume server and filer listen on loopback,
  where only this process reaches them. The S3 gateway's gRPC port cannot be bound apart from
  its HTTP port, and its IAM-cache service takes new identities from anyone who connects (an
  admin key was added that way in a test, tests/test_object_store.py). So every gRPC port
  requires a client certificate signed by a CA made here at each start, in a private temporary
  folder, and never written anywhere else: only the store's own components hold one.
- **A stop in seconds.** On SIGTERM or SIGINT SeaweedFS's filer waits 15 s for its gRPC streams
  to close. This parent passes the signal on and kills the server after --stop-seconds (5): a
  killed server loses nothing the kernel already has (volume and filer writes are plain writes,
  and the filer's store keeps a journal), and a stack, a restart or a crashed supervisor's
  leftovers stop promptly.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
# SeaweedFS refuses secret keys shorter than this.
MIN_SECRET_LENGTH = 8
INTERNAL = ("master", "volume", "filer")


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and one certificate it signs, for every component as server and as client."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    lifetime = datetime.timedelta(days=3650)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("object-store internal CA"))
        .issuer_name(name("object-store internal CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    hosts = {"localhost", socket.gethostname()}
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("object-store"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + lifetime)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(h) for h in sorted(hosts)]
                + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = folder / "ca.crt", folder / "store.crt", folder / "store.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


def security_toml(ca: Path, cert: Path, key: Path) -> str:
    """Every gRPC server asks for a client certificate from the CA; every client shows one."""
    sections = [f'[grpc]\nca = "{ca}"\n']
    for component in (*INTERNAL, "s3", "client"):
        sections.append(
            f'[grpc.{component}]\ncert = "{cert}"\nkey = "{key}"\n'
            f'client_cert = "{cert}"\nclient_key = "{key}"\nallowed_commonNames = "object-store"\n'
        )
    return "\n".join(sections)


def weed_argv(
    weed: str, data: Path, s3_bind: str, s3_port: int, internal_ports: list[int] | None
) -> list[str]:
    argv = [
        weed,
        # To stderr (the container's log) only; by default glog also fills files in /tmp.
        "-logtostderr=true",
        "server",
        f"-dir={data}",
        # The components find each other on loopback; only the S3 gateway binds elsewhere.
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-s3",
        f"-s3.port={s3_port}",
        f"-s3.ip.bind={s3_bind}",
        # Neither catalog is used, and each would be one more port open to the network.
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        # One volume server, so nothing takes over its volumes: 10 s of grace at a stop would
        # only delay a restart (and compose's stop).
        "-volume.preStopSeconds=1",
        # Volumes of 1 GiB (default 30 GiB), as many as the disk holds.
        "-master.volumeSizeLimitMB=1024",
        "-volume.max=0",
    ]
    if internal_ports:
        # Local mode: free ports chosen by the caller, gRPC ports included (SeaweedFS's default
        # of port + 10000 could collide with another stack's).
        master, volume, filer, master_grpc, volume_grpc, filer_grpc, s3_grpc = internal_ports
        argv += [
            f"-master.port={master}",
            f"-master.port.grpc={master_grpc}",
            f"-volume.port={volume}",
            f"-volume.port.grpc={volume_grpc}",
            f"-filer.port={filer}",
            f"-filer.port.grpc={filer_grpc}",
            f"-s3.port.grpc={s3_grpc}",
        ]
    return argv


def credentials_from_files(environ: dict[str, str] | os._Environ[str]) -> None:
    """The official images' convention for secrets given as files (Docker Swarm's, under
    /run/secrets): AWS_SECRET_ACCESS_KEY_FILE names the file that holds AWS_SECRET_ACCESS_KEY."""
    for name in CREDENTIAL_ENV:
        path = environ.get(f"{name}_FILE")
        if path and not environ.get(name):
            try:
                environ[name] = Path(path).read_text().strip()
            except OSError as error:
                raise SystemExit(
                    f"object store: {name}_FILE={path} is unreadable: {error}"
                ) from None


def check_credentials(environ: dict[str, str] | os._Environ[str]) -> None:
    missing = [name for name in CREDENTIAL_ENV if not environ.get(name)]
    if missing:
        raise SystemExit(
            f"object store: {' and '.join(missing)} not set. The store would accept anonymous"
            " requests, so it does not start. In compose these come from OBJECT_STORE_ACCESS_KEY_ID"
            " and OBJECT_STORE_SECRET_ACCESS_KEY in .env: run `make env` to create them."
        )
    if len(environ["AWS_SECRET_ACCESS_KEY"]) < MIN_SECRET_LENGTH:
        raise SystemExit(
            f"object store: the secret key is shorter than {MIN_SECRET_LENGTH} characters, which"
            " SeaweedFS refuses. Set a longer OBJECT_STORE_SECRET_ACCESS_KEY in .env."
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True, help="where the data is kept")
    parser.add_argument("--s3-bind", default="0.0.0.0")
    parser.add_argument("--s3-port", type=int, default=8333)
    parser.add_argument(
        "--internal-ports",
        help="7 comma-separated ports: master, volume, filer, then their gRPC ports and the S3"
        " gateway's gRPC port (default: SeaweedFS's)",
    )
    parser.add_argument("--weed", default=shutil.which("weed") or "weed")
    parser.add_argument("--stop-seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    credentials_from_files(os.environ)
    check_credentials(os.environ)
    internal = [int(p) for p in args.internal_ports.split(",")] if args.internal_ports else None
    if internal is not None and len(internal) != 7:
        parser.error("--internal-ports takes exactly 7 ports")
    data = args.dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    # Private to this user, gone with the container's /tmp; a restart makes new ones.
    runtime = Path(tempfile.mkdtemp(prefix="object-store-"))
    ca, cert, key = _certificates(runtime)
    (runtime / "security.toml").write_text(security_toml(ca, cert, key))
    # SeaweedFS reads security.toml from its working directory first.
    server = subprocess.Popen(
        weed_argv(args.weed, data, args.s3_bind, args.s3_port, internal), cwd=runtime
    )
    stopping = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        stopping.set()
        with contextlib.suppress(ProcessLookupError):
            server.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    while server.poll() is None and not stopping.is_set():
        stopping.wait(0.5)
    if stopping.is_set():
        try:
            server.wait(args.stop_seconds)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        sys.exit(0)
    sys.exit(server.returncode)


if __name__ == "__main__":
    main()

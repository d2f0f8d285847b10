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
- **One identity per team.** With --identities, the store also takes the identities file `make env`
  writes (the platform's teams and the webserver, each confined to its own paths:
  dagster_team_celery/deploy/object_store_identities.py). It holds secret keys, so it is
  readable only by root: this launcher starts as root, copies it into the private folder for the
  server, and runs the server as --user. When the file changes (`make env` after a team is added
  or removed) the copy is renewed and the server rereads it on SIGHUP, without a restart; a file
  that is not an identities file is refused in the log and the identities in force stay.
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
import hashlib
import ipaddress
import json
import os
import pwd
import secrets
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
    weed: str,
    data: Path,
    s3_bind: str,
    s3_port: int,
    internal_ports: list[int] | None,
    s3_config: Path | None = None,
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
    if s3_config is not None:
        argv.append(f"-s3.config={s3_config}")
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


def read_identities(path: Path) -> tuple[bytes, dict]:
    """The identities file's bytes and document, once it is a SeaweedFS identities document."""
    try:
        raw = path.read_bytes()
        document = json.loads(raw)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"the identities file {path} is unreadable ({error}). Run `make env`, which"
            " writes it (keys/object-store-identities.json)."
        ) from None
    identities = document.get("identities") if isinstance(document, dict) else None
    if not isinstance(identities, list) or not all(
        isinstance(i, dict) and {"name", "credentials", "actions"} <= i.keys() for i in identities
    ):
        raise ValueError(
            f"{path} is not a SeaweedFS identities file (an object whose `identities` lists"
            " name, credentials and actions). Run `make env` to write it again."
        )
    return raw, document


class IdentitiesCopy:
    """The server's own copy of the identities file, renewed when the source changes.

    On SIGHUP SeaweedFS (4.48) updates the identities the file names but keeps those it no
    longer names, so a removed team's keys would keep working until a restart. Each identity
    this process has loaded stays in the copy, with a random secret and no actions, once the
    source drops it."""

    def __init__(self, source: Path, target: Path, owner: pwd.struct_passwd | None) -> None:
        self.source, self.target, self.owner = source, target, owner
        self.digest = ""
        self.loaded: dict[str, list[str]] = {}

    def renew(self) -> bool:
        """Copy the source if its content changed; True if it did. Raises ValueError, naming
        the fix, for a source that is not an identities file (the old copy stays)."""
        raw, document = read_identities(self.source)
        digest = hashlib.sha256(raw).hexdigest()
        if digest == self.digest:
            return False
        named = {identity["name"] for identity in document["identities"]}
        document["identities"] += [
            revoked(name, keys) for name, keys in self.loaded.items() if name not in named
        ]
        staged = self.target.with_suffix(".new")
        staged.write_text(json.dumps(document))
        staged.chmod(0o600)
        if self.owner is not None:
            os.chown(staged, self.owner.pw_uid, self.owner.pw_gid)
        staged.replace(self.target)
        self.digest = digest
        for identity in document["identities"]:
            keys = [c.get("accessKey", "") for c in identity.get("credentials", [])]
            self.loaded[identity["name"]] = keys
        return True


def revoked(name: str, access_keys: list[str]) -> dict[str, object]:
    """An identity that nothing can use: no secret anyone knows, no action."""
    return {
        "name": name,
        "credentials": [
            {"accessKey": key, "secretKey": secrets.token_hex(24)} for key in access_keys
        ],
        "actions": [],
    }


def watch_identities(
    copy: IdentitiesCopy, server: subprocess.Popen[bytes], stopping: threading.Event
) -> None:
    """SeaweedFS rereads -s3.config on SIGHUP, without a restart."""
    while not stopping.wait(2.0):
        try:
            changed = copy.renew()
        except ValueError as error:
            print(f"object store: kept the previous identities: {error}", file=sys.stderr)
            continue
        if changed and server.poll() is None:
            print("object store: identities changed; reloading them", file=sys.stderr)
            server.send_signal(signal.SIGHUP)


def server_user(name: str | None) -> pwd.struct_passwd | None:
    """Whom the server runs as: --user when this launcher runs as root, else this user."""
    if name is None or os.geteuid() != 0:
        return None
    return pwd.getpwnam(name)


def hand_over(folder: Path, owner: pwd.struct_passwd | None) -> None:
    if owner is None:
        return
    for path in (folder, *folder.iterdir()):
        os.chown(path, owner.pw_uid, owner.pw_gid)


def start_server(
    args: argparse.Namespace,
    internal: list[int] | None,
    data: Path,
    owner: pwd.struct_passwd | None,
) -> tuple[subprocess.Popen[bytes], IdentitiesCopy | None]:
    # Private to the server's user, gone with the container's /tmp; a restart makes new ones.
    runtime = Path(tempfile.mkdtemp(prefix="object-store-"))
    ca, cert, key = _certificates(runtime)
    (runtime / "security.toml").write_text(security_toml(ca, cert, key))
    identities = None
    if args.identities is not None:
        identities = IdentitiesCopy(args.identities, runtime / "identities.json", owner)
        try:
            identities.renew()
        except ValueError as error:
            raise SystemExit(f"object store: {error}") from None
    hand_over(runtime, owner)
    if owner is not None:
        os.chown(data, owner.pw_uid, owner.pw_gid)
    # SeaweedFS reads security.toml from its working directory first.
    server = subprocess.Popen(
        weed_argv(
            args.weed,
            data,
            args.s3_bind,
            args.s3_port,
            internal,
            identities.target if identities else None,
        ),
        cwd=runtime,
        user=owner.pw_uid if owner else None,
        group=owner.pw_gid if owner else None,
        extra_groups=[] if owner else None,
        env={**os.environ, "HOME": owner.pw_dir} if owner else None,
    )
    return server, identities


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
    parser.add_argument(
        "--identities",
        type=Path,
        help="the identities file of the teams and the webserver (`make env` writes it)",
    )
    parser.add_argument("--user", help="run the server as this user when started as root")
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
    owner = server_user(args.user)
    server, identities = start_server(args, internal, data, owner)
    stopping = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        stopping.set()
        with contextlib.suppress(ProcessLookupError):
            server.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    if identities is not None:
        threading.Thread(
            target=watch_identities, args=(identities, server, stopping), daemon=True
        ).start()
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

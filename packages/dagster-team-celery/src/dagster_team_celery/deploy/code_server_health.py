"""``dagster-code-server-healthcheck``: is a Dagster code server serving? Asked as
``dagster api grpc-health-check`` asks it (the gRPC health service, for ``DagsterApi``), without
importing Dagster: that command's start-up is about 2 s of CPU, and compose runs the check every
10 s for every code server, a third of a core for three of them at idle. This module imports
grpcio alone (about 0.1 s), so the check costs what it checks."""

import argparse
import sys

SERVICE = "DagsterApi"


def serving_status(host: str, port: int, timeout: float) -> str:
    """SERVING, NOT_SERVING, UNKNOWN..., or what kept the server from answering."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"{host}:{port}") as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=SERVICE), timeout=timeout
            )
        except grpc.RpcError as error:
            return f"unreachable ({error.code().name})"
    return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


def is_serving(host: str, port: int, timeout: float = 2.0) -> bool:
    return serving_status(host, port, timeout) == "SERVING"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dagster-code-server-healthcheck", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--toward",
        metavar="NAME",
        help="ask at this host's address toward NAME, where a team's code server listens "
        "(dagster-platform-entrypoint --address-toward)",
    )
    parser.add_argument("--port", type=int, default=4000)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    if args.toward:
        from dagster_team_celery.deploy.service_entrypoint import own_address_toward

        args.host = own_address_toward(args.toward, timeout_seconds=args.timeout)
    status = serving_status(args.host, args.port, args.timeout)
    print(f"code server {args.host}:{args.port}: {status}")
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())

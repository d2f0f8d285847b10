#!/bin/sh
# The code gateway's start, and with --check its health check. Caddy listens only at the
# gateway's address on the platform network: in compose, the name CODE_GATEWAY_LISTEN, an alias
# it has only there; on Swarm, where a name resolves only once its task is healthy, its address
# in CODE_GATEWAY_SUBNET, the platform network's fixed subnet.
set -eu

address_in_subnet() {
	want=$(busybox ipcalc -n "$1")
	prefix=${1#*/}
	for cidr in $(busybox ip -o -4 addr show | busybox awk '{print $4}'); do
		if [ "${cidr#*/}" = "$prefix" ] && [ "$(busybox ipcalc -n "$cidr")" = "$want" ]; then
			echo "${cidr%/*}"
			return 0
		fi
	done
	echo "start-code-gateway: this container has no address in $1: attach it to the platform network" >&2
	return 1
}

if [ -n "${CODE_GATEWAY_SUBNET:-}" ]; then
	CODE_GATEWAY_ADDRESS=$(address_in_subnet "$CODE_GATEWAY_SUBNET")
else
	CODE_GATEWAY_ADDRESS=${CODE_GATEWAY_LISTEN:?set CODE_GATEWAY_LISTEN (a name of the gateway on the platform network) or CODE_GATEWAY_SUBNET}
fi
export CODE_GATEWAY_ADDRESS

if [ "${1:-}" = --check ]; then
	exec busybox wget -q -O /dev/null "http://$CODE_GATEWAY_ADDRESS:4000/code-gateway-health"
fi
exec caddy run --config /etc/caddy/code-gateway.Caddyfile --adapter caddyfile

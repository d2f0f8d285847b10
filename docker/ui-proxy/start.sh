#!/bin/sh
# Refuses a setting Caddy would otherwise take without complaint (forward auth with no
# address starts, then fails every request), then becomes Caddy.
set -eu
case "${UI_AUTH:-}" in
basic) ;;
forward)
	if [ -z "${UI_FORWARD_AUTH_ADDRESS:-}" ]; then
		echo "UI_AUTH=forward needs UI_FORWARD_AUTH_ADDRESS, the service that decides who may" \
			"sign in (for example http://oauth2-proxy:4180): set it in .env" >&2
		exit 64
	fi
	;;
*)
	echo "UI_AUTH='${UI_AUTH:-}' is not a sign-in method: use basic (UI_USER and UI_PASSWORD)" \
		"or forward (UI_FORWARD_AUTH_ADDRESS); set it in .env" >&2
	exit 64
	;;
esac
exec caddy run --config /etc/caddy/Caddyfile --adapter caddyfile

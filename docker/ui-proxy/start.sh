#!/bin/sh
# Settings reach the Caddyfile as text before it is parsed, so a space, a brace or a newline in
# one would add directives: each is checked against what it may be, and a sign-in method Caddy
# would take without complaint (forward auth with no address) is refused, before Caddy starts.
set -eu

refuse() {
	echo "$1; set it in .env" >&2
	exit 64
}

# matches NAME PATTERN: the whole value, on one line, matches the extended regex.
matches() {
	value=$(printenv "$1" || true)
	[ "$(printf '%s' "$value" | wc -l)" -eq 0 ] && printf '%s' "$value" | grep -Eqx "$2"
}

matches UI_UPSTREAM '[A-Za-z0-9._-]+:[0-9]+' ||
	refuse "UI_UPSTREAM='${UI_UPSTREAM:-}' is not host:port"
case "${UI_AUTH:-}" in
basic) ;;
forward)
	[ -n "${UI_FORWARD_AUTH_ADDRESS:-}" ] ||
		refuse "UI_AUTH=forward needs UI_FORWARD_AUTH_ADDRESS, the service that decides who may sign in (for example http://oauth2-proxy:4180)"
	matches UI_FORWARD_AUTH_ADDRESS 'https?://[A-Za-z0-9._-]+(:[0-9]+)?' ||
		refuse "UI_FORWARD_AUTH_ADDRESS='$UI_FORWARD_AUTH_ADDRESS' is not http(s)://host[:port]"
	# oauth2-proxy's (with --set-xauthrequest) unless told otherwise.
	export UI_FORWARD_USER_HEADER="${UI_FORWARD_USER_HEADER:-X-Auth-Request-User}"
	export UI_FORWARD_GROUPS_HEADER="${UI_FORWARD_GROUPS_HEADER:-X-Auth-Request-Groups}"
	for setting in UI_FORWARD_USER_HEADER UI_FORWARD_GROUPS_HEADER; do
		matches "$setting" '[A-Za-z0-9-]+' ||
			refuse "$setting='$(printenv "$setting" || true)' is not a header name (letters, digits and -)"
	done
	for setting in UI_FORWARD_AUTH_URI UI_FORWARD_AUTH_PAGES UI_FORWARD_AUTH_SIGN_IN; do
		matches "$setting" '/[A-Za-z0-9._~/?=&%*-]*' ||
			refuse "$setting='$(printenv "$setting" || true)' is not a path (letters, digits and ._~/?=&%*-)"
	done
	;;
*)
	refuse "UI_AUTH='${UI_AUTH:-}' is not a sign-in method: use basic (UI_USER and UI_PASSWORD) or forward (UI_FORWARD_AUTH_ADDRESS)"
	;;
esac
exec caddy run --config /etc/caddy/Caddyfile --adapter caddyfile

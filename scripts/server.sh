# shellcheck shell=bash
# server.sh, sourced by the bench scripts: the orderhook server they start
# in the background is $server, stopped by stop_server as a signal would
# stop it in production (SIGINT, a graceful drain) and on any exit.

server=

# stop_server interrupts $server, if one runs, and waits for it to exit.
stop_server() {
	if [[ -n $server ]]; then
		kill -INT "$server" 2>/dev/null || true
		wait "$server" || true
		server=
	fi
}
trap stop_server EXIT

#!/bin/sh
# The container's entrypoint: make the mounted directories usable by the service user, then run
# `voicecoder "$@"` as that user (uid VOICECODER_UID, default 10001; gid VOICECODER_GID, default the uid).
#
#   As root (compose's one-shot `init` service, or `docker run --user 0 …`): give every file in the workspace,
#   data, home, Claude config and cache directories that the service user does not own to that user, then drop
#   to it (`--fix-ownership-only`: stop after fixing). Docker creates missing bind-mount sources and fresh
#   volume mount points as root; without this the workspace cannot be written and the Claude login is lost.
#   As any other user: check that each directory is writable and stop with the fix when one is not.
#
# Inside the container the server must listen on all interfaces of the container's own network namespace:
# a loopback LISTEN_HOST (as in a copied .env.example) would be unreachable through the port mapping while the
# health check still passed. Keep it off the host's other interfaces with `-p 127.0.0.1:8080:8080` instead.
set -eu

uid="${VOICECODER_UID:-10001}"
gid="${VOICECODER_GID:-$uid}"
home="${HOME:-/home/voicecoder}"

say() {
    printf 'voicecoder-entrypoint: %s\n' "$*" >&2
}

fix_ownership() {
    mkdir -p -- "$1"
    # Only what is not the service user's yet: cheap on every start, and it also repairs files that a
    # `docker compose exec` as root created later.
    find "$1" \( ! -user "$uid" -o ! -group "$gid" \) -exec chown -h "$uid:$gid" {} +
}

check_writable() {
    if ! mkdir -p -- "$1" 2>/dev/null || ! probe="$(mktemp "$1/.voicecoder-write-test.XXXXXX" 2>/dev/null)"; then
        owner="$(stat -c %u -- "$1" 2>/dev/null || echo '?')"
        say "$1 is not writable by uid $(id -u) (it belongs to uid $owner)."
        say "Fix: let the compose 'init' service run (docker compose up does), or start the container once with"
        say "--user 0 (it fixes ownership, then drops to uid $uid), or on the host: sudo chown -R $(id -u):$(id -g)"
        say "<the directory or volume mounted at $1>."
        exit 1
    fi
    rm -f -- "$probe"
}

for_each_dir() {
    for dir in "${WORKSPACE_DIR:-/work/workspace}" "${DATA_DIR:-/work/data}" "$home" \
        "${CLAUDE_CONFIG_DIR:-$home/.claude}" "${XDG_CACHE_HOME:-$home/.cache}"; do
        "$1" "$dir"
    done
}

case "${LISTEN_HOST:-}" in
    "" | 0.0.0.0 | "::") ;;
    127.* | localhost | "::1")
        say "LISTEN_HOST=$LISTEN_HOST is loopback inside the container, unreachable through the port mapping;"
        say "listening on 0.0.0.0 of the container's own network instead (publish with -p 127.0.0.1:8080:8080)."
        LISTEN_HOST=0.0.0.0
        ;;
esac
export LISTEN_HOST="${LISTEN_HOST:-0.0.0.0}"

if [ "$(id -u)" = 0 ]; then
    for_each_dir fix_ownership
    if [ "${1:-}" = "--fix-ownership-only" ]; then
        say "ownership of the workspace, data, home and cache directories set to $uid:$gid"
        exit 0
    fi
    exec setpriv --reuid="$uid" --regid="$gid" --clear-groups -- voicecoder "$@"
fi
if [ "${1:-}" = "--fix-ownership-only" ]; then
    say "--fix-ownership-only needs root (user: \"0:0\" in compose, --user 0 with docker run)."
    exit 1
fi
for_each_dir check_writable
exec voicecoder "$@"

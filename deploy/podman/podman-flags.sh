# shellcheck shell=bash
# Sourced by the scripts here: flags every `podman run` and `podman build` gets.
# Podman as root raises the open-files and process limits of a container above the host's
# by default; a sandbox that forbids raising them fails with "error setting rlimit". These
# stay at or below the host's limits.
nofile="$(ulimit -Hn)"
nproc="$(ulimit -Hu)"
[ "$nofile" = unlimited ] && nofile=1048576
[ "$nproc" = unlimited ] && nproc=65536
[ "$nofile" -gt 65536 ] && nofile=65536
[ "$nproc" -gt 4096 ] && nproc=4096
PODMAN_FLAGS="--ulimit nofile=$nofile:$nofile --ulimit nproc=$nproc:$nproc"
export PODMAN_FLAGS

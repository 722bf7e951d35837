#!/usr/bin/env bash
# Build, or reuse, the Debian 12 image with systemd as PID 1 that molecule runs the roles against.
#
# No container registry is reachable from CI, so the image is made here: debootstrap a minbase
# bookworm root file system and `podman import` it. The tag is a hash of everything that shapes
# the image (suite, mirror, package list, the in-image configuration below), so a second run finds
# the image and returns at once, and changing the package list builds a new tag.
#
# Usage: scripts/podman-image.sh [--name-only] [--rebuild]
#   --name-only  print the image name this script builds, without building it
#   --rebuild    remove the image with this hash first and build it again
# Prints the image name (localhost/sre-debian12-systemd:<hash>) on stdout; progress goes to stderr.
# Environment: SRE_DEBIAN_MIRROR, SRE_DEBIAN_SECURITY_MIRROR (default deb.debian.org),
#              SRE_IMAGE_WORKDIR (where the root file system is built; default /var/tmp).
set -euo pipefail

IMAGE_REPO="localhost/sre-debian12-systemd"
SUITE="bookworm"
MIRROR="${SRE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${SRE_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
# systemd as PID 1 and what Ansible needs (python3, python3-apt for the apt modules); procps,
# kmod and sudo are on every real node and the roles and tests use them; openssh-server is how
# Ansible reaches the node (tests/helpers/sshd_node.py starts it on a loopback port with a host
# key made for that container; Debian's own ssh.service stays masked, see configure_rootfs).
PACKAGES=(
  systemd systemd-sysv dbus
  python3 python3-apt
  ca-certificates procps kmod sudo
  openssh-server
)

name_only=0
rebuild=0
for arg in "$@"; do
  case "$arg" in
    --name-only) name_only=1 ;;
    --rebuild) rebuild=1 ;;
    -h | --help)
      sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "podman-image.sh: unknown argument: $arg" >&2
      exit 2
      ;;
  esac
done

log() { echo "podman-image.sh: $*" >&2; }

# The host's mirror may serve a frozen snapshot whose Release files are past Valid-Until; the
# image then needs the same apt setting as the host, or apt inside the container refuses it.
check_valid_until="$(apt-config dump 2>/dev/null | sed -n 's/^Acquire::Check-Valid-Until "\(.*\)";$/\1/p' | tail -n 1)"
check_valid_until="${check_valid_until:-true}"

# Runs inside the new root file system's directory ($1). Part of the hash: edit it and the tag changes.
configure_rootfs() {
  local root="$1"
  # Only "main", as on a freshly installed Debian host: roles that need contrib/non-free add it.
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: ${MIRROR}
Suites: ${SUITE} ${SUITE}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${SECURITY_MIRROR}
Suites: ${SUITE}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  cat >"$root/etc/apt/apt.conf.d/90sre-image" <<EOF
// Written by scripts/podman-image.sh (molecule test image).
Acquire::Check-Valid-Until "${check_valid_until}";
Acquire::Languages "none";
Acquire::IndexTargets::deb::DEP-11 { DefaultEnabled "false"; };
EOF
  # systemd creates a fresh machine id in every container that boots from the image.
  : >"$root/etc/machine-id"
  rm -f "$root/var/lib/dbus/machine-id"
  # Units that have nothing to do in a container and only slow down or degrade boot.
  local unit
  for unit in getty.target console-getty.service systemd-remount-fs.service \
    systemd-firstboot.service sys-kernel-config.mount; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
  done
  # Debian's sshd would bind the host's port 22 (--network host), with host keys every container
  # of the image shares: masked, keys removed. Each test node gets its own sshd and key.
  for unit in ssh.service ssh.socket; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
  done
  rm -f "$root/etc/ssh/ssh_host_"*
  rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin "$root/var/cache/apt/archives/"*.deb
  # Empty package lists that look ancient, so apt's "cache_valid_time" logic refreshes them.
  touch -d @86400 "$root/var/lib/apt/lists"
}

hash="$(
  {
    echo "format=1 suite=$SUITE mirror=$MIRROR security=$SECURITY_MIRROR valid_until=$check_valid_until"
    printf '%s\n' "${PACKAGES[@]}"
    declare -f configure_rootfs
  } | sha256sum | cut -c1-12
)"
image="$IMAGE_REPO:$hash"

if [ "$name_only" -eq 1 ]; then
  echo "$image"
  exit 0
fi

for tool in podman debootstrap tar flock; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    log "$tool is not installed (apt-get install podman runc debootstrap)"
    exit 1
  fi
done
if [ "$(id -u)" -ne 0 ]; then
  log "must run as root: debootstrap needs it, and molecule uses root's podman storage"
  exit 1
fi

# One build at a time: parallel scenarios wait here and then reuse the image the first one built.
lock="${XDG_RUNTIME_DIR:-/tmp}/sre-podman-image.lock"
exec 9>"$lock"
flock 9

if [ "$rebuild" -eq 1 ] && podman image exists "$image"; then
  log "removing $image (--rebuild)"
  podman rmi --force "$image" >/dev/null
fi
if podman image exists "$image"; then
  echo "$image"
  exit 0
fi

workdir="$(mktemp -d "${SRE_IMAGE_WORKDIR:-/var/tmp}/sre-podman-image.XXXXXX")"
trap 'rm -rf --one-file-system "$workdir"' EXIT
rootfs="$workdir/rootfs"

log "building $image (debootstrap $SUITE from $MIRROR, about 2 minutes)"
include="$(IFS=,; echo "${PACKAGES[*]}")"
if ! debootstrap --variant=minbase --include="$include" "$SUITE" "$rootfs" "$MIRROR" \
  >"$workdir/debootstrap.log" 2>&1; then
  tail -n 40 "$workdir/debootstrap.log" >&2
  [ -f "$rootfs/debootstrap/debootstrap.log" ] && tail -n 40 "$rootfs/debootstrap/debootstrap.log" >&2
  log "debootstrap failed"
  exit 1
fi
configure_rootfs "$rootfs"

tar --numeric-owner --xattrs -C "$rootfs" -c . |
  podman import --quiet \
    --change 'CMD ["/sbin/init"]' \
    --change 'ENV container=podman' \
    --change "LABEL org.opencontainers.image.title=sre-debian12-systemd sre.image.hash=$hash" \
    --message "scripts/podman-image.sh $hash" \
    - "$image" >/dev/null

# Drop older builds of this image that no container uses any more (rmi refuses the used ones).
podman images --format '{{.Repository}}:{{.Tag}}' --filter "reference=$IMAGE_REPO" |
  while read -r old; do
    [ "$old" = "$image" ] && continue
    if podman rmi "$old" >/dev/null 2>&1; then log "removed old image $old"; fi
  done

log "built $image"
echo "$image"

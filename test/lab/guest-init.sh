#!/bin/sh
# PID 1 of a lab guest (User-Mode Linux booted with the host's / over hostfs).
# $1 is the run's scratch directory on hostfs, prepared by uml.ts:
#   modroot/    lib/modules -> /usr/lib/uml/modules (for modprobe -d)
#   modules     module names to load, one per line
#   early-env.sh exports for every program of the guest
#   env.sh      exports for the command
#   cwd         working directory of the command
#   command.sh  the command itself
#   host-link.sh (optional) sets up eth0, the guest's end of a tap on the
#               host (uml.ts, host-link.ts); when it fails the command is
#               told why in PYBAL_LAB_HOST_LINK_ERROR
# The exit status of command.sh goes to $1/status: the guest's own exit
# status means nothing to the host.
S="$1"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# Exports every guest program needs, before any runs (uml.ts: no AVX).
[ -f "$S/early-env.sh" ] && . "$S/early-env.sh"

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
# Private state stays in the guest: everything else under / is the host's.
mount -t tmpfs -o mode=755 tmpfs /run
# The project (and so this run's scratch directory) may live under /tmp, as in
# a CI clone: keep those directories visible through the guest's private /tmp
# by binding them back from the host's /tmp.
keep=""
for p in "$S" "$(cat "$S/cwd")"; do
  case "$p" in
    /tmp/?*) top="/tmp/${p#/tmp/}"; top="/tmp/$(echo "${top#/tmp/}" | cut -d/ -f1)"; keep="$keep $top" ;;
  esac
done
if [ -n "$keep" ]; then
  mkdir -p /run/host-tmp
  mount --bind /tmp /run/host-tmp
fi
mount -t tmpfs -o mode=1777 tmpfs /tmp
for top in $keep; do
  mountpoint -q "$top" && continue
  mkdir -p "$top" && mount --bind "/run/host-tmp/${top#/tmp/}" "$top"
done
mount -t tmpfs -o mode=1777 tmpfs /dev/shm 2>/dev/null
mkdir -p /run/netns /run/lock
hostname pybal-lab
ip link set lo up
ulimit -n 65536

failed=""
while read -r mod; do
  [ -n "$mod" ] || continue
  modprobe -d "$S/modroot" "$mod" || failed="$failed $mod"
done < "$S/modules"

# The link to the host (eth0 on a bridge), once the bridge module is in.
link_error=""
if [ -f "$S/host-link.sh" ]; then
  link_out=$(sh -e "$S/host-link.sh" 2>&1) || link_error="the guest could not configure eth0 (is the tap there?): $(echo "$link_out" | tr '\n' ' ')"
fi

echo "@@pybal-lab begin@@"
if [ -n "$failed" ]; then
  echo "pybal-lab: could not load kernel modules:$failed"
  echo 125 > "$S/status"
else
  # Piping through cat gives the command a plain pipe rather than the
  # console tty (no interactive redraws, no CR/LF games).
  {
    cd "$(cat "$S/cwd")" && . "$S/env.sh" &&
      if [ -n "$link_error" ]; then unset PYBAL_LAB_HOST_LINK; export PYBAL_LAB_HOST_LINK_ERROR="$link_error"; fi &&
      sh "$S/command.sh" </dev/null
    echo $? > "$S/status"
  } 2>&1 | cat
fi
echo "@@pybal-lab end@@"
sync
poweroff -f
echo o > /proc/sysrq-trigger

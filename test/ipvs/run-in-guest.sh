#!/usr/bin/env bash
# Runs one command inside a User-Mode Linux guest that has IPVS, and exits
# with its status. A stopgap for the IPVS probes until the lab harness
# (test/lab/) is merged; see /work/shared/LAB.md for the recipe.
#   test/ipvs/run-in-guest.sh node dist/bench/ipvs-probe.js
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
scratch=$(mktemp -d -t pybal-ipvs-guest.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
kver=$(ls /usr/lib/uml/modules | head -n1)
mkdir -p "$scratch/modroot/lib"
ln -s /usr/lib/uml/modules "$scratch/modroot/lib/modules"
printf '%q ' "$@" >"$scratch/cmd"
cat >"$scratch/init.sh" <<INIT
#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /run
mkdir -p /run/netns
for m in ip_vs ip_vs_rr ip_vs_wrr ip_vs_lc ip_vs_wlc ip_vs_lblc ip_vs_lblcr ip_vs_dh ip_vs_sh ip_vs_sed ip_vs_nq ip_vs_fo ip_vs_ovf ip_vs_mh ip_vs_twos ip_vs_pe_sip; do
  modprobe -d $scratch/modroot \$m 2>/dev/null || echo "guest: no module \$m"
done
ip link set lo up
cd $repo
sh -c "\$(cat $scratch/cmd)" >$scratch/out 2>&1
echo \$? >$scratch/status
poweroff -f
INIT
chmod +x "$scratch/init.sh"
linux.uml mem=1G root=/dev/root rootfstype=hostfs rootflags=/ rw init="$scratch/init.sh" con=null con0=null,fd:1 >"$scratch/console" 2>&1 </dev/null || true
cat "$scratch/out" 2>/dev/null || true
if [[ ! -f "$scratch/status" ]]; then
  echo "guest did not finish; console tail:" >&2
  tail -n 30 "$scratch/console" >&2
  exit 99
fi
exit "$(cat "$scratch/status")"

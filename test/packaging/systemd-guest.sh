#!/bin/sh
# Runs inside a UML guest booted with systemd as PID 1 on a clean Debian root
# (test/packaging/systemd.test.ts prepares it), as the unit pybal-test.service:
# what an operator does with pybal's Debian package, step by step. Every step's
# output and exit status are recorded under /pybal-test/steps/<name>.{out,rc}
# (hostfs: the host reads them after the guest powers off) and judged there;
# this script asserts nothing and always runs to the end.
#
# The stage: a network namespace "router" with BIRD 2 as pybal's BGP peer over
# a veth (192.0.2.1 there, 192.0.2.2 here); one LVS service 203.0.113.1:80
# whose real server is the router's address, checked by a RunCommand that
# always succeeds and writes down the nice value it runs at.
R=/pybal-test
S=$R/steps
BIRD_CTL=/run/bird-router.ctl
VIP=203.0.113.1
mkdir -p "$S"
exec >"$R/script.log" 2>&1
# Whatever happens, the guest powers off at once (the host's deadline is the last resort).
trap 'echo finished >"$R/done"; sync; systemctl poweroff --force --force' EXIT
set -x

# step NAME CMD...: runs CMD, keeps its output and exit status.
step() {
	name=$1
	shift
	"$@" >"$S/$name.out" 2>&1
	echo $? >"$S/$name.rc"
}

# until_route present|absent NAME: polls BIRD (100 ms apart, 30 s at most)
# until the VIP's route is as wanted; records BIRD's last answer as NAME.
until_route() {
	want=$1
	name=$2
	i=0
	while :; do
		birdc -s "$BIRD_CTL" show route "$VIP/32" all >"$S/$name.out" 2>&1
		if grep -q "^$VIP/32" "$S/$name.out"; then have=present; else have=absent; fi
		if [ "$have" = "$want" ]; then echo 0 >"$S/$name.rc"; return; fi
		i=$((i + 1))
		if [ $i -ge 300 ]; then echo 1 >"$S/$name.rc"; return; fi
		sleep 0.1
	done
}

write_pool() { # FILE WEIGHT
	echo "{ 'host': '192.0.2.1', 'weight': $2, 'enabled': True }" >"$1"
}

write_conf() { # POOL-FILE [EXTRA SERVICE LINE]
	cat >/etc/pybal/pybal.conf <<EOF
[global]
bgp = yes
bgp-local-asn = 64600
bgp-peer-address = 192.0.2.1
bgp-nexthop-ipv4 = 192.0.2.2
bgp-connect-retry = 1
bgp-graceful-restart = 60
instrumentation = yes
instrumentation_port = 9090
instrumentation_ips = [ '127.0.0.1' ]

[web]
protocol = tcp
ip = $VIP
port = 80
scheduler = wrr
forward-method = dr
config = file://$1
monitors = [ 'RunCommand' ]
runcommand.command = /bin/sh
runcommand.arguments = [ '-c', 'cut -d" " -f19 /proc/self/stat > /run/pybal/check-nice.new && mv /run/pybal/check-nice.new /run/pybal/check-nice' ]
runcommand.interval = 1
$2
EOF
}

# pybal-test.service is Type=exec: the boot is over once it has started.
step boot-state systemctl is-system-running --wait
step boot-failed systemctl --failed --no-legend --plain

# The router: BIRD in its own namespace, passive, peer of this host's pybal.
ip netns add router
ip link add rtr0 type veth peer name rtr1
ip link set rtr1 netns router
ip addr add 192.0.2.2/24 dev rtr0
ip link set rtr0 up
ip -n router addr add 192.0.2.1/24 dev rtr1
ip -n router link set rtr1 up
ip -n router link set lo up
cat >$R/bird.conf <<'EOF'
router id 192.0.2.1;
protocol device { }
protocol bgp director {
  local 192.0.2.1 as 64512;
  neighbor 192.0.2.2 as 64600;
  passive on;
  graceful restart on;
  ipv4 { import all; export none; };
}
EOF
step bird-start ip netns exec router bird -c $R/bird.conf -s $BIRD_CTL

# 1. Install the package on the running system, as an operator does.
step dpkg-install dpkg -i $R/debs/pybal.deb
step is-enabled systemctl is-enabled pybal
step user getent passwd pybal
# Without /etc/pybal/pybal.conf the enabled unit does not run (its condition).
step start-unconfigured systemctl start pybal
step state-unconfigured systemctl show -p ActiveState,ConditionResult pybal

# 2. A configuration, then start: it returns once pybal says it is ready.
# The operator also gives pybal's control plane the CPU first, as
# docs/operations.md says (what `systemctl edit pybal` writes).
mkdir -p /etc/systemd/system/pybal.service.d
printf '[Service]\nNice=-5\n' >/etc/systemd/system/pybal.service.d/override.conf
step daemon-reload systemctl daemon-reload
write_pool /etc/pybal/pools/web 10
write_conf /etc/pybal/pools/web
step start systemctl start pybal
# Read at once, no waiting: the API answers and IPVS has the service.
step ipvs-after-start ipvsadm -Ln
step status-after-start pybal status
step api-after-start curl -sS --max-time 5 http://127.0.0.1:9090/pools
step active-after-start systemctl is-active pybal
until_route present route-after-start

# 3. Who runs it, with what.
pid=$(systemctl show -p MainPID --value pybal)
step main-pid echo "$pid"
step proc-status cat "/proc/$pid/status"
step proc-cmdline sh -c "tr '\0' ' ' </proc/$pid/cmdline"
step proc-environ sh -c "tr '\0' '\n' </proc/$pid/environ"
# The drop-in's Nice=-5 for the control plane, nice 0 for the checks thread
# and the commands it runs: once the check has run (the checks thread is up),
# each thread's id and nice value (field 19 of its stat, after the name).
i=0
while [ ! -s /run/pybal/check-nice ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
step check-nice cat /run/pybal/check-nice
step thread-nice sh -c "for t in /proc/$pid/task/*; do echo \${t##*/} \$(sed 's/.*) //' \$t/stat | cut -d' ' -f17); done"

# 4. Reload: pybal.conf now names another pool file, where the weight is 25.
write_pool /etc/pybal/pools/web-new 25
write_conf /etc/pybal/pools/web-new
step ipvs-before-reload ipvsadm -Ln
step reload systemctl reload pybal
i=0
while [ $i -lt 300 ] && ! ipvsadm -Ln | grep -q '192.0.2.1:80 *Route *25 '; do
	sleep 0.1
	i=$((i + 1))
done
step ipvs-after-reload ipvsadm -Ln
step pid-after-reload systemctl show -p MainPID --value pybal

# 5. Restart: a new process, ready again when restart returns.
step restart systemctl restart pybal
step ipvs-after-restart ipvsadm -Ln
step status-after-restart pybal status
step pid-after-restart systemctl show -p MainPID --value pybal
until_route present route-after-restart

# 6. Stop: exits 0, the unit inactive, the VIP withdrawn at the router, the
# IPVS table left as it is.
step stop systemctl stop pybal
step active-after-stop systemctl is-active pybal
step show-after-stop systemctl show -p ActiveState,SubState,Result,ExecMainStatus pybal
step ipvs-after-stop ipvsadm -Ln
until_route absent route-after-stop

# 7. A configuration with an error: start fails and status says why.
sed -i 's/^monitors = \[ '"'"'RunCommand'"'"' \]$/monitors = [ '"'"'Bogus'"'"' ]/' /etc/pybal/pybal.conf
step bad-conf cat /etc/pybal/pybal.conf
step start-bad systemctl start pybal
step status-bad systemctl status --no-pager -l pybal
step show-bad systemctl show -p ActiveState,SubState,Result pybal
# check-config's own lines reach the journal through its stdout, after
# systemd's verdict; `systemctl status` shows only the latest start's lines
# (after the restarts below, one that never ran check-config), so the reason
# is read where an operator reads it: journalctl -u pybal (polled, 60 s at most).
i=0
while :; do
	journalctl -u pybal --no-pager -o short >"$S/status-bad-why.out" 2>&1
	if grep -q "unknown monitor 'Bogus'" "$S/status-bad-why.out" || [ $i -ge 600 ]; then break; fi
	sleep 0.1
	i=$((i + 1))
done
# Restart=always covers a failed ExecStartPre too: systemd tries again every
# RestartSec, until StartLimitBurst starts in StartLimitIntervalSec; then the
# unit stays failed (polled, at most 90 s).
i=0
while :; do
	{ systemctl show -p ActiveState,SubState,Result pybal; systemctl status --no-pager -l -n 100 pybal; } >"$S/show-bad-gave-up.out" 2>&1
	if { grep -q 'Start request repeated too quickly' "$S/show-bad-gave-up.out" && grep -q '^ActiveState=failed$' "$S/show-bad-gave-up.out"; } || [ $i -ge 900 ]; then break; fi
	sleep 0.1
	i=$((i + 1))
done
step stop-bad systemctl stop pybal
step show-bad-stopped systemctl show -p ActiveState,SubState,Result,NRestarts pybal

# 8. The journal.
step journal journalctl -u pybal --no-pager -o cat
step journal-short journalctl -u pybal --no-pager -o short

#!/usr/bin/env bash
# Measures cnet against the seed's ip commands, the CNI bridge plugin,
# netavark and a netlink-only floor, its published ports against the CNI
# portmap plugin, its name server against aardvark-dns and dnsmasq, its
# CNI ADD/DEL, and a create/rm soak, all in one run, inside a throwaway
# sandbox: fresh network and mount namespaces with tmpfs over /run/netns,
# /etc/netns and the peers' state directories, so the machine's own
# network is never touched. cnet's state lives on the real disk (a new
# directory under /var/tmp, removed at the end), as it would in use.
#
# Installs the peers if missing, builds bin/cnet, bin/echo-server and
# bin/cnetbench, runs bin/cnetbench, prints the report and writes
# bench/results/results.md and docs/benchmarks-setup.svg.
#
# Usage: sudo scripts/bench.sh [cnetbench flags]   e.g. -quick, -n 1,100,
# -only ports,dns, -soak 2000 (bin/cnetbench -h lists them)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

if [ -z "${CNET_BENCH_SANDBOX:-}" ]; then
	[ "$(id -u)" = 0 ] || { echo "bench: needs root to make namespaces: run sudo make bench" >&2; exit 1; }
	need=()
	have() { command -v "$1" >/dev/null; }
	have ip || need+=(iproute2)
	have nft || need+=(nftables)
	have iptables || need+=(iptables)
	have unshare || need+=(util-linux)
	have iperf3 || need+=(iperf3)
	have wrk || need+=(wrk)
	[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && [ -x /usr/lib/cni/portmap ] || need+=(containernetworking-plugins)
	have netavark || [ -x /usr/lib/podman/netavark ] || need+=(netavark)
	have aardvark-dns || [ -x /usr/lib/podman/aardvark-dns ] || need+=(aardvark-dns)
	have dnsperf || need+=(dnsperf)
	have dnsmasq || [ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
	if [ ${#need[@]} -gt 0 ]; then
		echo "bench: installing ${need[*]}" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq "${need[@]}" >/dev/null
	fi
	make --no-print-directory build
	# The harness and the floor are a module of their own, bench/go.mod
	# (-C: build there; the outputs still go to the root's bin/).
	go build -C bench -o "$PWD/bin/cnetbench" .
	CGO_ENABLED=0 go build -C bench -trimpath -o "$PWD/bin/cnetfloor" ./cnetfloor
	state=$(mktemp -d /var/tmp/cnet-bench.XXXXXX)
	trap 'rm -rf "$state"' EXIT
	rc=0
	# The harness refuses to run in these namespaces.
	host_ns="net:$(stat -L -c %i /proc/self/ns/net) mnt:$(stat -L -c %i /proc/self/ns/mnt)"
	env CNET_BENCH_SANDBOX=1 CNET_BENCH_HOST_NS="$host_ns" CNET_ROOT="$state" unshare --net --mount --propagation private -- "$0" "$@" || rc=$?
	exit "$rc"
fi

# Inside the sandbox.
for d in /run/netns /etc/netns; do mkdir -p "$d" && mount -t tmpfs tmpfs "$d"; done
# State directories of the peers, where they exist on this machine (the
# harness also points CNI IPAM and netavark at a private tmpfs of its own).
for d in /run/cni /var/lib/cni /run/containers /var/lib/containers /run/netavark; do
	if [ -d "$d" ]; then mount -t tmpfs tmpfs "$d"; fi
done
ip link set lo up

rc=0
bin/cnetbench -cnet bin/cnet -echo-server bin/echo-server -floor bin/cnetfloor -root "$CNET_ROOT" "$@" || rc=$?

# Nothing may be left: no namespaces, no links but lo, no firewall tables,
# no process in the sandbox but this script.
self=$(readlink /proc/$$/ns/net)
procs() {
	for p in /proc/[0-9]*; do
		pid=${p#/proc/}
		[ "$pid" = $$ ] || [ "$pid" = "$BASHPID" ] && continue
		[ "$(readlink "$p/ns/net" 2>/dev/null)" = "$self" ] && echo "process $pid: $(tr '\0' ' ' <"$p/cmdline")"
	done
	return 0
}
left=$(ls -A /run/netns; ls -A /etc/netns; ip -o link | grep -v ': lo:' || true; nft list tables; procs)
if [ -n "$left" ]; then
	printf 'bench: left behind in the sandbox:\n%s\n' "$left" >&2
	rc=1
fi
exit "$rc"

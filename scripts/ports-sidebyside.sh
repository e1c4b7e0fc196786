#!/usr/bin/env bash
# Published-port throughput with 1 and with MAPPINGS mappings, side by
# side: two "hosts" (network namespaces), each with its own cnet root and
# so its own nftables table, one server container each (echo-server and
# iperf3) published on the host's LAN address; host B also holds
# MAPPINGS-1 filler mappings (publishes of 100, as the benchmark's ports
# part fills). A LAN namespace wired to both loads them in turn, round
# after round (iperf3, wrk keep-alive, wrk with a connection per request;
# SECONDS each), so a change in the machine's speed falls on both alike.
# Prints each side's medians and B over A.
#
# Runs in a throwaway sandbox (fresh network and mount namespaces, tmpfs
# over /run/netns and /etc/netns); state under /var/tmp, removed at the end.
# cnet runs under `nsenter --net`, not `ip netns exec`, whose private mount
# namespace would take the container namespaces' bind mounts with it.
#
# Usage: sudo scripts/ports-sidebyside.sh [-r ROUNDS] [-s SECONDS] [-m MAPPINGS] [CNET [ECHO-SERVER]]
# (defaults: 7 rounds, 5 s, 10000 mappings, bin/cnet, bin/echo-server)
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=7
secs=5
mappings=10000
while getopts r:s:m: o; do
	case $o in
	r) rounds=$OPTARG ;;
	s) secs=$OPTARG ;;
	m) mappings=$OPTARG ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
bin=$(realpath "${1:-bin/cnet}")
echo_bin=$(realpath "${2:-bin/echo-server}")
for b in "$bin" "$echo_bin"; do
	[ -x "$b" ] || { echo "ports-sidebyside: $b: missing (run make build)" >&2; exit 1; }
done
for t in iperf3 wrk ip jq curl; do
	command -v $t >/dev/null || { echo "ports-sidebyside: $t missing (apt-get install -y iperf3 wrk iproute2 jq curl)" >&2; exit 1; }
done

if [ -z "${CNET_SBS_SANDBOX:-}" ]; then
	[ "$(id -u)" = 0 ] || { echo "ports-sidebyside: needs root to make namespaces" >&2; exit 1; }
	exec env CNET_SBS_SANDBOX=1 unshare --net --mount --propagation private -- "$0" -r "$rounds" -s "$secs" -m "$mappings" "$bin" "$echo_bin"
fi

# Inside the sandbox: this namespace is the LAN.
for d in /run/netns /etc/netns; do mkdir -p "$d" && mount -t tmpfs tmpfs "$d"; done
ip link set lo up
state=$(mktemp -d /var/tmp/cnet-sbs.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for s in a b; do
		nsenter --net="/run/netns/host$s" env CNET_ROOT="$state/$s" "$bin" rm -f "srv$s" "fill$s" >/dev/null 2>&1 || true
		nsenter --net="/run/netns/host$s" env CNET_ROOT="$state/$s" "$bin" network rm "net$s" >/dev/null 2>&1 || true
		ip netns del "host$s" 2>/dev/null || true
	done
	rm -rf "$state"
}
trap cleanup EXIT

# host A: 198.18.1.1 (LAN end .2); host B: 198.18.2.1 (LAN end .2).
i=0
for s in a b; do
	i=$((i + 1))
	ip netns add "host$s"
	ip -n "host$s" link set lo up
	ip link add "lan$s" type veth peer name eth0 netns "host$s"
	ip addr add "198.18.$i.2/24" dev "lan$s"
	ip link set "lan$s" up
	ip -n "host$s" addr add "198.18.$i.1/24" dev eth0
	ip -n "host$s" link set eth0 up
	c() { nsenter --net="/run/netns/host$s" env CNET_ROOT="$state/$s" "$bin" "$@"; }
	c network create "net$s" --subnet "10.9$i.0.0/24" --no-dns >/dev/null
	c create "srv$s" --network "net$s" -p "198.18.$i.1:18000:8000" -p "198.18.$i.1:15201:5201" >/dev/null
	c create "fill$s" --network "net$s" >/dev/null
	ip netns exec "srv$s" "$echo_bin" -listen :8000 >/dev/null 2>&1 &
	pids+=($!)
	ip netns exec "srv$s" iperf3 -s >/dev/null 2>&1 &
	pids+=($!)
done
# Host B: MAPPINGS-1 more mappings on its filler container, 100 per publish.
have=2
port=20000
while [ "$have" -lt "$mappings" ]; do
	n=$((mappings - have < 100 ? mappings - have : 100))
	specs=()
	for ((k = 0; k < n; k++)); do specs+=("198.18.2.1:$((port + k)):8000"); done
	nsenter --net=/run/netns/hostb env CNET_ROOT="$state/b" "$bin" publish fillb "${specs[@]}" >/dev/null
	port=$((port + n))
	have=$((have + n))
done
echo "host A: 2 mappings; host B: $have mappings ($(date -u +%H:%M:%S))" >&2

# Wait for the servers through the published ports.
for i in 1 2; do
	for _ in $(seq 100); do
		curl -s -o /dev/null "http://198.18.$i.1:18000/echo" && break
		sleep 0.1
	done
done

declare -A res
run() { # side load -> number
	local i=$1 load=$2
	case $load in
	iperf3) iperf3 -c "198.18.$i.1" -p 15201 -t "$secs" -J | jq '.end.sum_received.bits_per_second / 1e9' ;;
	wrk) wrk -t2 -c32 -d"${secs}s" "http://198.18.$i.1:18000/echo" | awk '/Requests\/sec/ {print $2}' ;;
	close) wrk -t2 -c32 -d"${secs}s" -H "Connection: close" "http://198.18.$i.1:18000/echo" | awk '/Requests\/sec/ {print $2}' ;;
	esac
}
for ((r = 1; r <= rounds; r++)); do
	for load in iperf3 wrk close; do
		# Alternate which side goes first.
		if [ $((r % 2)) = 1 ]; then order="1 2"; else order="2 1"; fi
		for i in $order; do
			v=$(run "$i" "$load")
			res[$i,$load]+="$v "
			echo "round $r $load side $i: $v" >&2
		done
	done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
printf '%-8s %14s %14s %8s\n' load "A (2 mappings)" "B ($have)" "B / A"
for load in iperf3 wrk close; do
	a=$(echo "${res[1,$load]}" | median)
	b=$(echo "${res[2,$load]}" | median)
	printf '%-8s %14s %14s %7.1f%%\n' "$load" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN {print 100 * b / a}')"
done

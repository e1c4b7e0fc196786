#!/usr/bin/env bash
# Times cnet's commands with 65,535 published ports against the same
# commands with one, side by side: two cnet roots, each in its own network
# namespace with network `a` (--no-dns, so port 53 is free) and container
# w1. In each of REPS rounds, both sides (taking turns at going first) run
#
#	cnet create w1 --network a -p 1-65535:1-65535   (the other side: -p 8080:80)
#	cnet network create b --no-dns
#	cnet gc                                         (nothing to repair)
#	nft flush ruleset; cnet gc                      (rebuilds the firewall)
#	cnet network rm b
#	cnet rm w1
#
# and after each round checks that gc restored every mapping (nft lists
# 65,535 elements in dnat_tcp_any) and that rm left none. Prints the
# median wall time of each command per side and their ratio.
#
# Runs in a throwaway sandbox (fresh network and mount namespaces, tmpfs
# over /run/netns and /etc/netns); the state databases live on the real
# disk under /var/tmp, as in use, and are removed at the end.
#
# Usage: sudo scripts/many-ports.sh [-n REPS] [CNET]   (defaults: 5, bin/cnet)
set -euo pipefail
cd "$(dirname "$0")/.."

reps=5
while getopts n: o; do
	case $o in
	n) reps=$OPTARG ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
bin=$(realpath "${1:-bin/cnet}")
[ -x "$bin" ] || { echo "many-ports: $bin: no cnet binary (run make build)" >&2; exit 1; }

if [ -z "${CNET_MANYPORTS_SANDBOX:-}" ]; then
	[ "$(id -u)" = 0 ] || { echo "many-ports: needs root to make namespaces" >&2; exit 1; }
	exec env CNET_MANYPORTS_SANDBOX=1 unshare --net --mount --propagation private -- "$0" -n "$reps" "$bin"
fi

# Inside the sandbox.
for d in /run/netns /etc/netns; do mkdir -p "$d" && mount -t tmpfs tmpfs "$d"; done
ip link set lo up
state=$(mktemp -d /var/tmp/cnet-manyports.XXXXXX)
sides=(one all)
declare -A spec=([one]=8080:80 [all]=1-65535:1-65535)
for s in "${sides[@]}"; do
	ip netns add "mp$s"
	ip -n "mp$s" link set lo up
done
cleanup() {
	for s in "${sides[@]}"; do
		ip netns del "mp$s" || true
	done
	rm -rf "$state"
}
trap cleanup EXIT

# run SIDE ARGS...: run cnet (or, with "nft" first, nft) in the side's
# namespace; prints its wall time in microseconds.
run() {
	local s=$1 t0 t1
	shift
	local cmd=("$bin" --root "$state/$s")
	[ "$1" = nft ] && cmd=()
	t0=${EPOCHREALTIME/./}
	if ! nsenter --net="/run/netns/mp$s" "${cmd[@]}" "$@" >/dev/null 2>>"$state/$s.log"; then
		echo "many-ports: $* failed on the $s side:" >&2
		cat "$state/$s.log" >&2
		return 1
	fi
	t1=${EPOCHREALTIME/./}
	echo $((t1 - t0))
}

elems() {
	nsenter --net="/run/netns/mp$1" nft -j list map inet cnet dnat_tcp_any 2>/dev/null |
		python3 -c 'import json,sys; print(sum(len(o["map"].get("elem",[])) for o in json.load(sys.stdin)["nftables"] if "map" in o))' || echo 0
}

ops=(publish netcreate gc repair netrm rm)
declare -A times
for s in "${sides[@]}"; do
	run "$s" network create a --subnet 10.88.0.0/24 --no-dns >/dev/null
done
round() {
	local s=$1
	times[$s.publish]+="$(run "$s" create w1 --network a -p "${spec[$s]}") "
	times[$s.netcreate]+="$(run "$s" network create b --no-dns) "
	times[$s.gc]+="$(run "$s" gc) "
	run "$s" nft flush ruleset >/dev/null
	times[$s.repair]+="$(run "$s" gc) "
	local want=1
	[ "$s" = all ] && want=65535
	local got
	got=$(elems "$s")
	[ "$got" = "$want" ] || { echo "many-ports: after gc the $s side has $got mappings, want $want" >&2; exit 1; }
	times[$s.netrm]+="$(run "$s" network rm b) "
	times[$s.rm]+="$(run "$s" rm w1) "
	got=$(elems "$s")
	[ "$got" = 0 ] || { echo "many-ports: after rm the $s side has $got mappings" >&2; exit 1; }
}
for ((r = 0; r < reps; r++)); do
	if ((r % 2 == 0)); then round one; round all; else round all; round one; fi
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
declare -A label=([publish]="create w1 -p SPEC" [netcreate]="network create b" [gc]="gc, nothing to do"
	[repair]="gc after nft flush ruleset" [netrm]="network rm b" [rm]="rm w1")
printf "many-ports: median wall time of %d, 1 mapping vs 65,535\n" "$reps"
for op in "${ops[@]}"; do
	o=$(echo "${times[one.$op]}" | median)
	a=$(echo "${times[all.$op]}" | median)
	awk -v o="$o" -v a="$a" -v l="${label[$op]}" 'BEGIN{ printf "  %-28s %8.1f ms %8.1f ms  x%.1f\n", l, o/1000, a/1000, a/o }'
done

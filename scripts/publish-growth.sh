#!/usr/bin/env bash
# Times adding one published port through the whole CLI (`cnet publish
# CONTAINER 30000:8000`) with no mapping present and with MAPPINGS-1
# present, side by side: two cnet roots, each with its own network
# namespace, network and container; the second is filled with MAPPINGS-1
# mappings in publishes of 100 (as the benchmark's ports part fills), then
# the timed adds alternate between the two (each add undone, untimed, by
# `cnet unpublish`), so load on the machine falls on both alike. Prints
# the median of each side and their ratio, for wall time and for CPU time
# (user + system, which waiting for a core on a busy machine does not
# inflate).
#
# Runs in a throwaway sandbox (fresh network and mount namespaces, tmpfs
# over /run/netns and /etc/netns); the state databases live on the real
# disk under /var/tmp, as in use, and are removed at the end.
#
# With -f FLOWS, the second side's namespace also tracks FLOWS UDP flows
# (made with `conntrack -I`, 10 minutes' timeout) while it is timed, as
# the benchmark's data-path runs leave them between its 1st and its
# 10,000th add.
#
# Usage: sudo scripts/publish-growth.sh [-n REPS] [-m MAPPINGS] [-f FLOWS] [CNET]
# (defaults: 21 reps, 10000 mappings, no flows, bin/cnet)
set -euo pipefail
cd "$(dirname "$0")/.."

reps=21
mappings=10000
flows=0
while getopts n:m:f: o; do
	case $o in
	n) reps=$OPTARG ;;
	m) mappings=$OPTARG ;;
	f) flows=$OPTARG ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
bin=$(realpath "${1:-bin/cnet}")
[ -x "$bin" ] || { echo "publish-growth: $bin: no cnet binary (run make build)" >&2; exit 1; }

if [ -z "${CNET_GROWTH_SANDBOX:-}" ]; then
	[ "$(id -u)" = 0 ] || { echo "publish-growth: needs root to make namespaces" >&2; exit 1; }
	exec env CNET_GROWTH_SANDBOX=1 unshare --net --mount --propagation private -- "$0" -n "$reps" -m "$mappings" -f "$flows" "$bin"
fi

# Inside the sandbox.
for d in /run/netns /etc/netns; do mkdir -p "$d" && mount -t tmpfs tmpfs "$d"; done
ip link set lo up
state=$(mktemp -d /var/tmp/cnet-growth.XXXXXX)

# A worker runs cnet with one root inside one namespace: it reads a
# command line, runs it and answers with its wall time and its CPU time
# (user + system) in microseconds, or "ERR". (bash's time gives CPU time
# in milliseconds.)
worker() {
	local root=$1 line t t0 t1 user sys
	local TIMEFORMAT='%3U %3S'
	while read -r line; do
		t0=${EPOCHREALTIME/./}
		# shellcheck disable=SC2086 # the line is the argument list
		if t=$( { time "$bin" --root "$root" $line >/dev/null 2>>"$root.log"; } 2>&1); then
			t1=${EPOCHREALTIME/./}
			read -r user sys <<<"$t"
			echo "$((t1 - t0)) $(((10#${user/./} + 10#${sys/./}) * 1000))"
		else
			echo ERR
		fi
	done
}
export -f worker
export bin

sides=(first many)
declare -A in out
for s in "${sides[@]}"; do
	ip netns add "pg$s"
	ip -n "pg$s" link set lo up
	mkfifo "$state/$s.in" "$state/$s.out"
	nsenter --net="/run/netns/pg$s" bash -c 'worker "$0"' "$state/$s" <"$state/$s.in" >"$state/$s.out" &
	exec {fd}>"$state/$s.in"
	in[$s]=$fd
	exec {fd}<"$state/$s.out"
	out[$s]=$fd
done

# ask SIDE ARGS...: run one cnet command on a side, print its time.
ask() {
	local s=$1
	shift
	echo "$*" >&"${in[$s]}"
	local r
	read -r r <&"${out[$s]}"
	if [ "$r" = ERR ]; then
		echo "publish-growth: cnet $* failed on the $s side:" >&2
		cat "$state/$s.log" >&2
		return 1
	fi
	echo "$r"
}

cleanup() {
	for s in "${sides[@]}"; do
		ask "$s" rm "srv$s" >/dev/null || true
		ask "$s" network rm "net$s" >/dev/null || true
		exec {in[$s]}>&-
		ip netns del "pg$s" || true
	done
	wait
	rm -rf "$state"
}
trap cleanup EXIT

ask first network create netfirst --subnet 10.83.0.0/24 >/dev/null
ask many network create netmany --subnet 10.84.0.0/24 >/dev/null
ask first create srvfirst --network netfirst >/dev/null
ask many create srvmany --network netmany >/dev/null

have=0 next=20000
while ((have < mappings - 1)); do
	n=$((mappings - 1 - have))
	((n > 100)) && n=100
	ask many publish srvmany "$next-$((next + n - 1)):$next-$((next + n - 1))" >/dev/null
	next=$((next + n)) have=$((have + n))
done
for ((i = 0; i < flows; i++)); do
	nsenter --net=/run/netns/pgmany conntrack -I -p udp -s 198.18.$((i / 250 % 250)).$((i % 250 + 1)) -d 198.19.0.1 \
		--sport $((10000 + i % 50000)) --dport 5201 -t 600 2>/dev/null
done
if ((flows > 0)); then
	echo "publish-growth: $(nsenter --net=/run/netns/pgmany conntrack -C) flows tracked on the second side" >&2
fi
echo "publish-growth: $have mappings on the second side; timing $reps adds on each, alternating" >&2

declare -A wall cpu
add() { # add SIDE: time one publish, undo it
	local t
	t=$(ask "$1" publish "srv$1" 30000:8000)
	wall[$1]+="${t% *} " cpu[$1]+="${t#* } "
	ask "$1" unpublish "srv$1" 30000:8000 >/dev/null
}
for ((r = 0; r < reps; r++)); do
	if ((r % 2 == 0)); then add first; add many; else add many; add first; fi
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
for what in wall cpu; do
	declare -n t=$what
	f=$(echo "${t[first]}" | median)
	m=$(echo "${t[many]}" | median)
	awk -v f="$f" -v m="$m" -v n="$mappings" -v reps="$reps" -v what="$what" 'BEGIN{
		printf "cnet publish, %s time, median of %d: 1st mapping %.1f ms, %dth %.1f ms, x%.2f\n", what, reps, f/1000, n, m/1000, m/f }'
done

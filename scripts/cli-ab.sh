#!/usr/bin/env bash
# Times `cnet create` and `cnet rm` of two cnet builds side by side, to
# tell what a change did on a noisy machine. Both work on one network in
# one root (holding PRE other containers, made by the first build); each
# round creates and removes one container with each build, the order
# alternating round by round, so drift in the machine's speed falls on
# both alike. Prints each build's medians and the median of the per-round
# differences (second minus first), which cancels drift better than the
# difference of the medians.
#
# Runs in a throwaway sandbox (fresh network and mount namespaces, tmpfs
# over /run/netns and /etc/netns); the state database lives on the real
# disk under /var/tmp, as in use, and is removed at the end.
#
# With -b BATCH, each round creates BATCH containers with each build and
# removes them with one `cnet rm`: the create column is then the time of
# one create (the batch's total over BATCH), the rm column that of the
# whole batch.
#
# Usage: sudo scripts/cli-ab.sh [-r ROUNDS] [-n PRE] [-b BATCH] CNET_A CNET_B
# (defaults: 100 rounds, 3 other containers, batches of 1)
#
# For example, HEAD against an earlier commit:
#
#	git worktree add /tmp/old COMMIT && (cd /tmp/old && make build)
#	sudo scripts/cli-ab.sh /tmp/old/bin/cnet bin/cnet
set -euo pipefail

rounds=100
pre=3
batch=1
while getopts r:n:b: o; do
	case $o in
	r) rounds=$OPTARG ;;
	n) pre=$OPTARG ;;
	b) batch=$OPTARG ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# = 2 ] || { echo "usage: cli-ab.sh [-r ROUNDS] [-n PRE] [-b BATCH] CNET_A CNET_B" >&2; exit 2; }
for n in "$rounds" "$pre" "$batch"; do
	[[ $n =~ ^[0-9]+$ ]] && ((n <= 100000)) || { echo "cli-ab: $n: want a count from 0 to 100000" >&2; exit 2; }
done
((rounds > 0)) || { echo "cli-ab: -r 0: want at least 1 round" >&2; exit 2; }
((batch > 0)) || { echo "cli-ab: -b 0: want at least 1 container per batch" >&2; exit 2; }
a=$(realpath "$1") b=$(realpath "$2")
for bin in "$a" "$b"; do
	[ -x "$bin" ] || { echo "cli-ab: $bin: not an executable cnet" >&2; exit 1; }
done

if [ -z "${CNET_AB_SANDBOX:-}" ]; then
	[ "$(id -u)" = 0 ] || { echo "cli-ab: needs root to make namespaces" >&2; exit 1; }
	exec env CNET_AB_SANDBOX=1 unshare --net --mount --propagation private -- "$0" -r "$rounds" -n "$pre" -b "$batch" "$a" "$b"
fi

# Inside the sandbox.
for d in /run/netns /etc/netns; do mkdir -p "$d" && mount -t tmpfs tmpfs "$d"; done
ip link set lo up
root=$(mktemp -d /var/tmp/cnet-ab.XXXXXX)
cleanup() {
	local names
	mapfile -t names < <("$a" --root "$root" ls --json 2>/dev/null | jq -r '.[].name')
	((${#names[@]} == 0)) || "$a" --root "$root" rm -f "${names[@]}" >/dev/null || true
	"$a" --root "$root" network rm ab >/dev/null || true
	rm -rf "$root"
}
trap cleanup EXIT

"$a" --root "$root" network create ab --subnet 10.86.0.0/16 >/dev/null
for ((i = 0; i < pre; i++)); do
	"$a" --root "$root" create "pre$i" --network ab >/dev/null
done
echo "cli-ab: $pre other containers; $rounds rounds of create and rm of $batch with each build" >&2

# timed BIN ARGS...: run cnet, print its wall time in microseconds.
timed() {
	local t0=${EPOCHREALTIME/./}
	"$@" >/dev/null
	echo $((${EPOCHREALTIME/./} - t0))
}

data=$(mktemp)
for ((r = 0; r < rounds; r++)); do
	order=("$a" "$b")
	((r % 2)) && order=("$b" "$a")
	for bin in "${order[@]}"; do
		side=a
		[ "$bin" = "$b" ] && side=b
		c=0 names=()
		for ((i = 0; i < batch; i++)); do
			names+=("r$r$side$i")
			c=$((c + $(timed "$bin" --root "$root" create "r$r$side$i" --network ab)))
		done
		d=$(timed "$bin" --root "$root" rm "${names[@]}")
		echo "$r $side $((c / batch)) $d" >>"$data"
	done
done

# medians and paired differences, in ms
awk -v a="$a" -v b="$b" -v col1="create" -v col2="rm" -f "$(dirname "$0")/ab-report.awk" "$data"
rm -f "$data"

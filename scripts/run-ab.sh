#!/usr/bin/env bash
# Times `cnet run -d` and `cnet exec` of two cnet builds side by side, the
# way scripts/cli-ab.sh times create and rm: one root, each round runs
# both builds, the order alternating round by round, and the paired
# difference (second minus first) cancels the machine's drift. run -d
# starts `sleep 100` detached in a new container on --network none (the
# container is removed again, untimed); exec runs `true` in one container
# made first.
#
# Runs in a throwaway sandbox (fresh network and mount namespaces, tmpfs
# over /run/netns and /etc/netns); the state lives under /var/tmp and is
# removed at the end.
#
# Usage: sudo scripts/run-ab.sh [-r ROUNDS] CNET_A CNET_B (default 60 rounds)
set -euo pipefail

rounds=60
while getopts r: o; do
	case $o in
	r) rounds=$OPTARG ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# = 2 ] || { echo "usage: run-ab.sh [-r ROUNDS] CNET_A CNET_B" >&2; exit 2; }
[[ $rounds =~ ^[0-9]+$ ]] && ((rounds > 0 && rounds <= 100000)) || { echo "run-ab: -r $rounds: want 1 to 100000 rounds" >&2; exit 2; }
a=$(realpath "$1") b=$(realpath "$2")
for bin in "$a" "$b"; do
	[ -x "$bin" ] || { echo "run-ab: $bin: not an executable cnet" >&2; exit 1; }
done

if [ -z "${CNET_AB_SANDBOX:-}" ]; then
	[ "$(id -u)" = 0 ] || { echo "run-ab: needs root to make namespaces" >&2; exit 1; }
	exec env CNET_AB_SANDBOX=1 unshare --net --mount --propagation private -- "$0" -r "$rounds" "$a" "$b"
fi

# Inside the sandbox.
for d in /run/netns /etc/netns; do mkdir -p "$d" && mount -t tmpfs tmpfs "$d"; done
ip link set lo up
root=$(mktemp -d /var/tmp/cnet-run-ab.XXXXXX)
cleanup() {
	local names
	mapfile -t names < <("$a" --root "$root" ls --json 2>/dev/null | jq -r '.[].name')
	((${#names[@]} == 0)) || "$a" --root "$root" rm -f --grace 0s "${names[@]}" >/dev/null || true
	rm -rf "$root"
}
trap cleanup EXIT
"$a" --root "$root" create box --network none >/dev/null
echo "run-ab: $rounds rounds of run -d and exec with each build" >&2

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
		x=$(timed "$bin" --root "$root" run -d --name "r$r$side" --network none -- sleep 100)
		y=$(timed "$bin" --root "$root" exec box -- true)
		"$bin" --root "$root" rm -f --grace 0s "r$r$side" >/dev/null
		echo "$r $side $x $y" >>"$data"
	done
done

awk -v a="$a" -v b="$b" -v col1="run -d" -v col2="exec" -f "$(dirname "$0")/ab-report.awk" "$data"
rm -f "$data"

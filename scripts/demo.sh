#!/usr/bin/env bash
# The seed walkthrough, done by cnet, inside a throwaway sandbox: fresh
# network and mount namespaces with tmpfs over /run/netns and /etc/netns,
# so the machine's own network is never touched. Exits 0 only if every
# check passes. Usage: sudo scripts/demo.sh [BINDIR] (default: bin)
set -euo pipefail
BIN=$(cd "${1:-bin}" && pwd)

if [ -z "${CNET_DEMO_SANDBOX:-}" ]; then
	[ "$(id -u)" = 0 ] || { echo "demo: needs root to make namespaces: run sudo make demo" >&2; exit 1; }
	command -v unshare >/dev/null || { echo "demo: needs unshare (util-linux)" >&2; exit 1; }
	exec env CNET_DEMO_SANDBOX=1 unshare --net --mount --propagation private -- "$0" "$BIN"
fi

missing=""
for tool in ip nft curl jq ping setsid; do command -v "$tool" >/dev/null || missing+=" $tool"; done
[ -z "$missing" ] || { echo "demo: missing$missing: apt-get install -y iproute2 nftables curl jq iputils-ping" >&2; exit 1; }

# Inside the sandbox.
for d in /run/netns /etc/netns; do mkdir -p "$d" && mount -t tmpfs tmpfs "$d"; done
export CNET_ROOT=$(mktemp -d /tmp/cnet-demo.XXXXXX)
trap 'rm -rf "$CNET_ROOT"' EXIT
ip link set lo up
PATH=$BIN:$PATH

bold=$'\e[1m'; green=$'\e[32m'; red=$'\e[31m'; dim=$'\e[2m'; off=$'\e[0m'
[ -t 1 ] || { bold=; green=; red=; dim=; off=; }
failures=0
step() { printf '\n%s== %s%s\n' "$bold" "$1" "$off"; }
seed() { printf '%s   by hand: %s%s\n' "$dim" "$1" "$off"; }
run()  { printf '   $ %s\n' "$*"; "$@" 2>&1 | sed 's/^/     /'; return "${PIPESTATUS[0]}"; }
check() {
	local what=$1; shift
	local tries=${TRIES:-1}
	while ! out=$("$@" 2>&1) && [ "$tries" -gt 1 ]; do tries=$((tries - 1)); sleep 0.1; done
	if out=$("$@" 2>&1); then
		printf '   %sok%s   %s\n' "$green" "$off" "$what"
	else
		printf '   %sFAIL%s %s\n%s\n' "$red" "$off" "$what" "$(sed 's/^/        /' <<<"$out")"
		failures=$((failures + 1))
	fi
}

printf '%s\n' "$(cnet --version)"

step "1. A switch: the bridge cont-br0 holding the gateway 172.18.0.1/24, with NAT"
seed "ip link add cont-br0 type bridge; ip a add 172.18.0.1/24 dev cont-br0; ip link set cont-br0 up"
seed "iptables -t nat -A POSTROUTING -s 172.18.0.0/24 ! -o cont-br0 -j MASQUERADE; sysctl -w net.ipv4.ip_forward=1"
run cnet network create seed --subnet 172.18.0.0/24 --bridge cont-br0

step "2. container-1: a namespace, a veth to the bridge, an address, a default route, resolv.conf"
seed "ip netns add container-1; ip netns exec container-1 ip link set lo up"
seed "ip link add veth1 type veth peer name vethc1; ip link set vethc1 netns container-1; ip link set veth1 master cont-br0 up"
seed "ip netns exec container-1 ip a add 172.18.0.2/24 dev vethc1; ... ip r add default via 172.18.0.1"
seed "mkdir -p /etc/netns/container-1; echo nameserver 1.1.1.1 > /etc/netns/container-1/resolv.conf"
run cnet create container-1 --network seed --dns 1.1.1.1

step "3. container-2, the same way, in one command"
run cnet create container-2 --network seed --dns 1.1.1.1

step "4. The workload: an echo server in each container"
seed "ip netns exec container-1 ./echo-server &"
for c in container-1 container-2; do
	# (cnet run -d would create a new container; these ones exist already.)
	printf '   $ cnet exec %s -- echo-server &\n' "$c"
	setsid cnet exec "$c" -- echo-server >"$CNET_ROOT/$c.log" 2>&1 </dev/null &
done
for ip in 172.18.0.2 172.18.0.3; do
	for _ in $(seq 100); do curl -sf -o /dev/null --max-time 1 "http://$ip:8000/echo" && break; sleep 0.05; done
done
sed 's/^/     /' "$CNET_ROOT/container-1.log"

step "5. What cnet built"
run cnet ls
printf '\n   %-12s | %s\n   %s\n' Namespace IP "-------------+---------------"
printf '   %-12s | %s\n' Host "$(cnet network inspect seed | jq -r '.gateway')/24"
cnet ls --json | jq -r '.[] | "\(.name) \(.endpoints[0].address)"' | while read -r n a; do printf '   %-12s | %s\n' "$n" "$a"; done

step "6. Ping in every direction"
check "host -> container-1"        ping -c1 -W2 172.18.0.2
check "host -> container-2"        ping -c1 -W2 172.18.0.3
check "container-1 -> container-2" cnet exec container-1 -- ping -c1 -W2 172.18.0.3
check "container-2 -> container-1" cnet exec container-2 -- ping -c1 -W2 172.18.0.2
check "container-1 -> gateway"     cnet exec container-1 -- ping -c1 -W2 172.18.0.1

step "7. curl /echo"
run cnet exec container-1 -- curl -s http://172.18.0.3:8000/echo
check "from container-1 to container-2: JSON with headers and body" \
	bash -c 'cnet exec container-1 -- curl -s --max-time 5 http://172.18.0.3:8000/echo | jq -e ".body == \"Echo response\" and (.header[\"User-Agent\"] | length == 1)"'
check "from the host to container-1" \
	bash -c 'curl -s --max-time 5 http://172.18.0.2:8000/echo | jq -e ".body == \"Echo response\""'

step "8. resolv.conf inside a container"
run cnet exec container-2 -- cat /etc/resolv.conf
check "nameserver 1.1.1.1, as the seed writes it" bash -c 'cnet exec container-2 -- cat /etc/resolv.conf | grep -qx "nameserver 1.1.1.1"'

step "9. Masquerade: reach a host beyond that has no route back to 172.18.0.0/24"
seed "(a stand-in for the internet: one more namespace on a veth, 198.51.100.1)"
ip netns add internet
ip link add up0 type veth peer name wan0 netns internet
ip addr add 198.51.100.254/24 dev up0 && ip link set up0 up
ip -n internet addr add 198.51.100.1/24 dev wan0 && ip -n internet link set wan0 up && ip -n internet link set lo up
setsid ip netns exec internet "$BIN/echo-server" -listen 198.51.100.1:80 >/dev/null 2>&1 </dev/null &
for _ in $(seq 100); do ip netns exec internet curl -sf -o /dev/null --max-time 1 http://198.51.100.1/echo && break; sleep 0.05; done
check "container-1 -> 198.51.100.1, answered through NAT" cnet exec container-1 -- curl -sf --max-time 5 -o /dev/null http://198.51.100.1/echo

step "10. Tear down: nothing is left behind"
run cnet rm -f --grace 2s container-1 container-2
run cnet network rm seed
kill $(ip netns pids internet) 2>/dev/null || true
ip link del up0; ip netns del internet
# The kernel frees a deleted namespace's veths asynchronously: allow it 5 s.
TRIES=50 check "no links but lo"  bash -c '[ "$(ip -o link | grep -cv ": lo:")" = 0 ]'
check "no namespaces"             bash -c '[ -z "$(ls /run/netns)" ]'
check "no /etc/netns files"       bash -c '[ -z "$(ls /etc/netns)" ]'
check "no nftables table"         bash -c '[ -z "$(nft list ruleset)" ]'

echo
if [ "$failures" = 0 ]; then
	printf '%sdemo passed: every check ok%s\n' "$green" "$off"
else
	printf '%sdemo failed: %d check(s) failed%s\n' "$red" "$failures" "$off"
	exit 1
fi

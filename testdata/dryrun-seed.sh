#!/bin/sh -e
# cnet network create seed --subnet 172.18.0.0/24 --bridge cont-br0 --dry-run
# (dry run: nothing was changed; cnet's ownership marks are left out)

# add bridge: the network's switch: bridge cont-br0 holding the gateway 172.18.0.1/24; route_localnet lets ports published on 127.0.0.1 through
ip link add cont-br0 address 02:63:ac:12:00:01 mtu 1500 type bridge
ip addr add 172.18.0.1/24 dev cont-br0
ip link set cont-br0 up
sysctl -w net.ipv4.conf.cont-br0.route_localnet=1

# set firewall: table inet cnet and table bridge cnet, rebuilt whole in one atomic batch: NAT for the subnets, isolation between networks, published ports, and anti-spoofing at every endpoint's bridge port
nft -f - <<'EOF'
add table inet cnet
delete table inet cnet
add table bridge cnet
delete table bridge cnet
table bridge cnet {
	set ports {
		type ifname
	}

	set portmac {
		type ifname . ether_addr
	}

	set portip {
		type ifname . ipv4_addr
	}

	set routers {
		type ifname
	}

	chain prerouting {
		type filter hook prerouting priority 0; policy accept;
		iifname != @ports accept
		iifname . ether saddr != @portmac drop
		ether type != { ip, arp } drop
		ether type arp iifname . arp saddr ip != @portip drop
		ether type arp iifname . arp saddr ether != @portmac drop
		iifname @routers accept
		ether type ip iifname . ip saddr != @portip drop
	}
}

table inet cnet {
	set bridges {
		type ifname
		elements = { "cont-br0" }
	}

	set internal {
		type ifname
	}

	set samebr {
		type ifname . ifname
		elements = { "cont-br0" . "cont-br0" }
	}

	set masq {
		type ipv4_addr
		flags interval
		elements = { 172.18.0.0/24 }
	}

	map dnat_tcp {
		type ipv4_addr . inet_service : ipv4_addr . inet_service
	}

	map dnat_tcp_any {
		type inet_service : ipv4_addr . inet_service
	}

	map dnat_udp {
		type ipv4_addr . inet_service : ipv4_addr . inet_service
	}

	map dnat_udp_any {
		type inet_service : ipv4_addr . inet_service
	}

	chain raw_prerouting {
		type filter hook prerouting priority raw; policy accept;
		iifname != "lo" ip daddr 127.0.0.0/8 drop
	}

	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local dnat ip to ip daddr . tcp dport map @dnat_tcp
		fib daddr type local dnat ip to tcp dport map @dnat_tcp_any
		fib daddr type local dnat ip to ip daddr . udp dport map @dnat_udp
		fib daddr type local dnat ip to udp dport map @dnat_udp_any
	}

	chain output {
		type nat hook output priority -100; policy accept;
		fib daddr type local dnat ip to ip daddr . tcp dport map @dnat_tcp
		fib daddr type local dnat ip to tcp dport map @dnat_tcp_any
		fib daddr type local dnat ip to ip daddr . udp dport map @dnat_udp
		fib daddr type local dnat ip to udp dport map @dnat_udp_any
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname . oifname @samebr accept
		iifname @internal drop
		oifname @internal drop
		oifname @bridges ct status dnat accept
		iifname @bridges oifname @bridges drop
		oifname @bridges ct state established,related accept
		oifname @bridges drop
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr @masq oifname != @bridges masquerade
		oifname @bridges ct status dnat ip saddr 127.0.0.0/8 masquerade
		oifname @bridges ct status dnat ip saddr @masq masquerade
	}
}
EOF

# add forwarding: forward packets between interfaces, so containers reach beyond the host
sysctl -w net.ipv4.ip_forward=1

# set dns: cnet's name server (cnet __dns, in the host's namespace) has no ip or nft equivalent
# cnet starts its name server (`cnet __dns`, logging to RUNDIR/dns/server.log) with every record
# it answers on port 53, udp and tcp, of 172.18.0.1 (seed); other names go to the host's nameservers
# network seed: names NAME and NAME.seed.cnet of its containers

#!/bin/sh -e
# cnet create container-1 --network seed --dry-run
# (dry run: nothing was changed; cnet's ownership marks are left out)

# add netns: the container container-1: a network namespace bound at /run/netns/container-1, with lo up
ip netns add container-1
ip -n container-1 link set lo up

# add endpoint: veth pair veth9233800 (host end, on cont-br0) - eth0 (inside container-1) with 172.18.0.2/24; frames from veth9233800 must carry eth0's MAC and address
ip link add veth9233800 mtu 1500 type veth peer name eth0 address 02:63:ac:12:00:02 mtu 1500 netns container-1
sysctl -w net.ipv6.conf.veth9233800.disable_ipv6=1
ip link set veth9233800 master cont-br0
ip link set veth9233800 up
ip -n container-1 addr add 172.18.0.2/24 dev eth0
ip -n container-1 link set eth0 up
ip -n container-1 route add default via 172.18.0.1 dev eth0 src 172.18.0.2
nft -f - <<'EOF'
add element bridge cnet ports { "veth9233800" }
add element bridge cnet portmac { "veth9233800" . 02:63:ac:12:00:02 }
add element bridge cnet portip { "veth9233800" . 172.18.0.2 }
EOF

# set files: resolv.conf and hosts of container-1, which ip netns exec and cnet exec mount over /etc
mkdir -p /etc/netns/container-1
cat > /etc/netns/container-1/resolv.conf <<'EOF'
nameserver 172.18.0.1
search seed.cnet
EOF
cat > /etc/netns/container-1/hosts <<'EOF'
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
172.18.0.2	container-1
EOF

# set dns: cnet's name server (cnet __dns, in the host's namespace) has no ip or nft equivalent
# it answers on port 53, udp and tcp, of 172.18.0.1 (seed); other names go to the host's nameservers
# container container-1: container-1 -> 172.18.0.2 on seed

#!/bin/sh -e
# cnet create container-2 --network seed -p 8080:8000 --dry-run
# (dry run: nothing was changed; cnet's ownership marks are left out)

# add netns: the container container-2: a network namespace bound at /run/netns/container-2, with lo up
ip netns add container-2
ip -n container-2 link set lo up

# add endpoint: veth pair veth7c8dc2d (host end, on cont-br0) - eth0 (inside container-2) with 172.18.0.3/24; frames from veth7c8dc2d must carry eth0's MAC and address
ip link add veth7c8dc2d mtu 1500 type veth peer name eth0 address 02:63:ac:12:00:03 mtu 1500 netns container-2
sysctl -w net.ipv6.conf.veth7c8dc2d.disable_ipv6=1
ip link set veth7c8dc2d master cont-br0
ip link set veth7c8dc2d up
ip -n container-2 addr add 172.18.0.3/24 dev eth0
ip -n container-2 link set eth0 up
ip -n container-2 route add default via 172.18.0.1 dev eth0 src 172.18.0.3
nft -f - <<'EOF'
add element bridge cnet ports { "veth7c8dc2d" }
add element bridge cnet portmac { "veth7c8dc2d" . 02:63:ac:12:00:03 }
add element bridge cnet portip { "veth7c8dc2d" . 172.18.0.3 }
EOF

# add hairpin: hairpin on veth7c8dc2d, so the container reaches its own published ports through the host
bridge link set dev veth7c8dc2d hairpin on

# add ports: publish 0.0.0.0:8080->172.18.0.3:8000/tcp; stale connection-tracking entries of those host ports go
nft add element inet cnet dnat_tcp_any { 8080 : 172.18.0.3 . 8000 }
conntrack -D -p tcp --orig-port-dst 8080 2>/dev/null || true

# set files: resolv.conf and hosts of container-2, which ip netns exec and cnet exec mount over /etc
mkdir -p /etc/netns/container-2
cat > /etc/netns/container-2/resolv.conf <<'EOF'
nameserver 172.18.0.1
search seed.cnet
EOF
cat > /etc/netns/container-2/hosts <<'EOF'
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
172.18.0.3	container-2
EOF

# set dns: cnet's name server (cnet __dns, in the host's namespace) has no ip or nft equivalent
# it answers on port 53, udp and tcp, of 172.18.0.1 (seed); other names go to the host's nameservers
# container container-2: container-2 -> 172.18.0.3 on seed

#!/bin/sh -e
# cnet network create front --subnet 172.19.0.0/24 --dry-run
# (dry run: nothing was changed; cnet's ownership marks are left out)

# add bridge: the network's switch: bridge cnet-front holding the gateway 172.19.0.1/24; route_localnet lets ports published on 127.0.0.1 through
ip link add cnet-front address 02:63:ac:13:00:01 mtu 1500 type bridge
ip addr add 172.19.0.1/24 dev cnet-front
ip link set cnet-front up
sysctl -w net.ipv4.conf.cnet-front.route_localnet=1

# set firewall: table inet cnet and table bridge cnet, rebuilt whole in one atomic batch: NAT for the subnets, isolation between networks, published ports, and anti-spoofing at every endpoint's bridge port
nft -f - <<'EOF'
add table inet cnet
delete table inet cnet
add table bridge cnet
delete table bridge cnet
table bridge cnet {
	set ports {
		type ifname
		elements = { "veth7c8dc2d", "veth9233800" }
	}

	set portmac {
		type ifname . ether_addr
		elements = { "veth7c8dc2d" . 02:63:ac:12:00:03, "veth9233800" . 02:63:ac:12:00:02 }
	}

	set portip {
		type ifname . ipv4_addr
		elements = { "veth7c8dc2d" . 172.18.0.3, "veth9233800" . 172.18.0.2 }
	}

	set routers {
		type ifname
	}

	chain prerouting {
		type filter hook prerouting priority 0; policy accept;
		iifname != @ports accept
		iifname . ether saddr != @portmac drop
		ether type != { ip, arp } drop
		ether type arp iifname . arp saddr ip != @portip drop
		ether type arp iifname . arp saddr ether != @portmac drop
		iifname @routers accept
		ether type ip iifname . ip saddr != @portip drop
	}
}

table inet cnet {
	set bridges {
		type ifname
		elements = { "cnet-front", "cont-br0" }
	}

	set internal {
		type ifname
	}

	set samebr {
		type ifname . ifname
		elements = { "cnet-front" . "cnet-front", "cont-br0" . "cont-br0" }
	}

	set masq {
		type ipv4_addr
		flags interval
		elements = { 172.18.0.0/24, 172.19.0.0/24 }
	}

	map dnat_tcp {
		type ipv4_addr . inet_service : ipv4_addr . inet_service
	}

	map dnat_tcp_any {
		type inet_service : ipv4_addr . inet_service
		elements = { 8080 : 172.18.0.3 . 8000 }
	}

	map dnat_udp {
		type ipv4_addr . inet_service : ipv4_addr . inet_service
	}

	map dnat_udp_any {
		type inet_service : ipv4_addr . inet_service
	}

	chain raw_prerouting {
		type filter hook prerouting priority raw; policy accept;
		iifname != "lo" ip daddr 127.0.0.0/8 drop
	}

	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local dnat ip to ip daddr . tcp dport map @dnat_tcp
		fib daddr type local dnat ip to tcp dport map @dnat_tcp_any
		fib daddr type local dnat ip to ip daddr . udp dport map @dnat_udp
		fib daddr type local dnat ip to udp dport map @dnat_udp_any
	}

	chain output {
		type nat hook output priority -100; policy accept;
		fib daddr type local dnat ip to ip daddr . tcp dport map @dnat_tcp
		fib daddr type local dnat ip to tcp dport map @dnat_tcp_any
		fib daddr type local dnat ip to ip daddr . udp dport map @dnat_udp
		fib daddr type local dnat ip to udp dport map @dnat_udp_any
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname . oifname @samebr accept
		iifname @internal drop
		oifname @internal drop
		oifname @bridges ct status dnat accept
		iifname @bridges oifname @bridges drop
		oifname @bridges ct state established,related accept
		oifname @bridges drop
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr @masq oifname != @bridges masquerade
		oifname @bridges ct status dnat ip saddr 127.0.0.0/8 masquerade
		oifname @bridges ct status dnat ip saddr @masq masquerade
	}
}
EOF

# set dns: cnet's name server (cnet __dns, in the host's namespace) has no ip or nft equivalent
# it answers on port 53, udp and tcp, of 172.19.0.1 (front), 172.18.0.1 (seed); other names go to the host's nameservers
# network front: names NAME and NAME.front.cnet of its containers

#!/bin/sh -e
# cnet connect front container-2 --alias web --dry-run
# (dry run: nothing was changed; cnet's ownership marks are left out)

# add endpoint: veth pair vetha5cd1a1 (host end, on cnet-front) - eth1 (inside container-2) with 172.19.0.2/24; frames from vetha5cd1a1 must carry eth1's MAC and address
ip link add vetha5cd1a1 mtu 1500 type veth peer name eth1 address 02:63:ac:13:00:02 mtu 1500 netns container-2
sysctl -w net.ipv6.conf.vetha5cd1a1.disable_ipv6=1
ip link set vetha5cd1a1 master cnet-front
ip link set vetha5cd1a1 up
ip -n container-2 addr add 172.19.0.2/24 dev eth1
ip -n container-2 link set eth1 up
nft -f - <<'EOF'
add element bridge cnet ports { "vetha5cd1a1" }
add element bridge cnet portmac { "vetha5cd1a1" . 02:63:ac:13:00:02 }
add element bridge cnet portip { "vetha5cd1a1" . 172.19.0.2 }
EOF

# set files: resolv.conf and hosts of container-2, which ip netns exec and cnet exec mount over /etc
mkdir -p /etc/netns/container-2
cat > /etc/netns/container-2/resolv.conf <<'EOF'
nameserver 172.18.0.1
nameserver 172.19.0.1
search seed.cnet front.cnet
EOF
cat > /etc/netns/container-2/hosts <<'EOF'
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
172.18.0.3	container-2
172.19.0.2	container-2
EOF

# set dns: cnet's name server (cnet __dns, in the host's namespace) has no ip or nft equivalent
# it answers on port 53, udp and tcp, of 172.19.0.1 (front), 172.18.0.1 (seed); other names go to the host's nameservers
# container container-2: container-2 -> 172.18.0.3 on seed; container-2, web -> 172.19.0.2 on front

#!/bin/sh -e
# cnet publish container-1 127.0.0.1:5353:53/udp 9090:80 --dry-run
# (dry run: nothing was changed; cnet's ownership marks are left out)

# add hairpin: hairpin on veth9233800, so the container reaches its own published ports through the host
bridge link set dev veth9233800 hairpin on

# add ports: publish 127.0.0.1:5353->172.18.0.2:53/udp, 0.0.0.0:9090->172.18.0.2:80/tcp; stale connection-tracking entries of those host ports go
nft -f - <<'EOF'
add element inet cnet dnat_tcp_any { 9090 : 172.18.0.2 . 80 }
add element inet cnet dnat_udp { 127.0.0.1 . 5353 : 172.18.0.2 . 53 }
EOF
conntrack -D -p udp --orig-port-dst 5353 --orig-dst 127.0.0.1 2>/dev/null || true
conntrack -D -p tcp --orig-port-dst 9090 2>/dev/null || true

#!/bin/sh -e
# cnet unpublish container-1 9090:80 --dry-run
# (dry run: nothing was changed; cnet's ownership marks are left out)

# del ports: unpublish 0.0.0.0:9090->172.18.0.2:80/tcp; the connections they carried are forgotten
nft delete element inet cnet dnat_tcp_any { 9090 }
conntrack -D -p tcp --orig-port-dst 9090 --reply-src 172.18.0.2 2>/dev/null || true

#!/bin/sh -e
# cnet disconnect seed container-2 --dry-run
# (dry run: nothing was changed; cnet's ownership marks are left out)

# del ports: unpublish 0.0.0.0:8080->172.18.0.3:8000/tcp; the connections they carried are forgotten
nft delete element inet cnet dnat_tcp_any { 8080 }
conntrack -D -p tcp --orig-port-dst 8080 --reply-src 172.18.0.3 2>/dev/null || true

# del endpoint: the veth pair veth7c8dc2d - eth0 goes (deleting one end deletes both), with its anti-spoofing entry
nft -f - <<'EOF'
delete element bridge cnet ports { "veth7c8dc2d" }
delete element bridge cnet portmac { "veth7c8dc2d" . 02:63:ac:12:00:03 }
delete element bridge cnet portip { "veth7c8dc2d" . 172.18.0.3 }
EOF
ip link del veth7c8dc2d

# add route: the default route of container-2 moves to eth1
ip -n container-2 route replace default via 172.19.0.1 dev eth1 src 172.19.0.2

# add hairpin: hairpin on vetha5cd1a1, so the container reaches its own published ports through the host
bridge link set dev vetha5cd1a1 hairpin on

# add ports: publish 0.0.0.0:8080->172.19.0.2:8000/tcp; stale connection-tracking entries of those host ports go
nft add element inet cnet dnat_tcp_any { 8080 : 172.19.0.2 . 8000 }
conntrack -D -p tcp --orig-port-dst 8080 2>/dev/null || true

# set files: resolv.conf and hosts of container-2, which ip netns exec and cnet exec mount over /etc
mkdir -p /etc/netns/container-2
cat > /etc/netns/container-2/resolv.conf <<'EOF'
nameserver 172.19.0.1
search front.cnet
EOF
cat > /etc/netns/container-2/hosts <<'EOF'
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
172.19.0.2	container-2
EOF

# set dns: cnet's name server (cnet __dns, in the host's namespace) has no ip or nft equivalent
# it answers on port 53, udp and tcp, of 172.19.0.1 (front), 172.18.0.1 (seed); other names go to the host's nameservers
# container container-2: container-2, web -> 172.19.0.2 on front

#!/bin/sh -e
# cnet network rm front --force --dry-run
# (dry run: nothing was changed; cnet's ownership marks are left out)

# del ports: unpublish 0.0.0.0:8080->172.19.0.2:8000/tcp; the connections they carried are forgotten
nft delete element inet cnet dnat_tcp_any { 8080 }
conntrack -D -p tcp --orig-port-dst 8080 --reply-src 172.19.0.2 2>/dev/null || true

# del endpoints: the veth pairs of 1 endpoint(s) go in one kernel batch, after their anti-spoofing entries: vetha5cd1a1
nft -f - <<'EOF'
delete element bridge cnet ports { "vetha5cd1a1" }
delete element bridge cnet portmac { "vetha5cd1a1" . 02:63:ac:13:00:02 }
delete element bridge cnet portip { "vetha5cd1a1" . 172.19.0.2 }
EOF
ip link del vetha5cd1a1

# set files: resolv.conf and hosts of container-2, which ip netns exec and cnet exec mount over /etc
mkdir -p /etc/netns/container-2
cat > /etc/netns/container-2/resolv.conf <<'EOF'
nameserver 192.0.2.53
EOF
cat > /etc/netns/container-2/hosts <<'EOF'
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
EOF

# set firewall: table inet cnet and table bridge cnet, rebuilt whole in one atomic batch: NAT for the subnets, isolation between networks, published ports, and anti-spoofing at every endpoint's bridge port
nft -f - <<'EOF'
add table inet cnet
delete table inet cnet
add table bridge cnet
delete table bridge cnet
table bridge cnet {
	set ports {
		type ifname
		elements = { "veth9233800" }
	}

	set portmac {
		type ifname . ether_addr
		elements = { "veth9233800" . 02:63:ac:12:00:02 }
	}

	set portip {
		type ifname . ipv4_addr
		elements = { "veth9233800" . 172.18.0.2 }
	}

	set routers {
		type ifname
	}

	chain prerouting {
		type filter hook prerouting priority 0; policy accept;
		iifname != @ports accept
		iifname . ether saddr != @portmac drop
		ether type != { ip, arp } drop
		ether type arp iifname . arp saddr ip != @portip drop
		ether type arp iifname . arp saddr ether != @portmac drop
		iifname @routers accept
		ether type ip iifname . ip saddr != @portip drop
	}
}

table inet cnet {
	set bridges {
		type ifname
		elements = { "cont-br0" }
	}

	set internal {
		type ifname
	}

	set samebr {
		type ifname . ifname
		elements = { "cont-br0" . "cont-br0" }
	}

	set masq {
		type ipv4_addr
		flags interval
		elements = { 172.18.0.0/24 }
	}

	map dnat_tcp {
		type ipv4_addr . inet_service : ipv4_addr . inet_service
	}

	map dnat_tcp_any {
		type inet_service : ipv4_addr . inet_service
	}

	map dnat_udp {
		type ipv4_addr . inet_service : ipv4_addr . inet_service
		elements = { 127.0.0.1 . 5353 : 172.18.0.2 . 53 }
	}

	map dnat_udp_any {
		type inet_service : ipv4_addr . inet_service
	}

	chain raw_prerouting {
		type filter hook prerouting priority raw; policy accept;
		iifname != "lo" ip daddr 127.0.0.0/8 drop
	}

	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		fib daddr type local dnat ip to ip daddr . tcp dport map @dnat_tcp
		fib daddr type local dnat ip to tcp dport map @dnat_tcp_any
		fib daddr type local dnat ip to ip daddr . udp dport map @dnat_udp
		fib daddr type local dnat ip to udp dport map @dnat_udp_any
	}

	chain output {
		type nat hook output priority -100; policy accept;
		fib daddr type local dnat ip to ip daddr . tcp dport map @dnat_tcp
		fib daddr type local dnat ip to tcp dport map @dnat_tcp_any
		fib daddr type local dnat ip to ip daddr . udp dport map @dnat_udp
		fib daddr type local dnat ip to udp dport map @dnat_udp_any
	}

	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname . oifname @samebr accept
		iifname @internal drop
		oifname @internal drop
		oifname @bridges ct status dnat accept
		iifname @bridges oifname @bridges drop
		oifname @bridges ct state established,related accept
		oifname @bridges drop
	}

	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr @masq oifname != @bridges masquerade
		oifname @bridges ct status dnat ip saddr 127.0.0.0/8 masquerade
		oifname @bridges ct status dnat ip saddr @masq masquerade
	}
}
EOF

# set dns: cnet's name server (cnet __dns, in the host's namespace) has no ip or nft equivalent
# it answers on port 53, udp and tcp, of 172.18.0.1 (seed); other names go to the host's nameservers
# network front: no names any more
# container container-2: no names

# del bridge: the bridge cnet-front goes, with its gateway address
ip link del cnet-front

#!/bin/sh -e
# cnet rm container-1 container-2 --dry-run
# (dry run: nothing was changed; cnet's ownership marks are left out)

# del ports: unpublish 127.0.0.1:5353->172.18.0.2:53/udp; the connections they carried are forgotten
nft delete element inet cnet dnat_udp { 127.0.0.1 . 5353 }
conntrack -D -p udp --orig-port-dst 5353 --reply-src 172.18.0.2 2>/dev/null || true

# del files: the files of container-1 go (/etc/netns/container-1)
rm -f /etc/netns/container-1/resolv.conf /etc/netns/container-1/hosts
rmdir --ignore-fail-on-non-empty /etc/netns/container-1

# del files: the files of container-2 go (/etc/netns/container-2)
rm -f /etc/netns/container-2/resolv.conf /etc/netns/container-2/hosts
rmdir --ignore-fail-on-non-empty /etc/netns/container-2

# set dns: cnet's name server (cnet __dns, in the host's namespace) has no ip or nft equivalent
# it answers on port 53, udp and tcp, of 172.18.0.1 (seed); other names go to the host's nameservers
# container container-1: its names go
# container container-2: its names go

# del namespaces: the namespaces of container-1, container-2 go, and their veths with them, after their anti-spoofing entries
nft -f - <<'EOF'
delete element bridge cnet ports { "veth9233800" }
delete element bridge cnet portmac { "veth9233800" . 02:63:ac:12:00:02 }
delete element bridge cnet portip { "veth9233800" . 172.18.0.2 }
EOF
ip netns del container-1
ip netns del container-2

#!/bin/sh -e
# cnet network rm seed --dry-run
# (dry run: nothing was changed; cnet's ownership marks are left out)

# set firewall: no network is left: table inet cnet and table bridge cnet go
nft -f - <<'EOF'
add table inet cnet
delete table inet cnet
add table bridge cnet
delete table bridge cnet
EOF

# set dns: cnet's name server (cnet __dns, in the host's namespace) has no ip or nft equivalent
# cnet stops its name server: no network serves names any more

# del bridge: the bridge cont-br0 goes, with its gateway address
ip link del cont-br0


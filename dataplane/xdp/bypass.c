// SPDX-License-Identifier: Apache-2.0
//
// XDP bypass of judged flows on a net_af_xdp port: loaded by DPDK's AF_XDP PMD through its
// `xdp_prog=` devarg in place of the default program, it hands every frame to the port's AF_XDP
// socket (`xsks_map`, which the PMD fills) except the packets of TCP and UDP flows the worker
// has judged and put in `ptl_bypass`: those it drops in the driver, counting their packets,
// bytes and last time (CLOCK_MONOTONIC ns) in the map entry of their direction, so the worker
// can keep an active flow alive (it reads the last time before ending a flow on idle time) and
// add the counts back to the flow record when the flow ends. TCP FIN and RST always reach the
// worker, so flows end on time. Anything it cannot parse (not Ethernet/802.1Q + IPv4/IPv6 +
// TCP/UDP, IPv6 extension headers; IPv4 options are fine) goes to the socket unchanged.
//
// Owns: the per-packet lookup and the counters of bypassed packets. Must not: insert or delete
// flows (the worker does, through bpf syscalls, once per flow), or drop anything not in the map.
//
// Built at compile time by dataplane/build.rs: clang -O2 -g -target bpf -c bypass.c.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// One direction of a flow: the key the worker writes (`dataplane/src/dpdk/xdp.rs`, same layout).
struct ptl_bypass_key {
	__u8 src[16];    // IPv4: the address in the first 4 bytes, the rest zero
	__u8 dst[16];
	__u16 src_port;  // network byte order
	__u16 dst_port;
	__u8 family;     // 4 or 6
	__u8 proto;      // IPPROTO_TCP or IPPROTO_UDP
	__u8 pad[2];
};

// What the driver dropped for that direction since the worker inserted it.
struct ptl_bypass_counters {
	__u64 packets;
	__u64 bytes;
	__u64 last_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ptl_bypass_key);
	__type(value, struct ptl_bypass_counters);
} ptl_bypass SEC(".maps");

#define VLAN_ETHERTYPE 0x8100

static __always_inline int to_socket(struct xdp_md *ctx)
{
	return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
}

SEC("xdp")
int ptl_xdp_bypass(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ptl_bypass_key key = {};
	__u16 proto;
	void *l3, *l4;

	if ((void *)(eth + 1) > end)
		return to_socket(ctx);
	proto = eth->h_proto;
	l3 = eth + 1;
	if (proto == bpf_htons(VLAN_ETHERTYPE)) {
		__u16 *tag = l3;
		if ((void *)(tag + 2) > end)
			return to_socket(ctx);
		proto = tag[1];
		l3 = tag + 2;
	}
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		if ((void *)(ip + 1) > end || ip->ihl < 5 ||
		    (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP))
			return to_socket(ctx);
		// Fragments go to the worker (no ports in later ones).
		if (ip->frag_off & bpf_htons(0x3fff))
			return to_socket(ctx);
		__builtin_memcpy(key.src, &ip->saddr, 4);
		__builtin_memcpy(key.dst, &ip->daddr, 4);
		key.family = 4;
		key.proto = ip->protocol;
		l4 = (void *)ip + ip->ihl * 4;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > end ||
		    (ip6->nexthdr != IPPROTO_TCP && ip6->nexthdr != IPPROTO_UDP))
			return to_socket(ctx);
		__builtin_memcpy(key.src, &ip6->saddr, 16);
		__builtin_memcpy(key.dst, &ip6->daddr, 16);
		key.family = 6;
		key.proto = ip6->nexthdr;
		l4 = (void *)(ip6 + 1);
	} else {
		return to_socket(ctx);
	}
	if (key.proto == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;
		if ((void *)(tcp + 1) > end)
			return to_socket(ctx);
		if (tcp->fin || tcp->rst)
			return to_socket(ctx);
		key.src_port = tcp->source;
		key.dst_port = tcp->dest;
	} else {
		struct udphdr *udp = l4;
		if ((void *)(udp + 1) > end)
			return to_socket(ctx);
		key.src_port = udp->source;
		key.dst_port = udp->dest;
	}
	struct ptl_bypass_counters *c = bpf_map_lookup_elem(&ptl_bypass, &key);
	if (!c)
		return to_socket(ctx);
	__sync_fetch_and_add(&c->packets, 1);
	__sync_fetch_and_add(&c->bytes, (__u64)(end - data));
	c->last_ns = bpf_ktime_get_ns();
	return XDP_DROP;
}

char _license[] SEC("license") = "GPL";

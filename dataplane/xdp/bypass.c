// SPDX-License-Identifier: Apache-2.0
//
// XDP bypass of judged flows on a net_af_xdp port: loaded by DPDK's AF_XDP PMD through its
// `xdp_prog=` devarg in place of the default program, it hands every frame to the port's AF_XDP
// socket (`xsks_map`, which the PMD fills) except the packets of TCP and UDP flows the worker
// has judged and put in `ptl_bypass` (and the payload-free packets of decided flows whose
// payload a parser still reads from that side: entries of mode PTL_MODE_EMPTY): those it drops
// in the driver, counting their packets,
// bytes and last time (CLOCK_MONOTONIC ns) in the map entry of their direction, so the worker
// can keep an active flow alive (it reads the last time before ending a flow on idle time) and
// add the counts back to the flow record when the flow ends. TCP FIN and RST always reach the
// worker, so flows end on time. Anything it cannot parse (not Ethernet/802.1Q + IPv4/IPv6 +
// TCP/UDP, IPv6 extension headers; IPv4 options are fine) goes to the socket unchanged.
//
// The managed-subnet prefilter (when `[hardware.offloads] prefilter_managed_subnets` is set): a
// plain TCP or UDP packet whose source and destination are both outside every subnet of
// `ptl_managed` (a longest-prefix-match trie the daemon fills from the configuration at start,
// then switches on in `ptl_pf_on`) is dropped before the socket and counted per reason (IPv4,
// IPv6) in `ptl_pf_drops`, where the worker's software prefilter would have skipped it.
// Encapsulations (GRE, IP in IP, VXLAN to 4789, GENEVE to 6081, MPLS) and fragments still reach
// the worker, which judges the inner addresses.
//
// Owns: the per-packet lookups and the counters of bypassed and prefiltered packets. Must not:
// insert or delete flows or subnets (the daemon does, through bpf syscalls: once per flow, once
// per subnet at start), or drop anything that is neither in the bypass map nor outside every
// managed subnet.
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
	__u8 mode;       // PTL_MODE_ALL or PTL_MODE_EMPTY
	__u8 pad;
};

// Every packet of the direction (its payload is wanted by nobody any more).
#define PTL_MODE_ALL 0
// Only its packets without payload (a direction whose payload a parser still reads: its
// bare ACKs are of no use to it).
#define PTL_MODE_EMPTY 1

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

// A managed subnet, or an address looked up in them: the family byte, then the address (IPv4:
// the first 4 bytes). prefixlen counts the family byte's 8 bits (a /16 IPv4 subnet: 24).
struct ptl_subnet_key {
	__u32 prefixlen;
	__u8 family;
	__u8 addr[16];
	__u8 pad[3];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__type(key, struct ptl_subnet_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} ptl_managed SEC(".maps");

// Index 0: 1 once the daemon has filled ptl_managed and the prefilter runs in the driver.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} ptl_pf_on SEC(".maps");

// What the prefilter dropped, per reason: PTL_PF_IPV4, PTL_PF_IPV6 (neither address managed).
#define PTL_PF_IPV4 0
#define PTL_PF_IPV6 1
struct ptl_pf_counters {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct ptl_pf_counters);
} ptl_pf_drops SEC(".maps");

#define VLAN_ETHERTYPE 0x8100
#define VXLAN_PORT 4789
#define GENEVE_PORT 6081

static __always_inline int to_socket(struct xdp_md *ctx)
{
	return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
}

// True when the prefilter is on and neither address of the packet `k` describes is in a managed
// subnet (VXLAN and GENEVE carriers excepted: their inner addresses are the worker's to judge).
static __always_inline int unmanaged(const struct ptl_bypass_key *k)
{
	__u32 zero = 0;
	__u32 *on = bpf_map_lookup_elem(&ptl_pf_on, &zero);
	struct ptl_subnet_key s = {};

	if (!on || !*on)
		return 0;
	if (k->proto == IPPROTO_UDP &&
	    (k->dst_port == bpf_htons(VXLAN_PORT) || k->dst_port == bpf_htons(GENEVE_PORT)))
		return 0;
	s.family = k->family;
	s.prefixlen = 8 + (k->family == 4 ? 32 : 128);
	__builtin_memcpy(s.addr, k->src, 16);
	if (bpf_map_lookup_elem(&ptl_managed, &s))
		return 0;
	__builtin_memcpy(s.addr, k->dst, 16);
	if (bpf_map_lookup_elem(&ptl_managed, &s))
		return 0;
	return 1;
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
	long l4_len;     // from the IP header: transport header + payload
	int fin_rst = 0;

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
		l4_len = (long)bpf_ntohs(ip->tot_len) - ip->ihl * 4;
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
		l4_len = bpf_ntohs(ip6->payload_len);
	} else {
		return to_socket(ctx);
	}
	if (key.proto == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;
		if ((void *)(tcp + 1) > end)
			return to_socket(ctx);
		fin_rst = tcp->fin || tcp->rst;
		key.src_port = tcp->source;
		key.dst_port = tcp->dest;
		l4_len -= tcp->doff * 4;
	} else {
		struct udphdr *udp = l4;
		if ((void *)(udp + 1) > end)
			return to_socket(ctx);
		key.src_port = udp->source;
		key.dst_port = udp->dest;
		l4_len -= sizeof(*udp);
	}
	if (unmanaged(&key)) {
		__u32 reason = key.family == 4 ? PTL_PF_IPV4 : PTL_PF_IPV6;
		struct ptl_pf_counters *d = bpf_map_lookup_elem(&ptl_pf_drops, &reason);
		if (d) {
			__sync_fetch_and_add(&d->packets, 1);
			__sync_fetch_and_add(&d->bytes, (__u64)(end - data));
		}
		return XDP_DROP;
	}
	// FIN and RST of managed flows always reach the worker, so flows end on time.
	if (fin_rst)
		return to_socket(ctx);
	key.mode = PTL_MODE_ALL;
	struct ptl_bypass_counters *c = bpf_map_lookup_elem(&ptl_bypass, &key);
	if (!c) {
		if (l4_len > 0)
			return to_socket(ctx);
		key.mode = PTL_MODE_EMPTY;
		c = bpf_map_lookup_elem(&ptl_bypass, &key);
		if (!c)
			return to_socket(ctx);
	}
	__sync_fetch_and_add(&c->packets, 1);
	__sync_fetch_and_add(&c->bytes, (__u64)(end - data));
	c->last_ns = bpf_ktime_get_ns();
	return XDP_DROP;
}

char _license[] SEC("license") = "GPL";

// SPDX-License-Identifier: MIT OR Apache-2.0
//
// MPTCP token steering: a tc classifier (clsact ingress, direct action) that
// marks each SYN carrying MP_JOIN to a VIP with the mark of the backend owning
// the join's receiver token, and drops it when no backend owns the token.
// Everything else passes untouched. The crate docs (src/lib.rs) explain why.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define TCPOPT_EOL 0
#define TCPOPT_NOP 1
#define TCPOPT_MPTCP 30
#define MPTCPOPT_MP_JOIN 1
/* MP_JOIN in a SYN: kind, length, subtype|B, address id, token (4), nonce (4). */
#define MP_JOIN_SYN_LEN 12
#define TCP_MAX_OPTIONS 40
#define IP_OFFSET_MASK 0x1fff

/* Counter slots; the Rust side (src/bpf.rs) reads them by these indexes. */
enum {
	CNT_JOINS_SEEN = 0,
	CNT_STEERED = 1,
	CNT_DROPPED_UNKNOWN = 2,
	CNT_NON_JOIN_PASSED = 3,
	CNT_MAX,
};

/* Destination addresses (VIPs) whose joins are steered: IPv6 addresses as
 * they are, IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d). */
struct vip_key {
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct vip_key);
	__type(value, __u8);
} vips SEC(".maps");

/* Receiver token (host order) -> skb mark of the owning backend. Not
 * preallocated: a balancer pays for the tokens it holds, not for the bound. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 20);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, __u32);
} tokens SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 slot)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &slot);

	if (c)
		*c += 1;
}

static __always_inline int pass_non_join(void)
{
	count(CNT_NON_JOIN_PASSED);
	return TC_ACT_OK;
}

/* The walk over the TCP options, one option per bpf_loop() step. */
struct opt_walk {
	__u8 opts[64];
	__u32 optlen;
	__u32 i;
	__u32 token;
	__u32 found;
};

/* One step of the walk: returns 1 to stop (end of options, malformed option,
 * or MP_JOIN found), 0 to go on. bpf_loop() (Linux 5.17) has the verifier
 * check this body once, whatever the option layout; an open-coded loop over
 * 40 bytes of unknown options explodes its state count. Every index is masked
 * into the 64-byte buffer, so each read is in bounds. */
static long opt_step(__u32 n, void *ctx)
{
	struct opt_walk *w = ctx;
	__u32 i = w->i;

	if (i >= w->optlen)
		return 1;
	__u8 kind = w->opts[i & 63];

	if (kind == TCPOPT_EOL)
		return 1;
	if (kind == TCPOPT_NOP) {
		w->i = i + 1;
		return 0;
	}
	if (i + 1 >= w->optlen)
		return 1;
	__u8 len = w->opts[(i + 1) & 63];

	if (len < 2 || i + len > w->optlen)
		return 1;
	if (kind == TCPOPT_MPTCP && len >= 3 &&
	    (w->opts[(i + 2) & 63] >> 4) == MPTCPOPT_MP_JOIN) {
		if (len == MP_JOIN_SYN_LEN) {
			w->token = ((__u32)w->opts[(i + 4) & 63] << 24) |
				   ((__u32)w->opts[(i + 5) & 63] << 16) |
				   ((__u32)w->opts[(i + 6) & 63] << 8) |
				   (__u32)w->opts[(i + 7) & 63];
			w->found = 1;
		}
		return 1;
	}
	w->i = i + len;
	return 0;
}

SEC("classifier")
int steer(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct vip_key vip = {};
	__u32 l4_off;

	if ((void *)(eth + 1) > data_end)
		return pass_non_join();

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end)
			return pass_non_join();
		if (ip->protocol != IPPROTO_TCP || ip->ihl < 5 ||
		    (ip->frag_off & bpf_htons(IP_OFFSET_MASK)))
			return pass_non_join();
		vip.addr[10] = 0xff;
		vip.addr[11] = 0xff;
		__builtin_memcpy(&vip.addr[12], &ip->daddr, 4);
		l4_off = sizeof(*eth) + ip->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return pass_non_join();
		/* Extension headers are not walked: such a join passes unsteered. */
		if (ip6->nexthdr != IPPROTO_TCP)
			return pass_non_join();
		__builtin_memcpy(vip.addr, &ip6->daddr, 16);
		l4_off = sizeof(*eth) + sizeof(*ip6);
	} else {
		return pass_non_join();
	}

	struct tcphdr tcp;

	if (bpf_skb_load_bytes(skb, l4_off, &tcp, sizeof(tcp)) < 0)
		return pass_non_join();
	if (!tcp.syn || tcp.ack || tcp.doff <= 5)
		return pass_non_join();
	if (!bpf_map_lookup_elem(&vips, &vip))
		return pass_non_join();

	__u32 optlen = tcp.doff * 4 - sizeof(tcp);
	struct opt_walk walk = {};

	/* bpf_skb_load_bytes reads non-linear data too, and wants a size the
	 * verifier can bound: 1..40. */
	if (optlen < 1 || optlen > TCP_MAX_OPTIONS)
		return pass_non_join();
	if (bpf_skb_load_bytes(skb, l4_off + sizeof(tcp), walk.opts, optlen) < 0)
		return pass_non_join();
	walk.optlen = optlen;
	/* Each option takes at least one byte: 40 steps cover any layout. */
	bpf_loop(TCP_MAX_OPTIONS, opt_step, &walk, 0);
	if (!walk.found)
		return pass_non_join();

	__u32 token = walk.token;

	count(CNT_JOINS_SEEN);
	__u32 *mark = bpf_map_lookup_elem(&tokens, &token);

	if (!mark) {
		count(CNT_DROPPED_UNKNOWN);
		return TC_ACT_SHOT;
	}
	skb->mark = *mark;
	count(CNT_STEERED);
	return TC_ACT_OK;
}

char _license[] SEC("license") = "Dual MIT/GPL";

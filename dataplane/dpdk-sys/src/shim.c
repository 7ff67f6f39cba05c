/*
 * Portolan's C shim: non-inline wrappers over DPDK's static-inline fast-path functions.
 * Compiled with the exact flags of `pkg-config --cflags libdpdk` (including -march) by build.rs.
 */
#include <stdio.h>
#include <rte_log.h>

#include "shim.h"

uint16_t portolan_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts,
                               uint16_t nb_pkts)
{
	return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t portolan_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts,
                               uint16_t nb_pkts)
{
	return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

void portolan_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

void portolan_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int count)
{
	rte_pktmbuf_free_bulk(mbufs, count);
}

const void *portolan_pktmbuf_mtod(const struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod(m, const void *);
}

uint16_t portolan_pktmbuf_data_len(const struct rte_mbuf *m)
{
	return m->data_len;
}

uint32_t portolan_pktmbuf_pkt_len(const struct rte_mbuf *m)
{
	return m->pkt_len;
}

uint16_t portolan_pktmbuf_nb_segs(const struct rte_mbuf *m)
{
	return m->nb_segs;
}

uint64_t portolan_pktmbuf_ol_flags(const struct rte_mbuf *m)
{
	return m->ol_flags;
}

uint64_t portolan_mbuf_dynfield_u64(const struct rte_mbuf *m, int offset)
{
	return *RTE_MBUF_DYNFIELD(m, offset, const uint64_t *);
}

void portolan_mbuf_view(const struct rte_mbuf *m, int dynfield_offset,
                        struct portolan_mbuf_view *out)
{
	out->data = rte_pktmbuf_mtod(m, const uint8_t *);
	out->pkt_len = m->pkt_len;
	out->data_len = m->data_len;
	out->nb_segs = m->nb_segs;
	out->ol_flags = m->ol_flags;
	out->dynfield_u64 =
		dynfield_offset >= 0 ? *RTE_MBUF_DYNFIELD(m, dynfield_offset, const uint64_t *) : 0;
}

void portolan_prefetch_mbuf_data(const struct rte_mbuf *m)
{
	rte_prefetch0(rte_pktmbuf_mtod(m, const void *));
}

int portolan_log_to_stderr(void)
{
	return rte_openlog_stream(stderr);
}

unsigned int portolan_lcore_id(void)
{
	return rte_lcore_id();
}

int portolan_errno(void)
{
	return rte_errno;
}

uint64_t portolan_rdtsc(void)
{
	return rte_rdtsc();
}

unsigned int portolan_ring_enqueue_burst(struct rte_ring *r, void *const *obj_table,
                                         unsigned int n, unsigned int *free_space)
{
	return rte_ring_enqueue_burst(r, obj_table, n, free_space);
}

unsigned int portolan_ring_dequeue_burst(struct rte_ring *r, void **obj_table, unsigned int n,
                                         unsigned int *available)
{
	return rte_ring_dequeue_burst(r, obj_table, n, available);
}

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

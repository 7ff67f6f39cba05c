/*
 * Portolan's C shim over DPDK's static-inline fast-path functions.
 *
 * Owns: one exported, non-inline wrapper per static-inline DPDK function or macro the Rust side
 * needs. Must not: hold state or add logic beyond the call it wraps.
 */
#ifndef PORTOLAN_DPDK_SHIM_H
#define PORTOLAN_DPDK_SHIM_H

#include <stdint.h>
#include <rte_config.h>
#include <rte_common.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_dev.h>
#include <rte_bus_vdev.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_ethdev.h>
#include <rte_ring.h>
#include <rte_flow.h>

/* rte_eth_rx_burst: receive up to nb_pkts mbufs from one RX queue. */
uint16_t portolan_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts,
                               uint16_t nb_pkts);
/* rte_eth_tx_burst: send up to nb_pkts mbufs on one TX queue. */
uint16_t portolan_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts,
                               uint16_t nb_pkts);
/* rte_pktmbuf_free: free a (possibly chained) mbuf back to its pool. */
void portolan_pktmbuf_free(struct rte_mbuf *m);
/* rte_pktmbuf_free_bulk: free count mbufs (NULL entries allowed). */
void portolan_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int count);
/* Sends DPDK's log output to stderr (instead of stdout and syslog); call before rte_eal_init. */
int portolan_log_to_stderr(void);
/* rte_lcore_id: id of the calling lcore (LCORE_ID_ANY on non-EAL threads). */
unsigned int portolan_lcore_id(void);
/* rte_errno of the calling thread. */
int portolan_errno(void);
/* rte_rdtsc: the CPU time-stamp counter. */
uint64_t portolan_rdtsc(void);
/* rte_ring_enqueue_burst (pointer rings). */
unsigned int portolan_ring_enqueue_burst(struct rte_ring *r, void *const *obj_table,
                                         unsigned int n, unsigned int *free_space);
/* rte_ring_dequeue_burst (pointer rings). */
unsigned int portolan_ring_dequeue_burst(struct rte_ring *r, void **obj_table, unsigned int n,
                                         unsigned int *available);

/* A file descriptor of the BPF map named map_name of the XDP program attached to interface
 * ifname (bpf_xdp_query_id, then the program's map ids): the AF_XDP PMD loads the program from
 * its xdp_prog= devarg, so this is how the process reaches the program's maps. Returns the fd
 * or -errno (-ENOENT: no XDP program on the interface, or no map of that name). */
int portolan_xdp_map_fd(const char *ifname, const char *map_name);
/* bpf_map_update_elem: 0 or -errno. */
int portolan_bpf_map_update(int fd, const void *key, const void *value, uint64_t flags);
/* bpf_map_lookup_elem: 0 or -errno (ENOENT: no such key). */
int portolan_bpf_map_lookup(int fd, const void *key, void *value);
/* bpf_map_lookup_and_delete_elem on a hash map (lookup then delete on kernels without it):
 * 0 or -errno. */
int portolan_bpf_map_take(int fd, const void *key, void *value);

#endif

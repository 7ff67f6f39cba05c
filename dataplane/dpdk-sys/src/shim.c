/*
 * Portolan's C shim: non-inline wrappers over DPDK's static-inline fast-path functions.
 * Compiled with the exact flags of `pkg-config --cflags libdpdk` (including -march) by build.rs.
 */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
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

int portolan_xdp_map_fd(const char *ifname, const char *map_name)
{
	unsigned int ifindex = if_nametoindex(ifname);
	__u32 prog_id = 0;
	__u32 map_ids[16] = {0};
	struct bpf_prog_info info;
	__u32 len = sizeof(info);
	int prog_fd, err;

	if (ifindex == 0)
		return -errno;
	err = bpf_xdp_query_id((int)ifindex, 0, &prog_id);
	if (err)
		return err < 0 ? err : -err;
	if (prog_id == 0)
		return -ENOENT;
	prog_fd = bpf_prog_get_fd_by_id(prog_id);
	if (prog_fd < 0)
		return -errno;
	memset(&info, 0, sizeof(info));
	info.nr_map_ids = 16;
	info.map_ids = (__u64)(unsigned long)map_ids;
	err = bpf_obj_get_info_by_fd(prog_fd, &info, &len);
	close(prog_fd);
	if (err)
		return -errno;
	for (__u32 i = 0; i < info.nr_map_ids && i < 16; i++) {
		struct bpf_map_info map_info;
		__u32 map_len = sizeof(map_info);
		int fd = bpf_map_get_fd_by_id(map_ids[i]);
		if (fd < 0)
			continue;
		memset(&map_info, 0, sizeof(map_info));
		if (bpf_obj_get_info_by_fd(fd, &map_info, &map_len) == 0 &&
		    strncmp(map_info.name, map_name, sizeof(map_info.name)) == 0)
			return fd;
		close(fd);
	}
	return -ENOENT;
}

int portolan_bpf_map_update(int fd, const void *key, const void *value, uint64_t flags)
{
	return bpf_map_update_elem(fd, key, value, flags) ? -errno : 0;
}

int portolan_bpf_map_lookup(int fd, const void *key, void *value)
{
	return bpf_map_lookup_elem(fd, key, value) ? -errno : 0;
}

int portolan_bpf_map_take(int fd, const void *key, void *value)
{
	/* One syscall, so no packet counted between the read and the delete is lost (hash maps,
	 * kernel 5.14+); older kernels answer EINVAL/ENOTSUPP and get lookup then delete. */
	if (bpf_map_lookup_and_delete_elem(fd, key, value) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOTSUP && errno != 524 /* ENOTSUPP */)
		return -errno;
	if (bpf_map_lookup_elem(fd, key, value))
		return -errno;
	return bpf_map_delete_elem(fd, key) ? -errno : 0;
}

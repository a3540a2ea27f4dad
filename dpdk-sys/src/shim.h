/*
 * C wrappers for DPDK's static-inline functions and macros. They have no symbol
 * in the DPDK libraries, so Rust reaches them through these real functions.
 */
#ifndef RVS_SHIM_H
#define RVS_SHIM_H
#include <stdint.h>
struct rte_mbuf;
struct rte_mempool;
struct rte_ring;

int rvs_errno(void);
unsigned rvs_lcore_id(void);
uint64_t rvs_rdtsc(void);

uint16_t rvs_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t rvs_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);

struct rte_mbuf *rvs_pktmbuf_alloc(struct rte_mempool *mp);
int rvs_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned count);
void rvs_pktmbuf_free(struct rte_mbuf *m);
uint8_t *rvs_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
uint8_t *rvs_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int rvs_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
int rvs_pktmbuf_linearize(struct rte_mbuf *m);

uint8_t *rvs_mbuf_data(struct rte_mbuf *m);
uint16_t rvs_mbuf_data_len(const struct rte_mbuf *m);
uint32_t rvs_mbuf_pkt_len(const struct rte_mbuf *m);
uint16_t rvs_mbuf_nb_segs(const struct rte_mbuf *m);
uint16_t rvs_mbuf_port(const struct rte_mbuf *m);
void rvs_mbuf_set_port(struct rte_mbuf *m, uint16_t port);
uint16_t rvs_mbuf_headroom(const struct rte_mbuf *m);
uint16_t rvs_mbuf_tailroom(const struct rte_mbuf *m);
uint64_t rvs_mbuf_ol_flags(const struct rte_mbuf *m);
uint32_t rvs_mbuf_rss_hash(const struct rte_mbuf *m);
/* Requests checksum offloads on transmit; flags are RTE_MBUF_F_TX_* bits. */
void rvs_mbuf_set_tx_offload(struct rte_mbuf *m, uint64_t flags, uint16_t l2_len, uint16_t l3_len, uint16_t l4_len);

unsigned rvs_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned n);
unsigned rvs_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned n);
unsigned rvs_ring_count(const struct rte_ring *r);

/* Constants that are function-like macros (RTE_BIT64), which bindgen cannot
 * expand; as static consts clang evaluates them and bindgen emits Rust consts. */
#include <rte_ethdev.h>
static const uint64_t RVS_ETH_RSS_IP = RTE_ETH_RSS_IP;
static const uint64_t RVS_ETH_RSS_TCP = RTE_ETH_RSS_TCP;
static const uint64_t RVS_ETH_RSS_UDP = RTE_ETH_RSS_UDP;
static const uint64_t RVS_ETH_RSS_IPV4 = RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_FRAG_IPV4 | RTE_ETH_RSS_NONFRAG_IPV4_OTHER;
static const uint64_t RVS_ETH_RSS_IPV4_TCP = RTE_ETH_RSS_NONFRAG_IPV4_TCP;
static const uint64_t RVS_ETH_RSS_IPV4_UDP = RTE_ETH_RSS_NONFRAG_IPV4_UDP;
static const uint64_t RVS_ETH_RSS_IPV6 = RTE_ETH_RSS_IPV6 | RTE_ETH_RSS_FRAG_IPV6 | RTE_ETH_RSS_NONFRAG_IPV6_OTHER;
static const uint64_t RVS_ETH_RSS_IPV6_TCP = RTE_ETH_RSS_NONFRAG_IPV6_TCP;
static const uint64_t RVS_ETH_RSS_IPV6_UDP = RTE_ETH_RSS_NONFRAG_IPV6_UDP;
static const uint64_t RVS_ETH_TX_OFFLOAD_IPV4_CKSUM = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
static const uint64_t RVS_ETH_TX_OFFLOAD_TCP_CKSUM = RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
static const uint64_t RVS_ETH_TX_OFFLOAD_UDP_CKSUM = RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
static const uint64_t RVS_ETH_RX_OFFLOAD_IPV4_CKSUM = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
static const uint64_t RVS_MBUF_F_RX_IP_CKSUM_MASK = RTE_MBUF_F_RX_IP_CKSUM_MASK;
static const uint64_t RVS_MBUF_F_RX_IP_CKSUM_GOOD = RTE_MBUF_F_RX_IP_CKSUM_GOOD;
static const uint64_t RVS_MBUF_F_RX_IP_CKSUM_BAD = RTE_MBUF_F_RX_IP_CKSUM_BAD;

/* Link state without touching rte_eth_link's layout, which changed across releases. */
int rvs_eth_link(uint16_t port, uint32_t *speed_mbps, int *up);
#endif

/*
 * stats.h - per-worker counters for /metrics and /healthz.
 *
 * Each counter is written only by its worker's thread and read by any worker
 * answering /metrics. STP_STAT_ADD is a relaxed load and store, not a locked
 * read-modify-write: with a single writer no increment is lost, a reader sees
 * some recent value, and the hot path pays a plain add.
 */
#ifndef STP_BROKER_STATS_H
#define STP_BROKER_STATS_H

#include "stampede/stomp.h"

#include <stdatomic.h>
#include <stdint.h>

typedef _Atomic uint64_t stp_counter;

#define STP_STAT_ADD(field, n)                                                                     \
    atomic_store_explicit(&(field), atomic_load_explicit(&(field), memory_order_relaxed) + (n),    \
                          memory_order_relaxed)
#define STP_STAT_INC(field) STP_STAT_ADD(field, 1)
#define STP_STAT_GET(field) atomic_load_explicit(&(field), memory_order_relaxed)

enum stp_transport_kind { STP_TK_TCP, STP_TK_TLS, STP_TK_WS, STP_TK_WSS, STP_TK__COUNT };

struct stp_worker_stats {
    stp_counter conns_accepted;
    stp_counter conns_refused[2]; /* by --max-connections, by --max-connections-per-ip */
    stp_counter conns_open[STP_TK__COUNT];
    stp_counter frames_in[STP_CMD__COUNT];
    stp_counter frames_out[STP_CMD__COUNT];
    stp_counter bytes_in;
    stp_counter bytes_out;
    stp_counter msgs_published;
    stp_counter msgs_delivered;
    stp_counter msgs_acked;
    stp_counter msgs_nacked;
    stp_counter msgs_redelivered;
    stp_counter msgs_dropped; /* topic messages nobody subscribed to */
    stp_counter slow_consumers;
    stp_counter failed_logins;
    stp_counter loop_lag_us; /* last measured timer lateness */
};

#endif

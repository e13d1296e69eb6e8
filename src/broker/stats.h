/*
 * stats.h - the broker's per-worker counters for /metrics (the net layer
 * keeps its own: net/net.h). Single writer (the worker), any reader; see
 * stampede/counter.h.
 */
#ifndef STP_BROKER_STATS_H
#define STP_BROKER_STATS_H

#include "stampede/counter.h"
#include "stampede/stomp.h"

struct stp_worker_stats {
    stp_counter frames_in[STP_CMD__COUNT];
    stp_counter frames_out[STP_CMD__COUNT];
    stp_counter msgs_published;
    stp_counter msgs_delivered;
    stp_counter msgs_acked;
    stp_counter msgs_nacked;
    stp_counter msgs_redelivered;
    stp_counter msgs_dropped; /* topic messages nobody subscribed to, replies to gone temp queues */
    stp_counter msgs_expired; /* queue messages past their expiry */
    stp_counter msgs_rejected;      /* NACK requeue:false, or over --max-redeliveries */
    stp_counter msgs_dead_lettered; /* expired or rejected, moved to a DLQ */
    stp_counter msgs_deduplicated;  /* SENDs dropped: their dedup-id was seen */
    stp_counter dedup_evicted;      /* dedup-ids forgotten before their window ended */
    stp_counter failed_logins;
    stp_counter loop_lag_us; /* last measured timer lateness */
};

#endif

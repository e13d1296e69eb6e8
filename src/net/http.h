/*
 * http.h - bodies of the WebSocket listener's plain HTTP endpoints.
 *
 * Called on the worker that got the request. They read every worker's
 * counters (relaxed atomics, see broker/stats.h) and the queue snapshots each
 * worker publishes once a second under its own mutex, so the hot path never
 * takes a lock for them.
 */
#ifndef STP_NET_HTTP_H
#define STP_NET_HTTP_H

#include "stampede/buf.h"

struct stp_worker;

/* {"status":"ok","version":...,"uptime_seconds":...,"workers":...,"connections":...} */
int stp_http_healthz(struct stp_worker *w, struct stp_buf *out);
/* Prometheus text exposition format 0.0.4. */
int stp_http_metrics(struct stp_worker *w, struct stp_buf *out);

#endif

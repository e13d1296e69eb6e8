/*
 * metrics.h - bodies of the WebSocket listener's plain HTTP endpoints
 * (/healthz, /metrics), which the net layer asks for through ops->http.
 *
 * Called on the worker that got the request. They read every worker's
 * counters, the broker's and its net's (relaxed atomics, see
 * stampede/counter.h), and the queue snapshots each worker publishes once a
 * second under its own mutex, so the hot path never takes a lock for them.
 */
#ifndef STP_BROKER_METRICS_H
#define STP_BROKER_METRICS_H

#include "stampede/buf.h"

#include <stdbool.h>
#include <stddef.h>

struct stp_broker;

/* {"status":"ok","version":...,"uptime_seconds":...,"workers":...,"connections":...} */
int stp_metrics_healthz(struct stp_broker *b, struct stp_buf *out);
/* Prometheus text exposition format 0.0.4. */
int stp_metrics_text(struct stp_broker *b, struct stp_buf *out);

struct stp_conn;
struct stp_http_request;
struct stp_http_answer;
/* ops->http (metrics_http.c): /healthz, and /metrics with --metrics-auth. */
int stp_metrics_http(struct stp_conn *c, const struct stp_http_request *req,
                     struct stp_http_answer *ans);

/* Append s[0..n) as a label value (without the quotes): valid UTF-8 whatever
 * the bytes. Backslash, double quote and newline are escaped (\\, \", \n);
 * every ill-formed sequence (a maximal invalid subpart, as in WHATWG and
 * Unicode's U+FFFD substitution practice) becomes U+FFFD. When `cut` says s
 * was truncated, a character split at its end is dropped instead, so the
 * value ends on a character boundary. 0 or -1 (out of memory). */
int stp_metrics_label_value(struct stp_buf *o, const char *s, size_t n, bool cut);

#endif

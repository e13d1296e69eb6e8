/*
 * http.c - /healthz (JSON) and /metrics (Prometheus text) bodies.
 *
 * Runs on whichever worker got the request; reads all workers' counters
 * (relaxed loads of single-writer counters) and queue snapshots (each under
 * its worker's snapshot mutex). See http.h.
 */
#include "net/http.h"

#include "broker/broker.h"
#include "broker/worker.h"
#include "stampede/mailbox.h"
#include "stampede/msg.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int appendf(struct stp_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int appendf(struct stp_buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    return stp_buf_append(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static uint64_t sum_open(struct stp_broker *b, int kind)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < b->nworkers; i++)
        n += STP_STAT_GET(b->workers[i].stats.conns_open[kind]);
    return n;
}

static uint64_t total_open(struct stp_broker *b)
{
    uint64_t n = 0;
    for (int k = 0; k < STP_TK__COUNT; k++)
        n += sum_open(b, k);
    return n;
}

int stp_http_healthz(struct stp_worker *w, struct stp_buf *out)
{
    struct stp_broker *b = w->broker;
    uint64_t up = (uv_hrtime() / 1000000 - b->started_ms) / 1000;
    return appendf(out,
                   "{\"status\":\"ok\",\"version\":\"%s\",\"uptime_seconds\":%" PRIu64
                   ",\"workers\":%u,\"connections\":%" PRIu64 "}\n",
                   STP_VERSION, up, b->nworkers, total_open(b));
}

/* Sum of one counter over the workers. */
#define SUM(b, field)                                                                              \
    ({                                                                                             \
        uint64_t s_ = 0;                                                                           \
        for (unsigned i_ = 0; i_ < (b)->nworkers; i_++)                                            \
            s_ += STP_STAT_GET((b)->workers[i_].stats.field);                                      \
        s_;                                                                                        \
    })

static int counter(struct stp_buf *o, const char *name, const char *help, const char *type,
                   uint64_t v)
{
    return appendf(o, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type, name,
                   v);
}

static int connections(struct stp_buf *o, struct stp_broker *b)
{
    static const char *names[STP_TK__COUNT] = {"tcp", "tls", "ws", "wss"};
    int rc = appendf(o, "# HELP stampede_connections Open client connections by transport.\n"
                        "# TYPE stampede_connections gauge\n");
    for (int k = 0; k < STP_TK__COUNT; k++)
        rc |= appendf(o, "stampede_connections{transport=\"%s\"} %" PRIu64 "\n", names[k],
                      sum_open(b, k));
    rc |= counter(o, "stampede_connections_accepted_total", "Connections accepted.", "counter",
                  SUM(b, conns_accepted));
    return rc;
}

static int frames(struct stp_buf *o, struct stp_broker *b)
{
    int rc = appendf(o, "# HELP stampede_frames_total STOMP frames by direction and command.\n"
                        "# TYPE stampede_frames_total counter\n");
    for (int cmd = STP_CMD_CONNECT; cmd < STP_CMD__COUNT; cmd++) {
        uint64_t in = SUM(b, frames_in[cmd]), out = SUM(b, frames_out[cmd]);
        if (in)
            rc |= appendf(o, "stampede_frames_total{direction=\"in\",command=\"%s\"} %" PRIu64 "\n",
                          stp_cmd_name(cmd), in);
        if (out)
            rc |= appendf(o,
                          "stampede_frames_total{direction=\"out\",command=\"%s\"} %" PRIu64 "\n",
                          stp_cmd_name(cmd), out);
    }
    return rc;
}

static int messages(struct stp_buf *o, struct stp_broker *b)
{
    int rc = 0;
    rc |= counter(o, "stampede_messages_published_total", "Messages accepted from publishers.",
                  "counter", SUM(b, msgs_published));
    rc |= counter(o, "stampede_messages_delivered_total", "MESSAGE frames sent to subscribers.",
                  "counter", SUM(b, msgs_delivered));
    rc |= counter(o, "stampede_messages_acked_total", "Queue messages acknowledged.", "counter",
                  SUM(b, msgs_acked));
    rc |= counter(o, "stampede_messages_nacked_total", "Queue messages negatively acknowledged.",
                  "counter", SUM(b, msgs_nacked));
    rc |= counter(o, "stampede_messages_redelivered_total", "Queue messages delivered again.",
                  "counter", SUM(b, msgs_redelivered));
    rc |= counter(o, "stampede_messages_dropped_total",
                  "Topic messages published with no subscriber.", "counter", SUM(b, msgs_dropped));
    rc |= counter(o, "stampede_bytes_received_total", "Bytes read from clients.", "counter",
                  SUM(b, bytes_in));
    rc |= counter(o, "stampede_bytes_sent_total", "Bytes written to clients.", "counter",
                  SUM(b, bytes_out));
    rc |= counter(o, "stampede_slow_consumer_disconnects_total",
                  "Subscribers disconnected for falling behind.", "counter",
                  SUM(b, slow_consumers));
    rc |= counter(o, "stampede_failed_logins_total", "CONNECT frames refused by authentication.",
                  "counter", SUM(b, failed_logins));
    rc |= counter(o, "stampede_message_bytes", "Bytes of messages held by the broker.", "gauge",
                  stp_msg_bytes_in_use());
    return rc;
}

static int workers(struct stp_buf *o, struct stp_broker *b)
{
    int rc = appendf(o, "# HELP stampede_worker_loop_lag_seconds How late the worker's 1 s timer "
                        "last fired.\n# TYPE stampede_worker_loop_lag_seconds gauge\n");
    for (unsigned i = 0; i < b->nworkers; i++)
        rc |= appendf(o, "stampede_worker_loop_lag_seconds{worker=\"%u\"} %.6f\n", i,
                      (double)STP_STAT_GET(b->workers[i].stats.loop_lag_us) / 1e6);
    rc |= appendf(o, "# HELP stampede_worker_mailbox_depth Commands waiting in rings to the "
                     "worker.\n# TYPE stampede_worker_mailbox_depth gauge\n");
    for (unsigned i = 0; i < b->nworkers; i++)
        rc |= appendf(o, "stampede_worker_mailbox_depth{worker=\"%u\"} %zu\n", i,
                      stp_mailbox_depth(b->mb, i));
    return rc;
}

/* Label values escape backslash, quote and newline (Prometheus text format). */
static int label_value(struct stp_buf *o, const char *s)
{
    int rc = 0;
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            rc |= stp_buf_append(o, "\\", 1) | stp_buf_append(o, s, 1);
        else if (*s == '\n')
            rc |= stp_buf_append(o, "\\n", 2);
        else
            rc |= stp_buf_append(o, s, 1);
    }
    return rc;
}

static int queues(struct stp_buf *o, struct stp_broker *b)
{
    int rc = appendf(o, "# HELP stampede_queue_messages Messages ready in a queue (the %d deepest "
                        "queues of each worker).\n# TYPE stampede_queue_messages gauge\n",
                     STP_QSNAP_MAX);
    struct stp_buf consumers = STP_BUF_INIT;
    rc |= appendf(&consumers, "# HELP stampede_queue_consumers Consumers of a queue.\n"
                              "# TYPE stampede_queue_consumers gauge\n");
    for (unsigned i = 0; i < b->nworkers; i++) {
        struct stp_worker *w = &b->workers[i];
        /* Acquire: pairs with stp_worker_start's release after the mutex
         * init; a worker not started yet has no snapshot (worker.h). */
        if (!atomic_load_explicit(&w->qsnap_ready, memory_order_acquire))
            continue;
        uv_mutex_lock(&w->qsnap_lock);
        for (size_t j = 0; j < w->nqsnap; j++) {
            struct stp_qsnap *q = &w->qsnap[j];
            rc |= stp_buf_append_str(o, "stampede_queue_messages{queue=\"");
            rc |= label_value(o, q->name);
            rc |= appendf(o, "\"} %zu\n", q->depth);
            rc |= stp_buf_append_str(&consumers, "stampede_queue_consumers{queue=\"");
            rc |= label_value(&consumers, q->name);
            rc |= appendf(&consumers, "\"} %zu\n", q->consumers);
        }
        uv_mutex_unlock(&w->qsnap_lock);
    }
    rc |= stp_buf_append(o, consumers.data, consumers.len);
    stp_buf_free(&consumers);
    return rc;
}

int stp_http_metrics(struct stp_worker *w, struct stp_buf *out)
{
    struct stp_broker *b = w->broker;
    int rc = connections(out, b);
    rc |= frames(out, b);
    rc |= messages(out, b);
    rc |= workers(out, b);
    rc |= queues(out, b);
    return rc ? -1 : 0;
}

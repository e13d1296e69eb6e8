/*
 * metrics.c - /healthz (JSON) and /metrics (Prometheus text) bodies.
 *
 * Runs on whichever worker got the request; reads all workers' counters
 * (relaxed loads of single-writer counters) and queue snapshots (each under
 * its worker's snapshot mutex). See metrics.h.
 */
#include "broker/metrics.h"

#include "broker/broker.h"
#include "broker/cluster.h"
#include "broker/worker.h"
#include "stampede/mailbox.h"
#include "stampede/msg.h"
#include "store/journal.h"

#include <inttypes.h>
#include <stddef.h>
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
        n += STP_STAT_GET(b->workers[i].net.stats.conns_open[kind]);
    return n;
}

static uint64_t total_open(struct stp_broker *b)
{
    uint64_t n = 0;
    for (int k = 0; k < STP_TK__COUNT; k++)
        n += sum_open(b, k);
    return n;
}

/* Workers whose journal refuses writes right now. */
static unsigned journals_failing(struct stp_broker *b)
{
    unsigned n = 0;
    for (unsigned i = 0; i < b->nworkers; i++)
        n += stp_durable_failed(&b->workers[i].dur);
    return n;
}

int stp_metrics_healthz(struct stp_broker *b, struct stp_buf *out)
{
    uint64_t up = (uv_hrtime() / 1000000 - b->started_ms) / 1000;
    /* Still 200 while a disk is full: the broker serves everything but
     * persistent messages, and a restart would not help. */
    unsigned failing = journals_failing(b);
    /* Still 200 while NATS is away: local clients are served, and the
     * node rejoins by itself. */
    bool apart = stp_cluster_degraded(b);
    const char *cluster = !b->cluster ? ""
                          : apart     ? ",\"cluster\":\"disconnected\""
                                      : ",\"cluster\":\"connected\"";
    return appendf(out,
                   "{\"status\":\"%s\",\"version\":\"%s\",\"uptime_seconds\":%" PRIu64
                   ",\"workers\":%u,\"connections\":%" PRIu64 "%s%s}\n",
                   failing || apart ? "degraded" : "ok", STP_VERSION, up, b->nworkers,
                   total_open(b), failing ? ",\"journal\":\"failing\"" : "", cluster);
}

/* Sum of one counter over the workers: the broker's (BSUM) or the net's (NSUM). */
#define SUM(b, field)                                                                              \
    ({                                                                                             \
        uint64_t s_ = 0;                                                                           \
        for (unsigned i_ = 0; i_ < (b)->nworkers; i_++)                                            \
            s_ += STP_STAT_GET((b)->workers[i_].field);                                            \
        s_;                                                                                        \
    })
#define NSUM(b, field) SUM(b, net.stats.field)
#define BSUM(b, field) SUM(b, stats.field)

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
                  NSUM(b, conns_accepted));
    rc |= appendf(o,
                  "# HELP stampede_connections_refused_total Connections closed at accept by a "
                  "limit.\n# TYPE stampede_connections_refused_total counter\n"
                  "stampede_connections_refused_total{limit=\"max-connections\"} %" PRIu64 "\n"
                  "stampede_connections_refused_total{limit=\"max-connections-per-ip\"} %" PRIu64
                  "\n",
                  NSUM(b, conns_refused[0]), NSUM(b, conns_refused[1]));
    return rc;
}

static int frames(struct stp_buf *o, struct stp_broker *b)
{
    int rc = appendf(o, "# HELP stampede_frames_total STOMP frames by direction and command.\n"
                        "# TYPE stampede_frames_total counter\n");
    for (int cmd = STP_CMD_CONNECT; cmd < STP_CMD__COUNT; cmd++) {
        uint64_t in = BSUM(b, frames_in[cmd]), out = BSUM(b, frames_out[cmd]);
        if (in)
            rc |= appendf(o, "stampede_frames_total{direction=\"in\",command=\"%s\"} %" PRIu64 "\n",
                          stp_cmd_name(cmd), in);
        if (out)
            rc |=
                appendf(o, "stampede_frames_total{direction=\"out\",command=\"%s\"} %" PRIu64 "\n",
                        stp_cmd_name(cmd), out);
    }
    return rc;
}

static int messages(struct stp_buf *o, struct stp_broker *b)
{
    int rc = 0;
    rc |= counter(o, "stampede_messages_published_total", "Messages accepted from publishers.",
                  "counter", BSUM(b, msgs_published));
    rc |= counter(o, "stampede_messages_delivered_total", "MESSAGE frames sent to subscribers.",
                  "counter", BSUM(b, msgs_delivered));
    rc |= counter(o, "stampede_messages_acked_total", "Queue messages acknowledged.", "counter",
                  BSUM(b, msgs_acked));
    rc |= counter(o, "stampede_messages_nacked_total", "Queue messages negatively acknowledged.",
                  "counter", BSUM(b, msgs_nacked));
    rc |= counter(o, "stampede_messages_redelivered_total", "Queue messages delivered again.",
                  "counter", BSUM(b, msgs_redelivered));
    rc |= counter(o, "stampede_messages_dropped_total",
                  "Messages dropped: topic messages with no subscriber, replies to a temp queue "
                  "that is gone.",
                  "counter", BSUM(b, msgs_dropped));
    rc |= counter(o, "stampede_messages_expired_total",
                  "Queue messages that expired before delivery.", "counter", BSUM(b, msgs_expired));
    rc |= counter(o, "stampede_messages_rejected_total",
                  "Messages rejected (NACK requeue:false, --max-redeliveries).", "counter",
                  BSUM(b, msgs_rejected));
    rc |= counter(o, "stampede_messages_dead_lettered_total",
                  "Expired or rejected queue messages moved to a DLQ queue (--dead-letter).",
                  "counter", BSUM(b, msgs_dead_lettered));
    rc |= counter(o, "stampede_messages_deduplicated_total",
                  "SENDs dropped: their dedup-id was seen on the destination within "
                  "--dedup-window.",
                  "counter", BSUM(b, msgs_deduplicated));
    rc |= counter(o, "stampede_dedup_ids_evicted_total",
                  "dedup-ids forgotten before --dedup-window ended (--dedup-max-ids, "
                  "--dedup-max-memory).",
                  "counter", BSUM(b, dedup_evicted));
    rc |= counter(o, "stampede_dedup_bytes", "Bytes held by de-duplication windows.", "gauge",
                  atomic_load_explicit(&b->dedup_bytes, memory_order_relaxed));
    rc |= counter(o, "stampede_bytes_received_total", "Bytes read from clients.", "counter",
                  NSUM(b, bytes_in));
    rc |= counter(o, "stampede_bytes_sent_total", "Bytes written to clients.", "counter",
                  NSUM(b, bytes_out));
    rc |=
        counter(o, "stampede_slow_consumer_disconnects_total",
                "Subscribers disconnected for falling behind.", "counter", NSUM(b, slow_consumers));
    rc |= counter(o, "stampede_failed_logins_total",
                  "Logins refused (CONNECT, and /metrics with --metrics-auth).", "counter",
                  BSUM(b, failed_logins));
    rc |= counter(o, "stampede_message_bytes", "Bytes of messages held by the broker.", "gauge",
                  stp_msg_bytes_in_use());
    return rc;
}

/* Sum of one journal counter over the workers that have a journal. */
static uint64_t jsum(struct stp_broker *b, size_t offset)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < b->nworkers; i++) {
        const struct stp_worker *w = &b->workers[i];
        if (!atomic_load_explicit(&w->qsnap_ready, memory_order_acquire))
            continue; /* not set up yet (see worker.h) */
        const struct stp_journal *j = w->dur.j;
        if (j)
            n += atomic_load_explicit(
                (const atomic_uint_least64_t *)((const char *)stp_journal_stats(j) + offset),
                memory_order_relaxed);
    }
    return n;
}

#define JSUM(b, field) jsum(b, offsetof(struct stp_journal_stats, field))

static int journal(struct stp_buf *o, struct stp_broker *b)
{
    const struct stp_recovery *r = &b->recovery;
    if (r->lock_fd < 0)
        return 0; /* no --data-dir */
    int rc = 0;
    rc |= counter(o, "stampede_journal_records_total", "Records appended to the journals.",
                  "counter", JSUM(b, records));
    rc |= counter(o, "stampede_journal_bytes_written_total", "Bytes written to journal files.",
                  "counter", JSUM(b, bytes_written));
    rc |= counter(o, "stampede_journal_syncs_total",
                  "fdatasync calls (one per group-committed batch).", "counter", JSUM(b, syncs));
    rc |= counter(o, "stampede_journal_failures_total",
                  "Batches lost to a write or sync error (ENOSPC, EIO).", "counter",
                  JSUM(b, failures));
    rc |= counter(o, "stampede_journal_segments", "Journal segment files.", "gauge",
                  JSUM(b, segments));
    rc |= counter(o, "stampede_journal_disk_bytes", "Bytes in journal segment files.", "gauge",
                  JSUM(b, disk_bytes));
    rc |= counter(o, "stampede_journal_failing", "Workers whose journal refuses writes now.",
                  "gauge", journals_failing(b));
    rc |= counter(o, "stampede_journal_recovered_messages",
                  "Persistent messages found in the journals at start.", "gauge", r->messages);
    rc |= counter(o, "stampede_journal_damaged_records_total",
                  "Damaged journal stretches skipped at start (plus records that made no sense).",
                  "counter", r->damaged_records + r->bad_records);
    rc |= counter(o, "stampede_journal_truncated_bytes_total",
                  "Bytes of torn journal tail cut off at start.", "counter", r->truncated_bytes);
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

/* The well-formed UTF-8 character (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF) at p[0..n): its length (> 0); or, negated, the
 * length of the longest prefix of one (at least 1 byte) when it is not. */
static ptrdiff_t utf8_char(const unsigned char *p, size_t n)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xbf;
    size_t len;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    else
        return -1;
    size_t i = 1;
    if (i < n && p[i] >= lo && p[i] <= hi)
        for (i = 2; i < len && i < n && (p[i] & 0xc0) == 0x80; i++)
            ;
    return i == len ? (ptrdiff_t)len : -(ptrdiff_t)i;
}

int stp_metrics_label_value(struct stp_buf *o, const char *s, size_t n, bool cut)
{
    const unsigned char *p = (const unsigned char *)s;
    int rc = 0;
    for (size_t i = 0; i < n;) {
        ptrdiff_t len = utf8_char(p + i, n - i);
        if (len < 0) {
            /* A character the cut split: drop it. Anything else: U+FFFD. */
            if (!(cut && i + (size_t)-len == n && p[i] >= 0xc2 && p[i] <= 0xf4))
                rc |= stp_buf_append(o, "\xef\xbf\xbd", 3);
            i += (size_t)-len;
        } else if (p[i] == '\\' || p[i] == '"') {
            rc |= stp_buf_append(o, "\\", 1) | stp_buf_append(o, s + i, 1);
            i++;
        } else if (p[i] == '\n') {
            rc |= stp_buf_append(o, "\\n", 2);
            i++;
        } else {
            rc |= stp_buf_append(o, s + i, (size_t)len);
            i += (size_t)len;
        }
    }
    return rc;
}

/* A snapshot name that fills its buffer was cut there (maybe inside a character). */
static int label_name(struct stp_buf *o, const struct stp_qsnap *q)
{
    size_t n = strnlen(q->name, sizeof(q->name));
    return stp_metrics_label_value(o, q->name, n, n == sizeof(q->name) - 1);
}

static int queues(struct stp_buf *o, struct stp_broker *b)
{
    int rc = appendf(o,
                     "# HELP stampede_queue_messages Messages ready in a queue (the %d deepest "
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
            rc |= label_name(o, q);
            rc |= appendf(o, "\"} %zu\n", q->depth);
            rc |= stp_buf_append_str(&consumers, "stampede_queue_consumers{queue=\"");
            rc |= label_name(&consumers, q);
            rc |= appendf(&consumers, "\"} %zu\n", q->consumers);
        }
        uv_mutex_unlock(&w->qsnap_lock);
    }
    rc |= stp_buf_append(o, consumers.data, consumers.len);
    stp_buf_free(&consumers);
    return rc;
}

int stp_metrics_text(struct stp_broker *b, struct stp_buf *out)
{
    int rc = connections(out, b);
    rc |= frames(out, b);
    rc |= messages(out, b);
    rc |= journal(out, b);
    rc |= workers(out, b);
    rc |= queues(out, b);
    rc |= stp_cluster_metrics(b, out);
    return rc ? -1 : 0;
}

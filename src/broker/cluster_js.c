/*
 * cluster_js.c - cluster queues on the cluster thread: what owners ask of
 * JetStream (store, settle, open, pull) turned into NATS publishes. Nothing
 * here waits for JetStream except CQ_OPEN (a queue's first consumer on this
 * node: the stream and the consumer are made, bounded by JS_TIMEOUT_MS);
 * JetStream's answers come back on the node's inbox to the delivery thread
 * (cluster_in_js.c). See cluster_queue.h for the design.
 */
#include "broker/cluster_int.h"

#include "broker/broker.h"
#include "broker/cluster_queue.h"
#include "broker/worker.h"
#include "cluster/subject.h"
#include "cluster/wire.h"
#include "stampede/error.h"
#include "stampede/log.h"
#include "stampede/mailbox.h"
#include "stampede/msg.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest wait for each of JetStream's answers when a queue is opened. */
#define JS_TIMEOUT_MS 2000
/* A queue's subject longer than this is not stored (NATS's control line
 * holds the subject, the reply and more in 4 KiB). */
#define SUBJECT_MAX 2048
/* After the stream could not be made, queue SENDs fail at once this long. */
#define STREAM_RETRY_MS 1000

void stp_cluster_consumer_name(char out[24], const char *name, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)name[i];
        h *= 0x100000001b3ULL;
    }
    snprintf(out, 24, "stpq_%016" PRIx64, h);
}

static void answer(struct stp_cluster *c, unsigned to, struct stp_post *cmd)
{
    cmd->worker = STP_NO_CONN;
    if (stp_mailbox_post(c->b->mb, c->self, to, cmd) < 0) {
        stp_error("cluster: out of memory: an answer to worker %u is lost", to);
        stp_post_release(cmd);
    }
}

/* The queue's subject into c->subject, NUL-terminated, or NULL. */
static const char *queue_subject(struct stp_cluster *c, const char *name, size_t len)
{
    stp_buf_reset(&c->subject);
    if (stp_subject_of(&c->subject, STP_CLUSTER_PREFIX, name, len) < 0 ||
        c->subject.len > SUBJECT_MAX || stp_buf_append(&c->subject, "", 1) < 0)
        return NULL;
    return (const char *)c->subject.data;
}

/* Nats-Msg-Id for a message with a dedup-id: JetStream de-duplicates per
 * stream, so the queue's hash comes first (ids are per destination). */
static const char *msg_id(struct stp_cluster *c, const struct stp_msg *m)
{
    if (!m->dedup_len || !c->b->cfg->dedup_window_ms)
        return NULL;
    char name[24];
    stp_cluster_consumer_name(name, m->dest, m->dest_len);
    stp_buf_reset(&c->js_body);
    if (stp_buf_append_str(&c->js_body, name) < 0 || stp_buf_append(&c->js_body, ":", 1) < 0 ||
        stp_buf_append(&c->js_body, m->tail + m->dedup_off, m->dedup_len) < 0 ||
        stp_buf_append(&c->js_body, "", 1) < 0)
        return NULL;
    return (const char *)c->js_body.data;
}

/* The stream's configuration, with the consumer of queue `consumer` whose
 * subject is `filter` (NULL, NULL: the stream alone). */
static struct stp_nats_js js_config(const struct stp_cluster *c, const char *consumer,
                                    const char *filter)
{
    const struct stp_config *cfg = c->b->cfg;
    int64_t frame = (int64_t)cfg->max_frame_size + 1024;
    return (struct stp_nats_js){
        .stream = STP_CQ_STREAM,
        .subjects = STP_CLUSTER_PREFIX ".q.>",
        .max_per_subject =
            cfg->queue_max_messages > INT64_MAX ? -1 : (int64_t)cfg->queue_max_messages,
        .max_msg_size = frame > INT32_MAX ? -1 : (int32_t)frame,
        .dup_window_ms = (int64_t)cfg->dedup_window_ms,
        .consumer = consumer,
        .filter = filter,
        .ack_wait_ms = (int64_t)cfg->cluster_ack_wait_ms,
    };
}

/* Once per power of two failures: JetStream missing is a few lines. */
static void setup_failed(const char *what, const char *why)
{
    static uint64_t failures;
    uint64_t n = ++failures;
    if ((n & (n - 1)) == 0)
        stp_warn("cluster: JetStream cannot keep %s yet: %s (%" PRIu64 " such failures; is "
                 "nats-server running with -js?)",
                 what, why, n);
}

/* The stream exists before the first publish (and again after JetStream
 * lost it): a publish to a subject no stream takes is not stored. */
static bool ensure_stream(struct stp_cluster *c)
{
    if (atomic_load_explicit(&c->stream_ok, memory_order_relaxed))
        return true;
    /* After a failure, publishes fail at once for a while: a JetStream that
     * does not answer must not hold the cluster thread (and the topics'
     * traffic behind it) for every queue SEND. */
    uv_update_time(&c->loop);
    uint64_t now = uv_now(&c->loop);
    if (c->stream_retry_ms && now < c->stream_retry_ms)
        return false;
    char err[256];
    struct stp_nats_js js = js_config(c, NULL, NULL);
    if (c->api->js_setup(c->nats, &js, JS_TIMEOUT_MS, err, sizeof(err)) < 0) {
        setup_failed("queue messages", err);
        uv_update_time(&c->loop);
        c->stream_retry_ms = uv_now(&c->loop) + STREAM_RETRY_MS;
        return false;
    }
    atomic_store_explicit(&c->stream_ok, true, memory_order_relaxed);
    return true;
}

static int store(struct stp_cluster *c, unsigned from, const struct stp_msg *m, uint64_t id)
{
    if (stp_cluster_degraded(c->b) || !ensure_stream(c))
        return STP_ESTORE_AWAY;
    const char *subject = queue_subject(c, m->dest, m->dest_len);
    if (!subject)
        return STP_ESTORE_REFUSED;
    char reply[96];
    snprintf(reply, sizeof(reply), "%s.a.%u.%" PRIu64, c->inbox, from, id);
    struct stp_wire_msg wm = stp_cluster_wire_of(c, m);
    stp_buf_reset(&c->payload);
    if (stp_wire_encode(&c->payload, &wm) < 0)
        return STP_ENOMEM;
    int64_t max = c->api->max_payload(c->nats);
    if (max > 0 && c->payload.len > (size_t)max)
        return STP_ESTORE_TOO_BIG;
    if (c->api->publish(c->nats, subject, reply, msg_id(c, m), c->payload.data, c->payload.len) < 0)
        return STP_ESTORE_AWAY;
    return 0;
}

static void on_publish(struct stp_cluster *c, unsigned from, struct stp_post *cmd)
{
    struct stp_msg *m = cmd->u.cq_msg.msg;
    uint64_t id = cmd->u.cq_msg.id;
    int err = store(c, from, m, id);
    stp_msg_unref(&cmd->u.cq_msg.msg);
    if (!err)
        return; /* JetStream answers on the inbox */
    struct stp_post ack = {.type = STP_WCMD_CQ_PUBACK, .u.cq_puback = {id, err}};
    answer(c, from, &ack);
}

#define STR_(x) #x
#define STR(x) STR_(x)

static void on_settle(struct stp_cluster *c, struct stp_post *cmd)
{
    static const char *const text[] = {
        [STP_CQ_ACK] = "+ACK",
        [STP_CQ_NAK] = "-NAK",
        [STP_CQ_TERM] = "+TERM",
        [STP_CQ_WPI] = "+WPI",
        [STP_CQ_NAK_LATER] = "-NAK {\"delay\":" STR(STP_CQ_NAK_DELAY_MS) "000000}",
    };
    int kind = cmd->u.cq_settle.kind;
    const struct stp_msg *msg = cmd->u.cq_settle.msg;
    if (kind >= STP_CQ_ACK && kind <= STP_CQ_NAK_LATER)
        (void)c->api->publish(c->nats, msg ? msg->cluster_ack : cmd->u.cq_settle.subject, NULL,
                              NULL, text[kind],
                              strlen(text[kind])); /* lost: redelivered after the ack wait */
    stp_post_release(cmd);
}

static void on_open(struct stp_cluster *c, unsigned from, struct stp_post *cmd)
{
    const char *queue = cmd->u.cq.queue;
    char consumer[24], err[256] = "not connected to NATS";
    stp_cluster_consumer_name(consumer, queue, strlen(queue));
    const char *filter = queue_subject(c, queue, strlen(queue));
    struct stp_nats_js js = js_config(c, consumer, filter);
    bool ok = filter && !stp_cluster_degraded(c->b) &&
              c->api->js_setup(c->nats, &js, JS_TIMEOUT_MS, err, sizeof(err)) == 0;
    if (ok)
        atomic_store_explicit(&c->stream_ok, true, memory_order_relaxed);
    else
        setup_failed(queue, filter ? err : "its name is too long for a NATS subject");
    cmd->type = STP_WCMD_CQ_READY;
    cmd->u.cq.n = ok;
    answer(c, from, cmd); /* the queue name goes back with it */
}

static void on_pull(struct stp_cluster *c, unsigned from, struct stp_post *cmd)
{
    const char *queue = cmd->u.cq.queue;
    char consumer[24], body[96];
    stp_cluster_consumer_name(consumer, queue, strlen(queue));
    const char *qsubject = queue_subject(c, queue, strlen(queue));
    stp_buf_reset(&c->js_reply);
    bool ok = qsubject && !stp_cluster_degraded(c->b);
    if (ok) {
        char head[64];
        snprintf(head, sizeof(head), "%s.f.%u.", c->inbox, from);
        ok = stp_buf_append_str(&c->js_reply, head) == 0 &&
             stp_buf_append_str(&c->js_reply, qsubject) == 0 &&
             stp_buf_append(&c->js_reply, "", 1) == 0;
    }
    if (ok) {
        char subject[96];
        snprintf(subject, sizeof(subject), "$JS.API.CONSUMER.MSG.NEXT.%s.%s", STP_CQ_STREAM,
                 consumer);
        int n = snprintf(body, sizeof(body), "{\"batch\":%" PRId64 ",\"expires\":%" PRIu64 "}",
                         cmd->u.cq.n, (uint64_t)STP_CQ_PULL_EXPIRES_MS * 1000000);
        ok = c->api->publish(c->nats, subject, (const char *)c->js_reply.data, NULL, body,
                             (size_t)n) == 0;
    }
    if (ok) {
        stp_post_release(cmd);
        return; /* messages, then a status when it ends early, on the inbox */
    }
    cmd->type = STP_WCMD_CQ_PULLED;
    cmd->u.cq.n = -1;
    answer(c, from, cmd);
}

bool stp_cluster_js_handle(struct stp_cluster *c, unsigned from, struct stp_post *cmd)
{
    switch (cmd->type) {
    case STP_WCMD_CQ_PUBLISH:
        on_publish(c, from, cmd);
        return true;
    case STP_WCMD_CQ_SETTLE:
        on_settle(c, cmd);
        return true;
    case STP_WCMD_CQ_OPEN:
        on_open(c, from, cmd);
        return true;
    case STP_WCMD_CQ_PULL:
        on_pull(c, from, cmd);
        return true;
    default:
        return false;
    }
}

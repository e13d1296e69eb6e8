/*
 * queue.c - queues, on their owner worker.
 *
 * A queue holds messages until a consumer with credit takes them, round-robin
 * among its consumers. Credit has two parts: deliveries not yet written to the
 * consumer's socket (bounded by OUT_WINDOW, so a slow socket simply gets no
 * more) and, with client acks and a prefetch-count, deliveries not yet acked.
 * Every delivery stays in the consumer's in-flight list until it is settled:
 * written (auto ack) or acked (client acks). NACK and a consumer leaving put
 * in-flight messages back at the head, in order, marked redelivered.
 * A queue over its bound (messages or bytes) pauses the publishers that send
 * to it until it drains below 90% of the bound.
 */
#include "broker/dest.h"
#include "broker/worker.h"
#include "stampede/array.h"
#include "stampede/deque.h"
#include "stampede/error.h"
#include "stampede/log.h"
#include "stampede/msg.h"
#include "stampede/search.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OUT_WINDOW 2048

struct qentry {
    struct stp_msg *msg;
    uint64_t tag; /* in-flight lists: the delivery tag */
    bool redelivered;
};

/* A FIFO of entries that can also grow at the head (for requeues). */
STP_DEQUE_DEFINE(qdeque, struct qentry)

struct stp_consumer {
    uint64_t key;
    struct stp_queue *q;
    uint16_t worker;
    uint32_t slot, gen;
    bool client_ack;
    uint32_t prefetch;
    uint64_t next_tag;
    uint64_t written; /* highest tag known written to the socket */
    /* Deliveries not settled yet, in tag order. One acked out of order
     * (client-individual) becomes a tombstone (msg NULL), dropped when it
     * reaches the head or when tombstones outnumber the live entries. */
    struct qdeque inflight;
    size_t live; /* entries of inflight that are not tombstones */
};

/* A publisher's connection; 12 bytes without padding (a hash map key). */
struct connref {
    uint32_t worker;
    uint32_t slot, gen;
};

struct stp_queue {
    char *name;
    size_t name_len;
    struct qdeque ready;
    size_t bytes;
    struct stp_consumer **consumers;
    size_t nconsumers, cap_consumers;
    size_t rr;
    struct connref *throttled;
    size_t nthrottled, cap_throttled;
    struct stp_map throttled_set; /* keys point into throttled[] */
};

/* --- deque --- */

static bool has_msg(const struct qentry *e)
{
    return e->msg != NULL;
}

/* Drop every entry's message reference and the storage. */
static void dq_free(struct qdeque *d)
{
    while (d->count) {
        struct qentry e = qdeque_pop_front(d);
        stp_msg_unref(&e.msg);
    }
    qdeque_free(d);
}

/* --- queues --- */

/* The queue named so, made when missing and create is set. NULL when out of
 * memory, or with *refused set when --max-destinations is reached. */
static struct stp_queue *queue_get(struct stp_worker *w, const char *name, size_t len, bool create,
                                   bool *refused)
{
    struct stp_queue *q = stp_map_get(&w->queues, name, len);
    *refused = false;
    if (q || !create)
        return q;
    if (!stp_dest_count_take(w)) {
        *refused = true;
        return NULL;
    }
    q = calloc(1, sizeof(*q));
    if (!q || !(q->name = malloc(len + 1))) {
        free(q);
        stp_dest_count_give(w);
        return NULL;
    }
    memcpy(q->name, name, len);
    q->name[len] = '\0';
    q->name_len = len;
    if (stp_map_put(&w->queues, q->name, len, q) < 0) {
        free(q->name);
        free(q);
        stp_dest_count_give(w);
        return NULL;
    }
    return q;
}

static bool has_credit(const struct stp_consumer *c)
{
    if (c->next_tag - c->written >= OUT_WINDOW)
        return false;
    return !c->client_ack || c->prefetch == 0 || c->live < c->prefetch;
}

static struct stp_consumer *next_consumer(struct stp_queue *q)
{
    for (size_t n = 0; n < q->nconsumers; n++) {
        struct stp_consumer *c = q->consumers[q->rr % q->nconsumers];
        q->rr = (q->rr + 1) % q->nconsumers;
        if (has_credit(c))
            return c;
    }
    return NULL;
}

static void unthrottle_if_drained(struct stp_worker *w, struct stp_queue *q)
{
    const struct stp_config *cfg = w->cfg;
    if (q->nthrottled == 0 || q->ready.count * 10 > cfg->queue_max_messages * 9 ||
        q->bytes * 10 > cfg->queue_max_bytes * 9)
        return;
    for (size_t i = 0; i < q->nthrottled; i++) {
        struct stp_post cmd = stp_post_throttle(false);
        stp_post_to_conn(&cmd, (uint16_t)q->throttled[i].worker, q->throttled[i].slot,
                         q->throttled[i].gen);
        stp_worker_post(w, q->throttled[i].worker, &cmd);
    }
    q->nthrottled = 0;
    stp_map_free(&q->throttled_set);
}

static void dispatch(struct stp_worker *w, struct stp_queue *q)
{
    struct stp_consumer *c;
    while (q->ready.count > 0 && (c = next_consumer(q)) != NULL) {
        struct qentry e = qdeque_pop_front(&q->ready);
        q->bytes -= e.msg->tail_len;
        e.tag = ++c->next_tag;
        struct stp_post cmd = stp_post_qdeliver(stp_msg_ref(e.msg), c->key, e.tag, e.redelivered);
        stp_post_to_conn(&cmd, c->worker, c->slot, c->gen);
        if (e.redelivered)
            STP_STAT_INC(w->stats.msgs_redelivered);
        if (qdeque_push_back(&c->inflight, e) < 0)
            stp_msg_unref(&e.msg); /* out of memory: the delivery stands unsettled */
        else
            c->live++;
        stp_worker_post(w, c->worker, &cmd);
    }
    unthrottle_if_drained(w, q);
}

/* Room for one more throttled publisher; the set's keys follow the array. */
static int throttled_grow(struct stp_queue *q)
{
    if (STP_ARRAY_RESERVE(q->throttled, q->cap_throttled, q->nthrottled + 1) < 0)
        return STP_ENOMEM;
    stp_map_free(&q->throttled_set);
    for (size_t i = 0; i < q->nthrottled; i++) {
        struct connref *r = &q->throttled[i];
        if (stp_map_put(&q->throttled_set, r, sizeof(*r), r) < 0)
            return STP_ENOMEM;
    }
    return 0;
}

/* Pause a publisher of a queue over its bound, once. Many publishers may
 * pipeline SENDs into a full queue: membership is a hash lookup, not a scan. */
static void throttle(struct stp_worker *w, struct stp_queue *q, const struct stp_post *cmd)
{
    struct connref r = {cmd->worker, cmd->slot, cmd->gen};
    if (stp_map_get(&q->throttled_set, &r, sizeof(r)))
        return;
    if (q->nthrottled == q->cap_throttled && throttled_grow(q) < 0)
        return;
    struct connref *slot = &q->throttled[q->nthrottled++];
    *slot = r;
    (void)stp_map_put(&q->throttled_set, slot, sizeof(*slot),
                      slot); /* ENOMEM: a repeat THROTTLE is harmless */
    struct stp_post t = stp_post_throttle(true);
    stp_post_to_conn(&t, cmd->worker, cmd->slot, cmd->gen);
    stp_worker_post(w, cmd->worker, &t);
}

void stp_queue_route(struct stp_worker *w, struct stp_post *cmd)
{
    struct stp_msg *m = cmd->u.route.msg;
    cmd->u.route.msg = NULL;
    bool refused;
    struct stp_queue *q = queue_get(w, m->dest, m->dest_len, true, &refused);
    if (refused) {
        stp_dest_refuse(w, cmd, NULL);
        stp_msg_unref(&m);
        return;
    }
    if (!q || qdeque_push_back(&q->ready, (struct qentry){.msg = m}) < 0) {
        stp_error("queue %s: out of memory, message dropped", m->dest);
        stp_msg_unref(&m);
        return;
    }
    q->bytes += m->tail_len;
    if (q->ready.count > w->cfg->queue_max_messages || q->bytes > w->cfg->queue_max_bytes)
        throttle(w, q, cmd);
    dispatch(w, q);
}

/* --- consumers --- */

void stp_queue_consumer_add(struct stp_worker *w, unsigned from, struct stp_post *cmd)
{
    bool refused;
    const char *name = cmd->u.consumer_add.queue;
    struct stp_queue *q = queue_get(w, name, strlen(name), true, &refused);
    stp_post_release(cmd);
    if (refused)
        stp_dest_refuse(w, cmd, NULL);
    struct stp_consumer *c = q ? calloc(1, sizeof(*c)) : NULL;
    if (!c)
        return;
    c->key = cmd->u.consumer_add.sub_key;
    c->q = q;
    c->worker = (uint16_t)from;
    c->slot = cmd->slot;
    c->gen = cmd->gen;
    c->client_ack = cmd->u.consumer_add.client_ack;
    c->prefetch = cmd->u.consumer_add.prefetch;
    if (STP_ARRAY_RESERVE(q->consumers, q->cap_consumers, q->nconsumers + 1) < 0) {
        free(c);
        return;
    }
    if (stp_map_put(&w->consumers, &c->key, sizeof(c->key), c) < 0) {
        free(c);
        return;
    }
    q->consumers[q->nconsumers++] = c;
    dispatch(w, q);
}

/* Put entries [0, n) of the consumer's in-flight list back at the queue's
 * head, in order, marked redelivered. */
static void requeue_front(struct stp_queue *q, struct stp_consumer *c, size_t n)
{
    for (size_t i = n; i > 0; i--) {
        struct qentry e = *qdeque_at(&c->inflight, i - 1);
        if (!e.msg)
            continue; /* a tombstone */
        c->live--;
        e.redelivered = true;
        if (qdeque_push_front(&q->ready, e) < 0)
            stp_msg_unref(&e.msg);
        else
            q->bytes += e.msg->tail_len;
    }
    for (size_t i = 0; i < n; i++)
        qdeque_pop_front(&c->inflight);
}

/* Entries [0, n) of the in-flight list are settled: drop them. */
static void settle_front(struct stp_consumer *c, size_t n)
{
    while (n--) {
        struct qentry e = qdeque_pop_front(&c->inflight);
        if (e.msg)
            c->live--;
        stp_msg_unref(&e.msg);
    }
}

/* How many leading in-flight entries have a tag <= tag. */
static size_t count_upto(struct stp_consumer *c, uint64_t tag)
{
    size_t n = 0;
    while (n < c->inflight.count && qdeque_at(&c->inflight, n)->tag <= tag)
        n++;
    return n;
}

/* Index of the live in-flight entry with this tag (binary search: entries
 * are in tag order), or -1. */
static uint64_t inflight_tag_at(const void *d, size_t i)
{
    return qdeque_at(d, i)->tag;
}

static ssize_t inflight_find(struct stp_consumer *c, uint64_t tag)
{
    size_t lo = stp_lower_bound(c->inflight.count, tag, inflight_tag_at, &c->inflight);
    if (lo == c->inflight.count || qdeque_at(&c->inflight, lo)->tag != tag ||
        !qdeque_at(&c->inflight, lo)->msg)
        return -1;
    return (ssize_t)lo;
}

/* After an entry became a tombstone: drop the ones at the head, and compact
 * when they outnumber the live entries (amortized O(1) per ack). */
static void inflight_trim(struct stp_consumer *c)
{
    while (c->inflight.count && !qdeque_at(&c->inflight, 0)->msg)
        qdeque_pop_front(&c->inflight);
    if (c->inflight.count > 32 && c->inflight.count - c->live > c->live)
        (void)qdeque_filter(&c->inflight, has_msg); /* on ENOMEM the tombstones stay */
}

static void queue_free(struct stp_queue *q)
{
    dq_free(&q->ready);
    free(q->consumers);
    free(q->throttled);
    stp_map_free(&q->throttled_set);
    free(q->name);
    free(q);
}

/* A queue with no message and no consumer holds nothing a client could
 * observe: drop it, so queue names used once do not pile up. The next SEND
 * or SUBSCRIBE makes it again. */
static void forget_if_idle(struct stp_worker *w, struct stp_queue *q)
{
    if (q->ready.count > 0 || q->nconsumers > 0)
        return;
    unthrottle_if_drained(w, q);
    stp_map_del(&w->queues, q->name, q->name_len);
    queue_free(q);
    stp_dest_count_give(w);
}

void stp_queue_consumer_del(struct stp_worker *w, struct stp_post *cmd)
{
    uint64_t key = cmd->u.consumer_del.sub_key;
    struct stp_consumer *c = stp_map_del(&w->consumers, &key, sizeof(key));
    if (!c)
        return;
    struct stp_queue *q = c->q;
    /* Auto-ack deliveries the consumer's connection had already queued for
     * writing (up to tag b) will be written: they are delivered, not put
     * back, or a client that unsubscribes would get them twice. */
    if (!c->client_ack && cmd->u.consumer_del.written_upto)
        settle_front(c, count_upto(c, cmd->u.consumer_del.written_upto));
    requeue_front(q, c, c->inflight.count);
    for (size_t i = 0; i < q->nconsumers; i++) {
        if (q->consumers[i] == c) {
            q->consumers[i] = q->consumers[--q->nconsumers];
            break;
        }
    }
    dq_free(&c->inflight);
    free(c);
    dispatch(w, q);
    forget_if_idle(w, q);
}

void stp_queue_written(struct stp_worker *w, struct stp_post *cmd)
{
    uint64_t key = cmd->u.qwritten.sub_key;
    struct stp_consumer *c = stp_map_get(&w->consumers, &key, sizeof(key));
    if (!c)
        return;
    if (cmd->u.qwritten.tag > c->written)
        c->written = cmd->u.qwritten.tag;
    if (!c->client_ack)
        settle_front(c, count_upto(c, c->written));
    dispatch(w, c->q);
}

void stp_queue_ack(struct stp_worker *w, struct stp_post *cmd)
{
    uint64_t key = cmd->u.qack.sub_key, tag = cmd->u.qack.tag;
    struct stp_consumer *c = stp_map_get(&w->consumers, &key, sizeof(key));
    if (!c)
        return;
    bool nack = cmd->u.qack.nack;
    size_t before = c->live;
    if (cmd->u.qack.upto) {
        size_t n = count_upto(c, tag);
        if (nack)
            requeue_front(c->q, c, n);
        else
            settle_front(c, n);
    } else {
        ssize_t idx = inflight_find(c, tag);
        if (idx < 0)
            return;
        struct qentry e = *qdeque_at(&c->inflight, (size_t)idx);
        qdeque_at(&c->inflight, (size_t)idx)->msg = NULL; /* a tombstone */
        c->live--;
        inflight_trim(c);
        if (nack) {
            e.redelivered = true;
            if (qdeque_push_front(&c->q->ready, e) < 0)
                stp_msg_unref(&e.msg);
            else
                c->q->bytes += e.msg->tail_len;
        } else {
            stp_msg_unref(&e.msg);
        }
    }
    if (nack)
        STP_STAT_ADD(w->stats.msgs_nacked, before - c->live);
    else
        STP_STAT_ADD(w->stats.msgs_acked, before - c->live);
    dispatch(w, c->q);
}

void stp_queues_free(struct stp_worker *w)
{
    for (size_t i = 0; i < w->consumers.cap; i++) {
        struct stp_consumer *c = w->consumers.slots[i].hash ? w->consumers.slots[i].value : NULL;
        if (c) {
            dq_free(&c->inflight);
            free(c);
        }
    }
    stp_map_free(&w->consumers);
    for (size_t i = 0; i < w->queues.cap; i++) {
        struct stp_queue *q = w->queues.slots[i].hash ? w->queues.slots[i].value : NULL;
        if (q)
            queue_free(q);
    }
    stp_map_free(&w->queues);
}

/* Keep the `max` deepest queues: insertion into a small sorted array. */
size_t stp_queue_snapshot(struct stp_worker *w, struct stp_qsnap *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < w->queues.cap; i++) {
        struct stp_queue *q = w->queues.slots[i].hash ? w->queues.slots[i].value : NULL;
        if (!q)
            continue;
        size_t depth = q->ready.count;
        if (n == max && depth <= out[n - 1].depth)
            continue;
        size_t at = n < max ? n++ : n - 1;
        while (at > 0 && out[at - 1].depth < depth) {
            out[at] = out[at - 1];
            at--;
        }
        snprintf(out[at].name, sizeof(out[at].name), "%s", q->name);
        out[at].depth = depth;
        out[at].consumers = q->nconsumers;
    }
    return n;
}

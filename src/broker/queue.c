/*
 * queue.c - queues, on their owner worker.
 *
 * A queue holds messages until a consumer with credit takes them, round-robin
 * among its consumers. Credit has two parts: deliveries not yet written to the
 * consumer's socket (bounded by STP_QUEUE_OUT_WINDOW, so a slow socket simply
 * gets no more) and, with client acks and a prefetch-count, deliveries not yet
 * acked.
 * Every delivery stays in the consumer's in-flight list until it is settled:
 * written (auto ack) or acked (client acks). NACK and a consumer leaving put
 * in-flight messages back at the head, in order, marked redelivered.
 * When some consumers have a selector, qselect.c dispatches instead (each
 * consumer takes the first message it matches); the queue's state is in
 * queue_int.h.
 * A queue over its bound (messages or bytes) pauses the publishers that send
 * to it until it drains below 90% of the bound.
 */
#include "broker/broker.h"
#include "broker/cluster.h"
#include "broker/cluster_queue.h"
#include "broker/deadletter.h"
#include "broker/dedup.h"
#include "broker/dest.h"
#include "broker/durable.h"
#include "broker/queue_int.h"
#include "broker/worker.h"
#include "select/select.h"
#include "stampede/array.h"
#include "stampede/clock.h"
#include "stampede/deque.h"
#include "stampede/error.h"
#include "stampede/log.h"
#include "stampede/msg.h"
#include "stampede/search.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *stp_queue_name(const struct stp_queue *q)
{
    return q->name;
}

/* --- deque --- */

static bool has_msg(const struct qentry *e)
{
    return e->msg != NULL;
}

/* The message left its queue for good: its journal record goes too. */
static void settle(struct stp_worker *w, struct stp_msg **m)
{
    if ((*m)->cluster_ack)
        stp_cq_settle(w, *m, STP_CQ_ACK);
    stp_durable_settled(w, *m);
    stp_msg_unref(m);
}

/* Drop every entry's message reference and the storage (shutdown: the
 * journal keeps what it holds). Tombstones hold none. */
static void dq_free(struct qdeque *d)
{
    while (d->count) {
        struct qentry e = qdeque_pop_front(d);
        stp_msg_unref(&e.msg);
    }
    qdeque_free(d);
}

/* --- the ready deque (positions and tombstones: queue_int.h) --- */

static uint64_t ready_pos_at(const void *d, size_t i)
{
    return qdeque_at(d, i)->tag;
}

size_t stp_q_lower_bound(const struct stp_queue *q, uint64_t pos)
{
    return stp_lower_bound(q->ready.count, pos, ready_pos_at, &q->ready);
}

ssize_t stp_q_find(const struct stp_queue *q, uint64_t pos)
{
    if (q->ready.count == 0)
        return -1;
    /* Without tombstones compacted away before it, a position is its
     * distance from the front's. */
    uint64_t guess = pos - qdeque_at(&q->ready, 0)->tag;
    size_t i = guess < q->ready.count && qdeque_at(&q->ready, guess)->tag == pos
                   ? (size_t)guess
                   : stp_q_lower_bound(q, pos);
    if (i == q->ready.count || qdeque_at(&q->ready, i)->tag != pos || !qdeque_at(&q->ready, i)->msg)
        return -1;
    return (ssize_t)i;
}

/* Tombstones that reached the front go. */
static void trim_front(struct stp_queue *q)
{
    while (q->ready.count && !qdeque_at(&q->ready, 0)->msg) {
        qdeque_pop_front(&q->ready);
        q->tombs--;
    }
}

/* The front entry (live), taken out. */
static inline struct qentry ready_pop_front(struct stp_queue *q)
{
    struct qentry e = qdeque_pop_front(&q->ready);
    q->count--;
    q->bytes -= e.msg->tail_len;
    if (q->tombs)
        trim_front(q);
    return e;
}

struct qentry stp_q_remove_at(struct stp_queue *q, size_t i)
{
    if (i == 0)
        return ready_pop_front(q);
    struct qentry *x = qdeque_at(&q->ready, i);
    struct qentry e = *x;
    x->msg = NULL;
    q->count--;
    q->bytes -= e.msg->tail_len;
    /* Compacted when tombstones outnumber live entries: amortized O(1). */
    if (++q->tombs > q->count + 32 && qdeque_filter(&q->ready, has_msg) == 0)
        q->tombs = 0; /* on ENOMEM they stay */
    return e;
}

/* Append e (its message taken over) at the back; it gets its position
 * here. STP_ENOMEM: nothing changed. */
static inline int ready_push_back(struct stp_queue *q, struct qentry e)
{
    e.tag = q->back_pos;
    if (qdeque_push_back(&q->ready, e) < 0)
        return STP_ENOMEM;
    q->back_pos++;
    q->count++;
    q->bytes += e.msg->tail_len;
    if (q->ngroups)
        stp_qsel_index(q, &e, false);
    return 0;
}

/* Put e (its message taken over) back at the front, below every position
 * given so far. STP_ENOMEM: nothing changed. */
static int ready_push_front(struct stp_queue *q, struct qentry e)
{
    e.tag = q->front_pos - 1;
    if (qdeque_push_front(&q->ready, e) < 0)
        return STP_ENOMEM;
    q->front_pos--;
    q->count++;
    q->bytes += e.msg->tail_len;
    if (q->ngroups)
        stp_qsel_index(q, &e, true);
    return 0;
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
    q->dsub_stripe = STP_DSUB_UNCOUNTED;
    q->temp = stp_dest_is_reply(name, len);
    q->cluster = stp_cq_is_cluster(w, name, len);
    q->front_pos = q->back_pos = UINT64_C(1) << 63; /* room both ways */
    if (stp_map_put(&w->queues, q->name, len, q) < 0) {
        free(q->name);
        free(q);
        stp_dest_count_give(w);
        return NULL;
    }
    /* A reply to this temp queue may be sent on another node: the node asks
     * NATS for its subject while the queue lives. */
    if (q->temp && w->broker->cluster)
        stp_cluster_interest(w, q->name, len, +1);
    return q;
}

static struct stp_consumer *next_consumer(struct stp_queue *q)
{
    for (size_t n = 0; n < q->nconsumers; n++) {
        struct stp_consumer *c = q->consumers[q->rr % q->nconsumers];
        q->rr = (q->rr + 1) % q->nconsumers;
        if (stp_q_has_credit(c))
            return c;
    }
    return NULL;
}

void stp_q_unthrottle_if_drained(struct stp_worker *w, struct stp_queue *q)
{
    const struct stp_config *cfg = w->cfg;
    if (q->nthrottled == 0)
        return;
    /* A cluster queue pauses its publishers while JetStream is behind. */
    if (q->cluster ? q->js_pending * 10 > STP_CQ_PUB_WINDOW * 9
                   : q->count * 10 > cfg->queue_max_messages * 9 ||
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

/* --- expiry and dead letters --- */

enum death { DEATH_EXPIRED, DEATH_REJECTED };

/* m (a reference, taken over) left queue q for good because of `why`:
 * with --dead-letter it moves to /queue/DLQ.<name> (a DLQ's own dead
 * letters are dropped), otherwise it is dropped. A journaled original is
 * settled only once the DLQ's owner has the copy on disk (DEAD_SYNC), so
 * a crash in between duplicates, never loses. */
static void dead_letter(struct stp_worker *w, struct stp_queue *q, struct stp_msg *m,
                        enum death why)
{
    if (why == DEATH_EXPIRED)
        STP_STAT_INC(w->stats.msgs_expired);
    else
        STP_STAT_INC(w->stats.msgs_rejected);
    struct stp_msg *d = NULL;
    /* Only /queue/ messages have a DLQ; a temp queue's or a durable
     * subscription's are dropped. */
    if (w->cfg->dead_letter && stp_dest_kind(q->name, q->name_len) == STP_DEST_QUEUE &&
        !stp_dead_letter_is_dlq(q->name, q->name_len))
        d = stp_dead_letter_build(m, why == DEATH_EXPIRED ? "expired" : "rejected",
                                  w->cfg->max_destination_length);
    if (!d) {
        settle(w, &m);
        return;
    }
    STP_STAT_INC(w->stats.msgs_dead_lettered);
    unsigned owner = stp_owner_of(w, d->dest, d->dest_len);
    struct stp_post r = stp_post_route(d);
    stp_post_to_conn(&r, STP_NO_CONN, 0, 0);
    stp_worker_post(w, owner, &r);
    if (!m->jkey) {
        settle(w, &m);
        return;
    }
    struct stp_post sync = stp_post_dead_sync(m);
    stp_post_to_conn(&sync, (uint16_t)w->id, 0, 0);
    stp_worker_post(w, owner, &sync);
}

void stp_queue_dead_done(struct stp_worker *w, struct stp_post *cmd)
{
    struct stp_msg *m = cmd->u.dead.msg;
    cmd->u.dead.msg = NULL;
    if (cmd->u.dead.ok)
        settle(w, &m);
    else
        stp_msg_unref(&m); /* the copy was lost: the original stays journaled */
}

void stp_q_expire(struct stp_worker *w, struct stp_queue *q, struct stp_msg *m)
{
    dead_letter(w, q, m, DEATH_EXPIRED);
}

/* Expired messages at the head of q go (RabbitMQ's rule: a queue drops
 * expired messages when they reach its head, so none is ever delivered;
 * with selectors, a message is also checked when a consumer takes it, and
 * swept wherever it waits). */
static void drop_expired_head(struct stp_worker *w, struct stp_queue *q, uint64_t *now)
{
    while (q->count > 0 && stp_q_expired(qdeque_at(&q->ready, 0)->msg, now)) {
        struct qentry e = ready_pop_front(q);
        dead_letter(w, q, e.msg, DEATH_EXPIRED);
    }
}

void stp_q_drop_expired_head(struct stp_worker *w, struct stp_queue *q, uint64_t *now)
{
    drop_expired_head(w, q, now);
}

/* A message coming back (NACK, consumer gone): false when that was one
 * return too many (--max-redeliveries) and it was rejected instead. */
static bool may_return(struct stp_worker *w, struct stp_queue *q, struct stp_msg *m)
{
    size_t max = w->cfg->max_redeliveries;
    if (max == 0 || m->deliveries <= max)
        return true;
    dead_letter(w, q, m, DEATH_REJECTED);
    return false;
}

/* Inlined into the plain dispatch loop (the common case), called by
 * qselect.c through stp_q_deliver. */
__attribute__((always_inline)) static inline void deliver(struct stp_worker *w,
                                                          struct stp_consumer *c, struct qentry e)
{
    e.tag = ++c->next_tag;
    e.msg->deliveries++;
    /* A journaled message reaches its consumer once its DELIVER record
     * is on disk: after a crash it comes back marked redelivered. */
    bool wait = stp_durable_delivered(w, e.msg);
    struct stp_post cmd = stp_post_qdeliver(stp_msg_ref(e.msg), c->key, e.tag, e.redelivered);
    stp_post_to_conn(&cmd, c->worker, c->slot, c->gen);
    if (e.redelivered)
        STP_STAT_INC(w->stats.msgs_redelivered);
    if (qdeque_push_back(&c->inflight, e) < 0)
        stp_msg_unref(&e.msg); /* out of memory: the delivery stands unsettled */
    else
        c->live++;
    stp_durable_post(w, &w->dur, c->worker, &cmd, wait);
}

void stp_q_deliver(struct stp_worker *w, struct stp_consumer *c, struct qentry e)
{
    deliver(w, c, e);
}

/* Round-robin: the head message to the next consumer with credit. With
 * selector groups, qselect.c decides instead. */
static void dispatch(struct stp_worker *w, struct stp_queue *q)
{
    if (q->ngroups) {
        stp_qsel_dispatch(w, q);
        if (q->cluster)
            stp_cq_want(w, q);
        return;
    }
    struct stp_consumer *c;
    uint64_t now = 0;
    while (q->count > 0) {
        drop_expired_head(w, q, &now);
        if (q->count == 0 || (c = next_consumer(q)) == NULL)
            break;
        deliver(w, c, ready_pop_front(q));
    }
    stp_q_unthrottle_if_drained(w, q);
    if (q->cluster)
        stp_cq_want(w, q); /* the consumers' room is JetStream's to fill */
}

static void forget_if_idle(struct stp_worker *w, struct stp_queue *q);

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
void stp_q_throttle(struct stp_worker *w, struct stp_queue *q, const struct stp_post *cmd)
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

static bool over_bound(const struct stp_worker *w, const struct stp_queue *q)
{
    return q->count > w->cfg->queue_max_messages || q->bytes > w->cfg->queue_max_bytes;
}

/* A message with no publisher to pause (a dead letter) or for a durable
 * subscription (whose publishers must not stop the topic) into a full queue
 * is dropped. One log line a second per worker. */
static void drop_full(struct stp_worker *w, struct stp_queue *q, struct stp_msg **m)
{
    static _Thread_local uint64_t last_log_ms;
    uint64_t now = uv_now(&w->loop);
    STP_STAT_INC(w->stats.msgs_dropped);
    if (last_log_ms == 0 || now - last_log_ms >= 1000) {
        last_log_ms = now;
        stp_warn("%s is full: a message was dropped", q->name);
    }
    settle(w, m);
}

static bool full_for(const struct stp_worker *w, const struct stp_queue *q, const struct stp_msg *m)
{
    return q->count >= w->cfg->queue_max_messages ||
           q->bytes + m->tail_len > w->cfg->queue_max_bytes;
}

/* Store m (taken over) in q's journal when it is persistent, then append
 * it and dispatch. cmd names the publisher (or STP_NO_CONN). */
static void enqueue(struct stp_worker *w, struct stp_queue *q, struct stp_msg *m,
                    const struct stp_post *cmd)
{
    bool conn = cmd->worker != STP_NO_CONN;
    int rc = q->temp ? 0 : stp_durable_store(w, m, cmd);
    if (rc < 0) {
        /* The journal cannot take it: the publisher gets an ERROR, never a
         * RECEIPT, and the message is not kept. */
        if (conn) {
            struct stp_post no = stp_post_not_stored(rc, m->pub_fence);
            stp_post_to_conn(&no, cmd->worker, cmd->slot, cmd->gen);
            stp_worker_post(w, cmd->worker, &no);
        }
        stp_msg_unref(&m);
        forget_if_idle(w, q);
        return;
    }
    if (ready_push_back(q, (struct qentry){.msg = m}) < 0) {
        stp_error("queue %s: out of memory, message dropped", q->name);
        settle(w, &m);
        return;
    }
    if (m->dedup_len)
        stp_dedup_remember(w, m); /* after the MSG record: a DEDUP record joins it */
    if (conn && !q->binding && over_bound(w, q))
        stp_q_throttle(w, q, cmd);
    dispatch(w, q);
}

void stp_queue_route_bound(struct stp_worker *w, struct stp_queue *q, struct stp_msg *m,
                           const struct stp_post *cmd)
{
    if (full_for(w, q, m)) {
        drop_full(w, q, &m);
        return;
    }
    enqueue(w, q, m, cmd);
}

void stp_queue_route(struct stp_worker *w, struct stp_post *cmd)
{
    struct stp_msg *m = cmd->u.route.msg;
    bool conn = cmd->worker != STP_NO_CONN;
    cmd->u.route.msg = NULL;
    bool refused;
    /* A reply queue exists only while its connection consumes it: a reply
     * to one that is gone (or never was) is dropped. */
    bool reply = stp_dest_is_reply(m->dest, m->dest_len);
    struct stp_queue *q = queue_get(w, m->dest, m->dest_len, !reply, &refused);
    if (!q && reply) {
        /* With --cluster a local client's reply may be for a temp queue on
         * another node: NATS takes it there (or nowhere). */
        if (conn && w->broker->cluster)
            stp_cluster_publish(w, m);
        else
            STP_STAT_INC(w->stats.msgs_dropped);
        stp_msg_unref(&m);
        return;
    }
    if (refused) {
        if (conn)
            stp_dest_refuse(w, cmd, NULL);
        stp_msg_unref(&m);
        return;
    }
    if (!q) {
        stp_error("queue %s: out of memory, message dropped", m->dest);
        stp_msg_unref(&m);
        return;
    }
    if (q->cluster) {
        cmd->u.route.msg = m; /* JetStream keeps it, not this node */
        stp_cq_send(w, q, cmd);
        return;
    }
    if (!conn && full_for(w, q, m)) {
        drop_full(w, q, &m);
        return;
    }
    enqueue(w, q, m, cmd);
}

/* --- durable subscriptions (durable_sub.c has the session's side) --- */

/* The topic a durable subscription's queue name ends with:
 * "/dsub/<identity hash>/topic/NAME". */
static bool dsub_topic(const struct stp_queue *q, const char **topic, size_t *len)
{
    size_t plen = sizeof(STP_DSUB_PREFIX) - 1;
    const char *t = q->name_len > plen ? memchr(q->name + plen, '/', q->name_len - plen) : NULL;
    if (!t)
        return false;
    *topic = t;
    *len = q->name_len - (size_t)(t - q->name);
    return stp_dest_kind(t, *len) == STP_DEST_TOPIC;
}

/* The selector text a binding record carries after its topic's NUL
 * (tail: "TOPIC\0" or "TOPIC\0SELECTOR\0"), or NULL. */
static const char *binding_selector(const struct stp_msg *b)
{
    size_t tlen = strnlen(b->tail, b->tail_len);
    return tlen + 2 < b->tail_len ? b->tail + tlen + 1 : NULL;
}

/* Compile the selector of binding b into q (none: every message). */
static int bind_selector(struct stp_queue *q, const struct stp_msg *b)
{
    const char *text = binding_selector(b);
    char err[160];
    q->bind_sel = NULL;
    if (!text)
        return 0;
    return stp_selector_compile(&q->bind_sel, text, strlen(text), err, sizeof(err)) < 0 ? STP_EINVAL
                                                                                        : 0;
}

/* Take one of the login's durable subscriptions (stripe), or STP_EFULL
 * past --max-durable-subscriptions-per-login. */
static int dsub_count_take(struct stp_worker *w, struct stp_queue *q, uint16_t stripe)
{
    atomic_uint *n = &w->broker->dsubs_per_login[stripe % STP_DSUB_STRIPES];
    if (atomic_fetch_add_explicit(n, 1, memory_order_relaxed) >= w->cfg->max_dsubs_per_login) {
        atomic_fetch_sub_explicit(n, 1, memory_order_relaxed);
        return STP_EFULL;
    }
    q->dsub_stripe = stripe % STP_DSUB_STRIPES;
    return 0;
}

static void dsub_count_give(struct stp_worker *w, struct stp_queue *q)
{
    if (q->dsub_stripe == STP_DSUB_UNCOUNTED)
        return;
    atomic_fetch_sub_explicit(&w->broker->dsubs_per_login[q->dsub_stripe], 1, memory_order_relaxed);
    q->dsub_stripe = STP_DSUB_UNCOUNTED;
}

/* Bind q to its topic with selector text (NULL: none): the binding record
 * first (journaled with a data dir, before the SUBSCRIBE's receipt), then
 * the topic's table. */
static int dsub_bind(struct stp_worker *w, struct stp_queue *q, const char *sel)
{
    const char *topic;
    size_t len;
    if (!dsub_topic(q, &topic, &len))
        return STP_EINVAL;
    size_t slen = sel ? strlen(sel) + 1 : 0;
    struct stp_msg *b = stp_msg_alloc(q->name, q->name_len, len + 1 + slen);
    if (!b)
        return STP_ENOMEM;
    memcpy((char *)b->tail, topic, len);
    ((char *)b->tail)[len] = '\0';
    if (sel)
        memcpy((char *)b->tail + len + 1, sel, slen);
    b->tail_len = len + 1 + slen;
    b->persistent = true;
    b->binding = true;
    stp_msg_set_id(b, stp_msg_next_id(w->id));
    int rc = bind_selector(q, b);
    if (rc == 0)
        rc = stp_durable_store(w, b, NULL);
    if (rc < 0) {
        stp_selector_free(q->bind_sel);
        q->bind_sel = NULL;
        stp_msg_unref(&b);
        return rc;
    }
    rc = stp_topic_bind(w, topic, len, q);
    if (rc < 0) {
        stp_selector_free(q->bind_sel);
        q->bind_sel = NULL;
        settle(w, &b);
        return rc;
    }
    q->binding = b;
    return 0;
}

/* Undo the binding: off its topic, its kept messages and its record gone
 * (the queue stays for the caller to forget or bind again). */
static void dsub_unbind(struct stp_worker *w, struct stp_queue *q)
{
    const char *topic;
    size_t len;
    if (dsub_topic(q, &topic, &len))
        stp_topic_unbind(w, topic, len, q);
    while (q->count > 0) {
        struct qentry e = ready_pop_front(q);
        settle(w, &e.msg);
    }
    settle(w, &q->binding);
    stp_selector_free(q->bind_sel);
    q->bind_sel = NULL;
    dsub_count_give(w, q);
}

static bool same_selector(const struct stp_msg *b, const char *sel)
{
    const char *old = binding_selector(b);
    return (!old && !sel) || (old && sel && strcmp(old, sel) == 0);
}

const struct stp_selector *stp_queue_binding_selector(const struct stp_queue *q)
{
    return q->bind_sel;
}

/* A subscriber for durable subscription queue q: at most one at a time;
 * the queue is bound on first use. 0, or -1 when refused (the connection
 * was told). */
static int dsub_claim(struct stp_worker *w, struct stp_queue *q, const struct stp_post *cmd)
{
    const char *sel = cmd->u.consumer_add.selector;
    int rc = q->nconsumers > 0 ? STP_EEXISTS : 0;
    /* Another selector makes it another subscription (ActiveMQ): what was
     * kept under the old one goes. */
    if (rc == 0 && q->binding && !same_selector(q->binding, sel))
        dsub_unbind(w, q);
    bool quota = false;
    if (rc == 0 && !q->binding) {
        rc = dsub_count_take(w, q, cmd->u.consumer_add.login_stripe);
        quota = rc == STP_EFULL;
        if (rc == 0 && (rc = dsub_bind(w, q, sel)) < 0)
            dsub_count_give(w, q);
    }
    if (rc == 0)
        return 0;
    if (rc == STP_EFULL && !quota) {
        stp_dest_refuse(w, cmd, NULL);
    } else {
        struct stp_post r = stp_post_refused(NULL);
        r.u.refused.why = quota ? STP_REFUSE_DSUB_QUOTA : STP_REFUSE_DSUB_BUSY;
        if (rc != STP_EEXISTS)
            stp_error("%s: durable subscription not made: %s", q->name, stp_strerror(rc));
        stp_post_to_conn(&r, cmd->worker, cmd->slot, cmd->gen);
        stp_worker_post(w, cmd->worker, &r);
    }
    forget_if_idle(w, q);
    return -1;
}

void stp_queue_dsub_del(struct stp_worker *w, struct stp_post *cmd)
{
    const char *name = cmd->u.dsub_del.queue;
    struct stp_queue *q = stp_map_get(&w->queues, name, strlen(name));
    stp_post_release(cmd);
    /* Held by another connection: it stays (RabbitMQ would cancel that
     * subscriber; here the holder keeps it). */
    if (!q || !q->binding || q->nconsumers > 0)
        return;
    dsub_unbind(w, q);
    forget_if_idle(w, q);
}

/* --- consumers --- */

/* A consumer with a selector joins the group of consumers with the same
 * text (made when it is the first); false when that failed. */
static bool join_group(struct stp_queue *q, struct stp_consumer *c, const char *text)
{
    if (!text)
        return true;
    c->group = stp_qsel_join(q, text);
    if (c->group)
        return true;
    stp_error("queue %s: a consumer's selector could not be set up; it gets nothing", q->name);
    return false;
}

void stp_queue_consumer_add(struct stp_worker *w, unsigned from, struct stp_post *cmd)
{
    bool refused;
    const char *name = cmd->u.consumer_add.queue;
    struct stp_queue *q = queue_get(w, name, strlen(name), true, &refused);
    if (refused)
        stp_dest_refuse(w, cmd, NULL);
    if (q && cmd->u.consumer_add.durable && dsub_claim(w, q, cmd) < 0) {
        stp_post_release(cmd);
        return;
    }
    struct stp_consumer *c = q ? calloc(1, sizeof(*c)) : NULL;
    /* A durable subscription's selector filters at its binding (above):
     * everything in its queue matches. */
    const char *sel = cmd->u.consumer_add.durable ? NULL : cmd->u.consumer_add.selector;
    if (c && !join_group(q, c, sel)) {
        free(c);
        c = NULL;
    }
    stp_post_release(cmd);
    if (!c) {
        if (q)
            forget_if_idle(w, q);
        return;
    }
    c->key = cmd->u.consumer_add.sub_key;
    c->q = q;
    c->worker = (uint16_t)from;
    c->slot = cmd->slot;
    c->gen = cmd->gen;
    c->client_ack = cmd->u.consumer_add.client_ack;
    c->prefetch = cmd->u.consumer_add.prefetch;
    if (STP_ARRAY_RESERVE(q->consumers, q->cap_consumers, q->nconsumers + 1) < 0 ||
        stp_map_put(&w->consumers, &c->key, sizeof(c->key), c) < 0) {
        if (c->group)
            stp_qsel_leave(q, c->group);
        free(c);
        forget_if_idle(w, q);
        return;
    }
    q->consumers[q->nconsumers++] = c;
    dispatch(w, q);
}

/* A returned entry goes back at the head of q, unless it was returned once
 * too often (then it is rejected). */
static void put_back(struct stp_worker *w, struct stp_queue *q, struct qentry e)
{
    if (!may_return(w, q, e.msg))
        return;
    if (e.msg->cluster_ack) {
        /* JetStream gives it to whichever node's consumer asks next. */
        stp_cq_settle(w, e.msg, STP_CQ_NAK);
        stp_msg_unref(&e.msg);
        return;
    }
    if (ready_push_front(q, e) < 0)
        stp_msg_unref(&e.msg);
}

/* Put entries [0, n) of the consumer's in-flight list back at the queue's
 * head, in order, marked redelivered. */
static void requeue_front(struct stp_worker *w, struct stp_queue *q, struct stp_consumer *c,
                          size_t n)
{
    /* Local messages go back at the head from the last one; a cluster
     * queue's go back to JetStream (-NAK) from the first one, so that it
     * redelivers them in their order. */
    for (size_t i = n; i > 0; i--) {
        struct qentry e = *qdeque_at(&c->inflight, i - 1);
        if (!e.msg || e.msg->cluster_ack)
            continue; /* a tombstone, or JetStream's (below) */
        c->live--;
        e.redelivered = true;
        put_back(w, q, e);
    }
    for (size_t i = 0; i < n; i++) {
        struct qentry e = *qdeque_at(&c->inflight, i);
        if (!e.msg || !e.msg->cluster_ack)
            continue;
        c->live--;
        put_back(w, q, e);
    }
    for (size_t i = 0; i < n; i++)
        qdeque_pop_front(&c->inflight);
}

/* Entries [0, n) of the in-flight list leave for good: settled (acked,
 * written with auto ack), or with reject (NACK requeue:false) dead-lettered. */
static void take_front(struct stp_worker *w, struct stp_consumer *c, size_t n, bool reject)
{
    while (n--) {
        struct qentry e = qdeque_pop_front(&c->inflight);
        if (!e.msg)
            continue;
        c->live--;
        if (reject)
            dead_letter(w, c->q, e.msg, DEATH_REJECTED);
        else
            settle(w, &e.msg);
    }
}

static void settle_front(struct stp_worker *w, struct stp_consumer *c, size_t n)
{
    take_front(w, c, n, false);
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

/* A cluster queue with no consumer left here gives its leases back. */
static void nak_ready(struct stp_worker *w, struct stp_queue *q)
{
    /* (A message recovered from this node's journal is not JetStream's:
     * it stays, and the queue with it.) */
    while (q->count > 0 && qdeque_at(&q->ready, 0)->msg->cluster_ack) {
        struct qentry e = ready_pop_front(q);
        stp_cq_settle(w, e.msg, STP_CQ_NAK);
        stp_msg_unref(&e.msg);
    }
}

static void queue_free(struct stp_queue *q)
{
    stp_msg_unref(&q->binding);
    stp_selector_free(q->bind_sel);
    dq_free(&q->ready);
    stp_qsel_free(q);
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
    if (q->cluster && q->nconsumers == 0)
        nak_ready(w, q);
    if (q->nconsumers > 0 || q->binding || (q->count > 0 && !q->temp) || q->js_pending > 0)
        return;
    /* A temp queue's connection is gone (or unsubscribed): nobody else may
     * consume what it still holds. */
    while (q->count > 0) {
        struct qentry e = ready_pop_front(q);
        STP_STAT_INC(w->stats.msgs_dropped);
        settle(w, &e.msg);
    }
    stp_q_unthrottle_if_drained(w, q);
    stp_qsel_unschedule(w, q);
    if (q->temp && w->broker->cluster)
        stp_cluster_interest(w, q->name, q->name_len, -1);
    stp_map_del(&w->queues, q->name, q->name_len);
    queue_free(q);
    stp_dest_count_give(w);
}

void stp_q_forget_if_idle(struct stp_worker *w, struct stp_queue *q)
{
    forget_if_idle(w, q);
}

struct stp_queue *stp_q_find_queue(struct stp_worker *w, const char *name, size_t len)
{
    return stp_map_get(&w->queues, name, len);
}

void stp_q_cluster_arrive(struct stp_worker *w, struct stp_msg *m, bool redelivered)
{
    bool refused;
    struct stp_queue *q = queue_get(w, m->dest, m->dest_len, true, &refused);
    if (!q || !q->cluster) {
        stp_cq_settle(w, m, STP_CQ_NAK);
        stp_msg_unref(&m);
        return;
    }
    uint64_t now = uv_now(&w->loop);
    if (q->js_requested)
        q->js_requested--;
    q->js_pull_ms = now;
    m->cluster_lease_ms = now;
    if (q->ngroups && !stp_qsel_wanted(q, m)) {
        /* No consumer here matches it: back, for another node's, a little
         * later (not straight back to this node's next pull). */
        stp_cq_settle(w, m, STP_CQ_NAK_LATER);
        stp_msg_unref(&m);
        stp_cq_want(w, q);
        return;
    }
    if (q->nconsumers == 0 ||
        ready_push_back(q, (struct qentry){.msg = m, .redelivered = redelivered}) < 0) {
        stp_cq_settle(w, m, STP_CQ_NAK);
        stp_msg_unref(&m);
        forget_if_idle(w, q);
        return;
    }
    dispatch(w, q);
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
        settle_front(w, c, count_upto(c, cmd->u.consumer_del.written_upto));
    for (size_t i = 0; i < q->nconsumers; i++) {
        if (q->consumers[i] == c) {
            q->consumers[i] = q->consumers[--q->nconsumers];
            break;
        }
    }
    /* Its group first (gone with its last member), so what comes back is
     * noted only for the consumers that remain. */
    if (c->group)
        stp_qsel_leave(q, c->group);
    requeue_front(w, q, c, c->inflight.count);
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
        settle_front(w, c, count_upto(c, c->written));
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
        if (cmd->u.qack.reject)
            take_front(w, c, n, true);
        else if (nack)
            requeue_front(w, c->q, c, n);
        else
            settle_front(w, c, n);
    } else {
        ssize_t idx = inflight_find(c, tag);
        if (idx < 0)
            return;
        struct qentry e = *qdeque_at(&c->inflight, (size_t)idx);
        qdeque_at(&c->inflight, (size_t)idx)->msg = NULL; /* a tombstone */
        c->live--;
        inflight_trim(c);
        if (cmd->u.qack.reject) {
            dead_letter(w, c->q, e.msg, DEATH_REJECTED);
        } else if (nack) {
            e.redelivered = true;
            put_back(w, c->q, e);
        } else {
            settle(w, &e.msg);
        }
    }
    if (nack)
        STP_STAT_ADD(w->stats.msgs_nacked, before - c->live);
    else
        STP_STAT_ADD(w->stats.msgs_acked, before - c->live);
    dispatch(w, c->q);
}

/* Entries a second's expiry sweep looks at (queues with selectors) on one
 * worker, and at most per queue: a deep queue is swept in several seconds,
 * and no single callback runs long. */
#define SWEEP_BUDGET 65536
#define SWEEP_QUEUE_MAX 16384

void stp_queue_expire(struct stp_worker *w)
{
    /* Collected first: a dead letter may make a DLQ on this worker, and
     * the map must not grow while it is walked. */
    uint64_t now = 0;
    struct stp_queue **due = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < w->queues.cap; i++) {
        struct stp_queue *q = w->queues.slots[i].hash ? w->queues.slots[i].value : NULL;
        if (!q || q->count == 0 ||
            (!q->ngroups && !stp_q_expired(qdeque_at(&q->ready, 0)->msg, &now)))
            continue;
        if (STP_ARRAY_RESERVE(due, cap, n + 1) < 0)
            break;
        due[n++] = q;
    }
    size_t budget = SWEEP_BUDGET;
    for (size_t i = 0; i < n; i++) {
        struct stp_queue *q = due[i];
        drop_expired_head(w, q, &now);
        if (q->ngroups && budget > 0) {
            budget -=
                stp_qsel_sweep(w, q, &now, budget < SWEEP_QUEUE_MAX ? budget : SWEEP_QUEUE_MAX);
            stp_q_unthrottle_if_drained(w, q);
        }
    }
    free(due);
}

void stp_queue_foreach_msg(struct stp_worker *w, void (*fn)(void *ctx, struct stp_msg *m),
                           void *ctx)
{
    for (size_t i = 0; i < w->queues.cap; i++) {
        struct stp_queue *q = w->queues.slots[i].hash ? w->queues.slots[i].value : NULL;
        if (q && q->binding)
            fn(ctx, q->binding);
        for (size_t k = 0; q && k < q->ready.count; k++)
            if (qdeque_at(&q->ready, k)->msg)
                fn(ctx, qdeque_at(&q->ready, k)->msg);
    }
    for (size_t i = 0; i < w->consumers.cap; i++) {
        struct stp_consumer *c = w->consumers.slots[i].hash ? w->consumers.slots[i].value : NULL;
        for (size_t k = 0; c && k < c->inflight.count; k++) {
            struct stp_msg *m = qdeque_at(&c->inflight, k)->msg;
            if (m)
                fn(ctx, m);
        }
    }
}

int stp_queue_restore(struct stp_worker *w, struct stp_msg *m)
{
    bool refused;
    struct stp_queue *q = queue_get(w, m->dest, m->dest_len, true, &refused);
    if (!q)
        return refused ? STP_EFULL : STP_ENOMEM;
    if (m->binding) {
        const char *topic;
        size_t len;
        if (q->binding || !dsub_topic(q, &topic, &len)) {
            settle(w, &m); /* a second record of the same subscription */
            return 0;
        }
        if (bind_selector(q, m) < 0)
            stp_warn("%s: the durable subscription's selector does not compile; it takes "
                     "every message",
                     q->name);
        int rc = stp_topic_bind(w, topic, len, q);
        if (rc < 0) {
            stp_selector_free(q->bind_sel);
            q->bind_sel = NULL;
            return rc;
        }
        q->binding = m;
        return 0;
    }
    struct qentry e = {.msg = m, .redelivered = m->deliveries > 0};
    return ready_push_back(q, e);
}

void stp_queues_free(struct stp_worker *w)
{
    free(w->qwork);
    w->qwork = NULL;
    w->nqwork = w->cap_qwork = 0;
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
        size_t depth = q->count;
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

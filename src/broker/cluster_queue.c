/*
 * cluster_queue.c - a cluster queue at its owner worker: publishes waiting
 * for JetStream, receipts held behind them, leases asked for and renewed
 * (see cluster_queue.h). Owner worker's thread only.
 */
#include "broker/cluster_queue.h"

#include "broker/broker.h"
#include "broker/cluster_int.h"
#include "broker/dest.h"
#include "broker/queue_int.h"
#include "broker/worker.h"
#include "stampede/error.h"
#include "stampede/log.h"
#include "stampede/msg.h"
#include "stampede/search.h"

#include <stdlib.h>
#include <string.h>

/* A publish JetStream has not answered in this long failed (its publisher
 * gets ERROR; if it was stored after all, a resend is a duplicate, which a
 * dedup-id avoids). */
#define PUBACK_TIMEOUT_MS 10000
/* A pull is forgotten when nothing came for it this long (its answer was
 * lost with the connection); the cluster thread's pulls expire after
 * STP_CQ_PULL_EXPIRES_MS. */
#define PULL_STALE_MS (STP_CQ_PULL_EXPIRES_MS + 3000)
#define OPEN_RETRY_MS 1000
/* Most messages one consumer's room asks for (auto-ack consumers have the
 * whole output window): a node does not lease far more than it delivers
 * soon, so other nodes' consumers get their share. */
#define ROOM_PER_CONSUMER 256
#define PULL_MAX 4096
#define UNMATCHED_MS 1000
#define RETURN_SCAN_MAX 65536

static struct stp_cluster *cluster(const struct stp_worker *w)
{
    return w->broker->cluster;
}

bool stp_cq_is_cluster(const struct stp_worker *w, const char *name, size_t len)
{
    return cluster(w) && stp_dest_kind(name, len) == STP_DEST_QUEUE;
}

static void to_cluster(struct stp_worker *w, struct stp_post *cmd)
{
    cmd->worker = STP_NO_CONN;
    stp_worker_post(w, cluster(w)->self, cmd);
}

/* ---- storing ---- */

static void tell_not_stored(struct stp_worker *w, const struct stp_cq_pub *p, int err)
{
    if (p->worker == STP_NO_CONN) {
        static _Thread_local uint64_t last_log_ms;
        uint64_t now = uv_now(&w->loop);
        if (last_log_ms == 0 || now - last_log_ms >= 1000) {
            last_log_ms = now;
            stp_warn("cluster: a dead letter was not stored in JetStream (%s): dropped",
                     stp_strerror(err));
        }
        return;
    }
    struct stp_post no = stp_post_not_stored(err, p->fence);
    stp_post_to_conn(&no, p->worker, p->slot, p->gen);
    stp_worker_post(w, p->worker, &no);
}

void stp_cq_send(struct stp_worker *w, struct stp_queue *q, struct stp_post *cmd)
{
    struct stp_msg *m = cmd->u.route.msg;
    cmd->u.route.msg = NULL;
    struct stp_cq_pub p = {.id = ++w->cq.next_id,
                           .q = q,
                           .fence = m->pub_fence,
                           .sent_ms = uv_now(&w->loop),
                           .slot = cmd->slot,
                           .gen = cmd->gen,
                           .worker = cmd->worker};
    if (stp_cq_pubs_push_back(&w->cq.pubs, p) < 0) {
        tell_not_stored(w, &p, STP_ENOMEM);
        stp_msg_unref(&m);
        return;
    }
    q->js_pending++;
    struct stp_post pub = {.type = STP_WCMD_CQ_PUBLISH, .u.cq_msg = {m, p.id, false}};
    to_cluster(w, &pub);
    if (cmd->worker != STP_NO_CONN && q->js_pending > STP_CQ_PUB_WINDOW)
        stp_q_throttle(w, q, cmd);
}

/* Fences whose publishes are all answered go on (to the interest hold of
 * cluster.c, then out), in order. */
static void release_fences(struct stp_worker *w)
{
    uint64_t lowest = w->cq.pubs.count ? stp_cq_pubs_at(&w->cq.pubs, 0)->id : UINT64_MAX;
    while (w->cq.fences.count && stp_cq_fences_at(&w->cq.fences, 0)->upto < lowest) {
        struct stp_cq_fence f = stp_cq_fences_pop_front(&w->cq.fences);
        if (!stp_cluster_hold_fence(w, &f.fence))
            stp_worker_answer_fence(w, &f.fence);
    }
}

bool stp_cq_hold_fence(struct stp_worker *w, const struct stp_post *fence)
{
    if (w->cq.pubs.count == 0 && w->cq.fences.count == 0)
        return false;
    struct stp_cq_fence f = {.upto = w->cq.next_id, .fence = *fence};
    return stp_cq_fences_push_back(&w->cq.fences, f) == 0; /* ENOMEM: answered now */
}

static void finish(struct stp_worker *w, struct stp_cq_pub *p, int err)
{
    struct stp_cluster *c = cluster(w);
    p->done = true;
    if (err) {
        atomic_fetch_add_explicit(&c->cq_refused, 1, memory_order_relaxed);
        tell_not_stored(w, p, err);
    } else {
        atomic_fetch_add_explicit(&c->cq_stored, 1, memory_order_relaxed);
    }
    struct stp_queue *q = p->q;
    p->q = NULL;
    if (!q)
        return;
    q->js_pending--;
    stp_q_unthrottle_if_drained(w, q);
    if (q->js_pending == 0)
        stp_q_forget_if_idle(w, q); /* no other publish points to it */
}

static uint64_t pub_id_at(const void *d, size_t i)
{
    return stp_cq_pubs_at(d, i)->id;
}

static void pop_done(struct stp_worker *w)
{
    while (w->cq.pubs.count && stp_cq_pubs_at(&w->cq.pubs, 0)->done)
        stp_cq_pubs_pop_front(&w->cq.pubs);
    release_fences(w);
}

static void on_puback(struct stp_worker *w, const struct stp_post *cmd)
{
    struct stp_cq_pubs *pubs = &w->cq.pubs;
    uint64_t id = cmd->u.cq_puback.id;
    size_t i = stp_lower_bound(pubs->count, id, pub_id_at, pubs);
    if (i == pubs->count || stp_cq_pubs_at(pubs, i)->id != id || stp_cq_pubs_at(pubs, i)->done)
        return; /* answered after it timed out */
    finish(w, stp_cq_pubs_at(pubs, i), cmd->u.cq_puback.err);
    pop_done(w);
}

/* ---- leasing ---- */

void stp_cq_settle(struct stp_worker *w, struct stp_msg *m, enum stp_cq_settle kind)
{
    if (!m->cluster_ack)
        return;
    /* A reference, not a copy of the subject: no allocation per ack. */
    struct stp_post cmd = {.type = STP_WCMD_CQ_SETTLE,
                           .u.cq_settle = {stp_msg_ref(m), NULL, (int)kind}};
    to_cluster(w, &cmd);
}

/* Messages consumer c can take soon: its room in the output window and,
 * with client acks and a prefetch-count, in its prefetch; capped. */
static size_t room_of(const struct stp_consumer *c)
{
    uint64_t out = c->next_tag - c->written;
    size_t room = out >= STP_QUEUE_OUT_WINDOW ? 0 : (size_t)(STP_QUEUE_OUT_WINDOW - out);
    if (c->client_ack && c->prefetch) {
        size_t left = c->live >= c->prefetch ? 0 : c->prefetch - c->live;
        if (left < room)
            room = left;
    }
    return room < ROOM_PER_CONSUMER ? room : ROOM_PER_CONSUMER;
}

static void post_named(struct stp_worker *w, struct stp_queue *q, uint8_t type, int64_t n)
{
    char *name = strdup(q->name);
    if (!name) {
        stp_error("cluster: out of memory: %s asks JetStream later", q->name);
        return;
    }
    struct stp_post cmd = {.type = type, .u.cq = {name, n}};
    to_cluster(w, &cmd);
}

static void open_queue(struct stp_worker *w, struct stp_queue *q)
{
    uint64_t now = uv_now(&w->loop);
    if (q->js_open_ms && now - q->js_open_ms < OPEN_RETRY_MS)
        return; /* the tick retries */
    q->js_state = STP_CQ_OPENING;
    q->js_open_ms = now;
    post_named(w, q, STP_WCMD_CQ_OPEN, 0);
}

void stp_cq_want(struct stp_worker *w, struct stp_queue *q)
{
    if (!q->cluster || q->nconsumers == 0)
        return;
    if (q->js_state == STP_CQ_CLOSED) {
        open_queue(w, q);
        return;
    }
    if (q->js_state != STP_CQ_OPEN)
        return;
    size_t room = 0;
    for (size_t i = 0; i < q->nconsumers; i++)
        room += room_of(q->consumers[i]);
    uint64_t have = q->count + q->js_requested;
    if (room <= have)
        return;
    uint64_t batch = room - have;
    /* With a pull out already, ask again only for a good part of the room:
     * not a trickle of one-message pulls. */
    if (q->js_requested && batch * 2 < room)
        return;
    if (batch > PULL_MAX)
        batch = PULL_MAX;
    q->js_requested += batch;
    q->js_pull_ms = uv_now(&w->loop);
    post_named(w, q, STP_WCMD_CQ_PULL, (int64_t)batch);
}

static void on_ready(struct stp_worker *w, const struct stp_post *cmd)
{
    const char *name = cmd->u.cq.queue;
    struct stp_queue *q = stp_q_find_queue(w, name, strlen(name));
    if (!q || !q->cluster || q->js_state != STP_CQ_OPENING)
        return;
    q->js_state = cmd->u.cq.n ? STP_CQ_OPEN : STP_CQ_CLOSED;
    stp_cq_want(w, q);
}

static void on_pulled(struct stp_worker *w, const struct stp_post *cmd)
{
    const char *name = cmd->u.cq.queue;
    struct stp_queue *q = stp_q_find_queue(w, name, strlen(name));
    if (!q || !q->cluster)
        return;
    int64_t n = cmd->u.cq.n;
    if (n >= 0 && (uint64_t)n < q->js_requested)
        q->js_requested -= (uint64_t)n;
    else
        q->js_requested = 0;
    q->js_pull_ms = uv_now(&w->loop);
    if (n == STP_CQ_PULL_NO_CONSUMER) {
        q->js_state = STP_CQ_CLOSED; /* made again by the next want */
        q->js_open_ms = uv_now(&w->loop);
        return;
    }
    /* A pull that failed (NATS away) is asked again by the tick, not at
     * once: no spin between this worker and the cluster thread. */
    if (n >= 0)
        stp_cq_want(w, q);
}

void stp_cq_handle(struct stp_worker *w, struct stp_post *cmd)
{
    switch (cmd->type) {
    case STP_WCMD_CQ_PUBACK:
        on_puback(w, cmd);
        break;
    case STP_WCMD_CQ_ARRIVE: {
        struct stp_msg *m = cmd->u.cq_msg.msg;
        cmd->u.cq_msg.msg = NULL;
        atomic_fetch_add_explicit(&cluster(w)->cq_leased, 1, memory_order_relaxed);
        stp_q_cluster_arrive(w, m, cmd->u.cq_msg.redelivered);
        break;
    }
    case STP_WCMD_CQ_READY:
        on_ready(w, cmd);
        break;
    case STP_WCMD_CQ_PULLED:
        on_pulled(w, cmd);
        break;
    default:
        break;
    }
    stp_post_release(cmd);
}

/* ---- the timer (a quarter of the ack wait) ---- */

static void renew(struct stp_worker *w, struct stp_msg *m, uint64_t now, uint64_t every)
{
    if (m && m->cluster_ack && now - m->cluster_lease_ms >= every) {
        m->cluster_lease_ms = now;
        stp_cq_settle(w, m, STP_CQ_WPI);
    }
}

/* Leases this node still holds (waiting here, or delivered and not acked)
 * are renewed at half the ack wait, so JetStream gives a message to
 * another node only when this one stopped answering. */
static void renew_leases(struct stp_worker *w, struct stp_queue *q, uint64_t now)
{
    uint64_t every = w->cfg->cluster_ack_wait_ms / 2;
    for (size_t i = 0; i < q->ready.count && !q->ngroups; i++)
        renew(w, qdeque_at(&q->ready, i)->msg, now, every);
    for (size_t k = 0; k < q->nconsumers; k++) {
        struct stp_consumer *c = q->consumers[k];
        for (size_t i = 0; i < c->inflight.count; i++)
            renew(w, qdeque_at(&c->inflight, i)->msg, now, every);
    }
}

/* With selectors, a leased message none of this node's consumers matches
 * would wait here while a consumer on another node could take it: after
 * UNMATCHED_MS it goes back (NAK) for any node to lease. (A message nobody
 * matches anywhere keeps going round, once a second, like this.) */
static void return_unmatched(struct stp_worker *w, struct stp_queue *q, uint64_t now)
{
    uint64_t wait = w->cfg->cluster_ack_wait_ms / 2 < UNMATCHED_MS ? w->cfg->cluster_ack_wait_ms / 2
                                                                   : UNMATCHED_MS;
    for (size_t scanned = 0; scanned < RETURN_SCAN_MAX;) {
        size_t i = 0;
        while (i < q->ready.count && scanned < RETURN_SCAN_MAX) {
            struct stp_msg *m = qdeque_at(&q->ready, i)->msg;
            scanned++;
            if (m && m->cluster_ack && now - m->cluster_lease_ms >= wait)
                break;
            i++;
        }
        if (i >= q->ready.count || scanned >= RETURN_SCAN_MAX)
            return;
        /* Removing may compact ready: the scan starts again at the front,
         * bounded by RETURN_SCAN_MAX in all. */
        struct qentry e = stp_q_remove_at(q, i);
        stp_cq_settle(w, e.msg, STP_CQ_NAK_LATER);
        stp_msg_unref(&e.msg);
    }
}

void stp_cq_tick(struct stp_worker *w)
{
    if (!cluster(w))
        return;
    uint64_t now = uv_now(&w->loop);
    for (size_t i = 0; i < w->cq.pubs.count; i++) {
        struct stp_cq_pub *p = stp_cq_pubs_at(&w->cq.pubs, i);
        if (now - p->sent_ms < PUBACK_TIMEOUT_MS)
            break; /* sent in order: the later ones are younger */
        if (!p->done)
            finish(w, p, STP_ESTORE_AWAY);
    }
    pop_done(w);
    for (size_t i = 0; i < w->queues.cap; i++) {
        struct stp_queue *q = w->queues.slots[i].hash ? w->queues.slots[i].value : NULL;
        if (!q || !q->cluster)
            continue;
        if (q->js_requested && now - q->js_pull_ms >= PULL_STALE_MS)
            q->js_requested = 0;
        if (q->ngroups)
            return_unmatched(w, q, now);
        renew_leases(w, q, now);
        stp_cq_want(w, q);
    }
}

void stp_cq_free(struct stp_worker *w)
{
    stp_cq_pubs_free(&w->cq.pubs);
    stp_cq_fences_free(&w->cq.fences);
}

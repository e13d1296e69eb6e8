/*
 * topic.c - topics: the owner's interest table and each worker's local
 * subscribers.
 *
 * Owner side: for each topic, how many workers have local subscribers; a
 * routed message goes to each of those workers once (one reference each),
 * through FIFO rings, so every subscriber sees the owner's order. Local side:
 * a worker walks its own subscribers of the topic and queues each a small
 * header block plus the shared tail. A message for a topic nobody subscribes
 * to is dropped.
 *
 * Pattern subscriptions (topic_pattern.c) add to both sides: the owner also
 * marks the workers of every matching pattern (still one TOPIC_DELIVER per
 * worker), and a worker also gives the message to its subscribers of every
 * matching pattern (w->local_patterns, a trie whose terminals are the same
 * struct stp_ltopic lists). With no pattern in the broker each side costs
 * one more branch than without the feature.
 */
#include "broker/broker.h"
#include "broker/cluster.h"
#include "broker/dest.h"
#include "broker/msgsel.h"
#include "broker/pattern.h"
#include "broker/session.h"
#include "broker/worker.h"
#include "stampede/array.h"
#include "stampede/error.h"
#include "stampede/log.h"
#include "stampede/msg.h"

#include <stdlib.h>
#include <string.h>

struct stp_topic {
    char *name;
    size_t name_len;
    /* Durable subscriptions' queues bound to this topic (on this worker:
     * stp_owner_of puts them here); each gets its own copy of a message. */
    struct stp_queue **binds;
    size_t nbinds, cap_binds;
    unsigned nworkers; /* workers with a non-zero count */
    bool in_cluster;   /* --cluster: the cluster thread was told of this interest */
    uint32_t counts[]; /* per worker: 1 while it has local subscribers */
};

/* --cluster: tell the cluster thread when this node starts or stops
 * wanting t's messages from other nodes (local subscribers or durable
 * subscriptions). Called after every change, before t may be forgotten. */
static void cluster_track(struct stp_worker *w, struct stp_topic *t)
{
    bool want = t->nworkers || t->nbinds;
    if (!w->broker->cluster || want == t->in_cluster)
        return;
    t->in_cluster = want;
    stp_cluster_interest(w, t->name, t->name_len, want ? 1 : -1);
}

/* With patterns: the workers with exact interest or a matching pattern,
 * each once (w->route_want is all zero between calls). bound: durable
 * subscriptions take it too (not dropped). */
static void route_with_patterns(struct stp_worker *w, struct stp_topic *t, struct stp_msg *m,
                                bool bound)
{
    uint8_t *want = w->route_want;
    unsigned n = 0;
    for (unsigned i = 0; t && i < w->broker_workers; i++)
        n += want[i] = t->counts[i] != 0;
    if (stp_topic_pattern_mark(w, m, n) == 0 && !bound)
        STP_STAT_INC(w->stats.msgs_dropped);
    for (unsigned i = 0; i < w->broker_workers; i++) {
        if (!want[i])
            continue;
        want[i] = 0;
        struct stp_post cmd = stp_post_topic_deliver(stp_msg_ref(m));
        stp_worker_post(w, i, &cmd);
    }
}

/* Each durable subscription bound to t gets its own copy of m (its own
 * queue name, journal key and delivery count). */
static void route_bound(struct stp_worker *w, struct stp_topic *t, const struct stp_msg *m,
                        const struct stp_post *cmd)
{
    for (size_t i = 0; i < t->nbinds; i++) {
        const struct stp_selector *sel = stp_queue_binding_selector(t->binds[i]);
        if (sel && !stp_msg_selected(sel, m))
            continue;
        const char *qname = stp_queue_name(t->binds[i]);
        struct stp_msg *c = stp_msg_copy(m, qname, strlen(qname));
        if (!c) {
            stp_error("topic %s: out of memory, a durable subscription missed a message", t->name);
            continue;
        }
        stp_msg_set_id(c, stp_msg_next_id(w->id));
        stp_queue_route_bound(w, t->binds[i], c, cmd);
    }
}

void stp_topic_route(struct stp_worker *w, struct stp_post *cmd)
{
    struct stp_msg *m = cmd->u.route.msg;
    cmd->u.route.msg = NULL;
    struct stp_topic *t = stp_map_get(&w->topics, m->dest, m->dest_len);
    bool bound = t && t->nbinds;
    if (w->patterns.count) {
        route_with_patterns(w, t, m, bound);
    } else if (!t || t->nworkers == 0) {
        if (!bound)
            STP_STAT_INC(w->stats.msgs_dropped);
    } else {
        for (unsigned i = 0; i < w->broker_workers && t->nworkers; i++) {
            if (!t->counts[i])
                continue;
            struct stp_post d = stp_post_topic_deliver(stp_msg_ref(m));
            stp_worker_post(w, i, &d);
        }
    }
    if (bound)
        route_bound(w, t, m, cmd);
    stp_msg_unref(&m);
}

/* The topic named so, made when missing. NULL when out of memory, or with
 * *refused set when --max-destinations is reached. */
static struct stp_topic *topic_get(struct stp_worker *w, const char *name, size_t len,
                                   bool *refused)
{
    struct stp_topic *t = stp_map_get(&w->topics, name, len);
    *refused = false;
    if (t)
        return t;
    if (!stp_dest_count_take(w)) {
        *refused = true;
        return NULL;
    }
    t = calloc(1, sizeof(*t) + w->broker_workers * sizeof(uint32_t));
    if (t && (t->name = malloc(len + 1))) {
        memcpy(t->name, name, len);
        t->name[len] = '\0';
        t->name_len = len;
        if (stp_map_put(&w->topics, t->name, len, t) == 0)
            return t;
        free(t->name);
    }
    free(t);
    stp_dest_count_give(w);
    return NULL;
}

static void topic_free(struct stp_topic *t)
{
    free(t->binds);
    free(t->name);
    free(t);
}

/* Forget t when nothing needs it: no worker's subscribers, no durable
 * subscription. */
static void forget_if_unused(struct stp_worker *w, struct stp_topic *t)
{
    cluster_track(w, t);
    if (t->nworkers || t->nbinds)
        return;
    stp_map_del(&w->topics, t->name, t->name_len);
    topic_free(t);
    stp_dest_count_give(w);
}

int stp_topic_bind(struct stp_worker *w, const char *name, size_t len, struct stp_queue *q)
{
    bool refused;
    struct stp_topic *t = topic_get(w, name, len, &refused);
    if (!t)
        return refused ? STP_EFULL : STP_ENOMEM;
    for (size_t i = 0; i < t->nbinds; i++)
        if (t->binds[i] == q)
            return 0;
    if (STP_ARRAY_RESERVE(t->binds, t->cap_binds, t->nbinds + 1) < 0) {
        forget_if_unused(w, t);
        return STP_ENOMEM;
    }
    t->binds[t->nbinds++] = q;
    cluster_track(w, t);
    return 0;
}

void stp_topic_unbind(struct stp_worker *w, const char *name, size_t len, struct stp_queue *q)
{
    struct stp_topic *t = stp_map_get(&w->topics, name, len);
    if (!t)
        return;
    for (size_t i = 0; i < t->nbinds; i++) {
        if (t->binds[i] == q) {
            /* Keep the order: copies go out in binding order. */
            memmove(&t->binds[i], &t->binds[i + 1], (t->nbinds - i - 1) * sizeof(*t->binds));
            t->nbinds--;
            break;
        }
    }
    forget_if_unused(w, t);
}

void stp_topic_interest(struct stp_worker *w, unsigned from, struct stp_post *cmd)
{
    char *name = cmd->u.interest.topic;
    size_t len = strlen(name);
    struct stp_topic *t = stp_map_get(&w->topics, name, len);
    int delta = cmd->u.interest.delta > 0 ? 1 : -1;
    if (!t && delta > 0) {
        bool refused;
        t = topic_get(w, name, len, &refused);
        if (refused)
            stp_dest_refuse(w, cmd, name);
    }
    stp_post_release(cmd);
    if (!t)
        return;
    if (delta > 0 && t->counts[from]++ == 0)
        t->nworkers++;
    else if (delta < 0 && t->counts[from] > 0 && --t->counts[from] == 0)
        t->nworkers--;
    forget_if_unused(w, t);
}

void stp_topics_free(struct stp_worker *w)
{
    for (size_t i = 0; i < w->topics.cap; i++) {
        struct stp_topic *t = w->topics.slots[i].hash ? w->topics.slots[i].value : NULL;
        if (t)
            topic_free(t);
    }
    stp_map_free(&w->topics);
}

/* --- local side --- */

/* The worker's record of sub's topic or pattern, made when missing (*first). */
static struct stp_ltopic *ltopic_get(struct stp_worker *w, struct stp_sub *sub, bool *first)
{
    void **slot = NULL;
    struct stp_ltopic *lt;
    if (sub->is_pattern) {
        slot = stp_ptrie_add(&w->local_patterns, sub->dest + 7, sub->dest_len - 7);
        if (!slot)
            return NULL;
        lt = *slot;
    } else {
        lt = stp_map_get(&w->local_topics, sub->dest, sub->dest_len);
    }
    if (lt)
        return lt;
    lt = calloc(1, sizeof(*lt));
    if (lt && (lt->name = strdup(sub->dest))) {
        lt->name_len = sub->dest_len;
        if (slot) {
            *slot = lt;
            *first = true;
            return lt;
        }
        if (stp_map_put(&w->local_topics, lt->name, lt->name_len, lt) == 0) {
            *first = true;
            return lt;
        }
        free(lt->name);
    }
    free(lt);
    if (slot)
        stp_ptrie_del(&w->local_patterns, sub->dest + 7, sub->dest_len - 7);
    return NULL;
}

int stp_ltopic_add(struct stp_worker *w, struct stp_sub *sub, bool *first)
{
    *first = false;
    struct stp_ltopic *lt = ltopic_get(w, sub, first);
    if (!lt)
        return STP_ENOMEM;
    /* Append at the tail so deliveries keep subscription order. */
    sub->lt = lt;
    sub->tnext = NULL;
    sub->tprev = NULL;
    if (!lt->head) {
        lt->head = sub;
        sub->tprev = sub; /* head->tprev points at the tail */
    } else {
        struct stp_sub *tail = lt->head->tprev;
        tail->tnext = sub;
        sub->tprev = tail;
        lt->head->tprev = sub;
    }
    lt->count++;
    return 0;
}

bool stp_ltopic_remove(struct stp_worker *w, struct stp_sub *sub)
{
    struct stp_ltopic *lt = sub->lt;
    if (!lt)
        return false;
    if (sub == lt->head) {
        lt->head = sub->tnext;
        if (lt->head)
            lt->head->tprev = sub->tprev;
    } else {
        sub->tprev->tnext = sub->tnext;
        if (sub->tnext)
            sub->tnext->tprev = sub->tprev;
        else
            lt->head->tprev = sub->tprev;
    }
    sub->lt = NULL;
    if (--lt->count > 0)
        return false;
    if (sub->is_pattern)
        stp_ptrie_del(&w->local_patterns, lt->name + 7, lt->name_len - 7);
    else
        stp_map_del(&w->local_topics, lt->name, lt->name_len);
    free(lt->name);
    free(lt);
    return true;
}

static bool deliver_lt(void *ctx, void *payload)
{
    const struct stp_ltopic *lt = payload;
    for (struct stp_sub *s = lt->head; s; s = s->tnext)
        stp_session_deliver_topic(s, ctx);
    return false;
}

void stp_ltopic_deliver(struct stp_worker *w, struct stp_msg *m)
{
    struct stp_ltopic *lt = stp_map_get(&w->local_topics, m->dest, m->dest_len);
    for (struct stp_sub *s = lt ? lt->head : NULL; s; s = s->tnext)
        stp_session_deliver_topic(s, m);
    /* Each local pattern that matches is reported once: a subscription gets
     * a message once, whichever of its words matched how. */
    if (w->local_patterns.count &&
        stp_ptrie_match(&w->local_patterns, m->dest + 7, m->dest_len - 7, deliver_lt, m) < 0)
        stp_error("topic %s: out of memory matching local patterns", m->dest);
    stp_msg_unref(&m);
}

struct stp_ltopic *stp_ltopic_find(struct stp_worker *w, const char *dest, size_t len)
{
    if (stp_topic_is_pattern(dest, len, NULL)) {
        void **slot = stp_ptrie_find(&w->local_patterns, dest + 7, len - 7);
        return slot ? *slot : NULL;
    }
    return stp_map_get(&w->local_topics, dest, len);
}

static void free_lpattern(void *ctx, void *payload)
{
    struct stp_ltopic *lt = payload;
    (void)ctx;
    free(lt->name);
    free(lt);
}

void stp_ltopics_free(struct stp_worker *w)
{
    stp_map_free(&w->local_topics);
    stp_ptrie_free(&w->local_patterns, free_lpattern, NULL);
}

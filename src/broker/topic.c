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
 */
#include "broker/dest.h"
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
    uint32_t counts[]; /* per worker: 1 while it has local subscribers */
};

#define HAS_PREFIX(name, len, lit)                                                                 \
    ((len) > sizeof(lit) - 1 && memcmp((name), (lit), sizeof(lit) - 1) == 0)

enum stp_dest_kind stp_dest_kind(const char *name, size_t len)
{
    if (HAS_PREFIX(name, len, "/topic/"))
        return STP_DEST_TOPIC;
    if (HAS_PREFIX(name, len, "/queue/"))
        return STP_DEST_QUEUE;
    if (HAS_PREFIX(name, len, "/temp-queue/"))
        return STP_DEST_TEMP;
    if (HAS_PREFIX(name, len, "/reply-queue/"))
        return STP_DEST_REPLY;
    return STP_DEST_BAD;
}

bool stp_dest_is_queue(const char *name, size_t len)
{
    enum stp_dest_kind k = stp_dest_kind(name, len);
    return k == STP_DEST_QUEUE || k == STP_DEST_REPLY || HAS_PREFIX(name, len, STP_DSUB_PREFIX);
}

/* Each durable subscription bound to t gets its own copy of m (its own
 * queue name, journal key and delivery count). */
static void route_bound(struct stp_worker *w, struct stp_topic *t, const struct stp_msg *m,
                        const struct stp_post *cmd)
{
    for (size_t i = 0; i < t->nbinds; i++) {
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
    if (!t || (t->nworkers == 0 && t->nbinds == 0))
        STP_STAT_INC(w->stats.msgs_dropped);
    if (t) {
        for (unsigned i = 0; i < w->broker_workers && t->nworkers; i++) {
            if (!t->counts[i])
                continue;
            struct stp_post d = stp_post_topic_deliver(stp_msg_ref(m));
            stp_worker_post(w, i, &d);
        }
        if (t->nbinds)
            route_bound(w, t, m, cmd);
    }
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

int stp_ltopic_add(struct stp_worker *w, struct stp_sub *sub, bool *first)
{
    struct stp_ltopic *lt = stp_map_get(&w->local_topics, sub->dest, sub->dest_len);
    *first = false;
    if (!lt) {
        lt = calloc(1, sizeof(*lt));
        if (!lt || !(lt->name = strdup(sub->dest))) {
            free(lt);
            return STP_ENOMEM;
        }
        lt->name_len = sub->dest_len;
        if (stp_map_put(&w->local_topics, lt->name, lt->name_len, lt) < 0) {
            free(lt->name);
            free(lt);
            return STP_ENOMEM;
        }
        *first = true;
    }
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
    stp_map_del(&w->local_topics, lt->name, lt->name_len);
    free(lt->name);
    free(lt);
    return true;
}

void stp_ltopic_deliver(struct stp_worker *w, struct stp_msg *m)
{
    struct stp_ltopic *lt = stp_map_get(&w->local_topics, m->dest, m->dest_len);
    for (struct stp_sub *s = lt ? lt->head : NULL; s; s = s->tnext)
        stp_session_deliver_topic(s, m);
    stp_msg_unref(&m);
}

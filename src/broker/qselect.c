/*
 * qselect.c - queue dispatch when some consumers have a selector (issue 13),
 * on the queue's owner worker.
 *
 * A message no consumer's selector matches waits for one that does, without
 * holding up the messages behind it; each consumer gets the messages it
 * matches in queue order. Consumers with the same selector text form a
 * group (compiled once here, at the owner); the group keeps the positions of
 * the waiting messages its selector matches, ascending (queue_int.h). So:
 *
 *  - a message entering the queue is matched once against each group (at
 *    the back; one put back at the head goes to the front of the lists of
 *    the groups that match it, before everything they hold);
 *  - a selector consumer with credit takes the first live position of its
 *    group's list: messages it does not match are never looked at again,
 *    whatever their number, and a consumer whose credit comes back costs
 *    nothing more than that;
 *  - a consumer without a selector takes the queue's front, as in queue.c;
 *  - a message nobody matches simply stays in the queue (and counts toward
 *    its bounds), where expiry sweeps find it.
 *
 * A position in a list may be stale (the message went to another group's
 * consumer, expired, was dead-lettered): it is skipped when met, and a list
 * whose length passes twice the queue's depth is compacted (amortized O(1)
 * per message). A new group (a selector text the queue has not seen while
 * holding messages) looks at the waiting messages lazily, as its consumers
 * ask, at most PASS_BUDGET messages per dispatch pass; a pass that runs out
 * of budget puts the queue on the worker's list and an idle handle resumes
 * it on the next loop turn, so a million waiting messages never stall the
 * worker in one callback.
 *
 * Costs: per message entering, one match per group; per delivery, O(1)
 * amortized plus a position lookup (O(1) unless tombstones were compacted
 * before it, then a binary search); per new group, one match per message
 * waiting, spread over passes.
 */
#include "broker/dest.h"
#include "broker/msgsel.h"
#include "broker/queue_int.h"
#include "broker/worker.h"
#include "select/select.h"
#include "stampede/array.h"
#include "stampede/error.h"
#include "stampede/log.h"

#include <stdlib.h>
#include <string.h>

/* Messages matched (or stale positions skipped) in one dispatch pass. */
#define PASS_BUDGET 1024

/* --- groups --- */

static bool matches(const struct stp_qgroup *g, const struct stp_msg *m)
{
    return stp_msg_selected(g->sel, m);
}

bool stp_qsel_wanted(const struct stp_queue *q, const struct stp_msg *m)
{
    for (size_t i = 0; i < q->nconsumers; i++)
        if (!q->consumers[i]->group)
            return true; /* a consumer without a selector takes anything */
    for (size_t i = 0; i < q->ngroups; i++)
        if (matches(q->groups[i], m))
            return true;
    return false;
}

static void group_free(struct stp_qgroup *g)
{
    posdeque_free(&g->list);
    stp_selector_free(g->sel);
    free(g->text);
    free(g);
}

struct stp_qgroup *stp_qsel_join(struct stp_queue *q, const char *text)
{
    for (size_t i = 0; i < q->ngroups; i++) {
        if (strcmp(q->groups[i]->text, text) == 0) {
            q->groups[i]->members++;
            return q->groups[i];
        }
    }
    if (STP_ARRAY_RESERVE(q->groups, q->cap_groups, q->ngroups + 1) < 0)
        return NULL;
    struct stp_qgroup *g = calloc(1, sizeof(*g));
    if (!g || !(g->text = strdup(text)) ||
        stp_selector_compile(&g->sel, text, strlen(text), NULL, 0) < 0) {
        if (g)
            group_free(g);
        return NULL;
    }
    g->members = 1;
    /* Everything waiting now is at or above the front's position; what is
     * put back at the head later goes below it and is indexed as it comes. */
    g->scanning = q->count > 0;
    g->scan_pos = q->front_pos;
    q->groups[q->ngroups++] = g;
    return g;
}

void stp_qsel_leave(struct stp_queue *q, struct stp_qgroup *g)
{
    if (--g->members > 0)
        return;
    for (size_t i = 0; i < q->ngroups; i++) {
        if (q->groups[i] == g) {
            q->groups[i] = q->groups[--q->ngroups];
            break;
        }
    }
    group_free(g);
}

void stp_qsel_free(struct stp_queue *q)
{
    for (size_t i = 0; i < q->ngroups; i++)
        group_free(q->groups[i]);
    free(q->groups);
    q->groups = NULL;
    q->ngroups = q->cap_groups = 0;
}

/* Keep only the positions still waiting in q: one walk of both, in
 * position order. On ENOMEM the list stays as it is (stale entries are
 * harmless, only longer to skip). */
static void list_compact(struct stp_queue *q, struct stp_qgroup *g)
{
    struct posdeque keep = {0};
    size_t j = 0;
    for (size_t i = 0; i < g->list.count; i++) {
        uint64_t pos = *posdeque_at(&g->list, i);
        while (j < q->ready.count && qdeque_at(&q->ready, j)->tag < pos)
            j++;
        if (j < q->ready.count && qdeque_at(&q->ready, j)->tag == pos &&
            qdeque_at(&q->ready, j)->msg && posdeque_push_back(&keep, pos) < 0) {
            posdeque_free(&keep);
            return;
        }
    }
    posdeque_free(&g->list);
    g->list = keep;
}

void stp_qsel_index(struct stp_queue *q, const struct qentry *e, bool front)
{
    for (size_t i = 0; i < q->ngroups; i++) {
        struct stp_qgroup *g = q->groups[i];
        /* A scanning group reaches a new message at the back by itself; one
         * put back at the head is below where its scan started. */
        if ((!front && g->scanning) || !matches(g, e->msg))
            continue;
        int rc =
            front ? posdeque_push_front(&g->list, e->tag) : posdeque_push_back(&g->list, e->tag);
        if (rc < 0 && !front) {
            /* Out of memory: let a scan find it instead. */
            g->scanning = true;
            g->scan_pos = e->tag;
        } else if (rc < 0) {
            stp_error("queue %s: out of memory; a returned message waits for other consumers",
                      q->name);
        }
        if (g->list.count > 2 * q->count + 64)
            list_compact(q, g);
    }
}

/* --- taking a message --- */

enum take { TAKE_NONE, TAKE_ONE, TAKE_BUDGET };

/* Look further into the waiting messages for g's first match, adding it to
 * g's list. TAKE_ONE: found one; TAKE_NONE: the scan reached the back (the
 * group is up to date); TAKE_BUDGET: the pass's budget ran out. */
static enum take scan(struct stp_queue *q, struct stp_qgroup *g, size_t *budget)
{
    for (size_t i = stp_q_lower_bound(q, g->scan_pos); i < q->ready.count; i++) {
        if (*budget == 0)
            return TAKE_BUDGET;
        (*budget)--;
        const struct qentry *x = qdeque_at(&q->ready, i);
        g->scan_pos = x->tag + 1;
        if (x->msg && matches(g, x->msg)) {
            if (posdeque_push_back(&g->list, x->tag) < 0) {
                g->scan_pos = x->tag; /* looked at again next time */
                return TAKE_NONE;
            }
            return TAKE_ONE;
        }
    }
    g->scanning = false;
    return TAKE_NONE;
}

/* The first waiting message g's selector matches, taken out of the queue
 * into *e. Expired ones met on the way are dead-lettered. */
static enum take take_matching(struct stp_worker *w, struct stp_queue *q, struct stp_qgroup *g,
                               size_t *budget, uint64_t *now, struct qentry *e)
{
    for (;;) {
        while (g->list.count > 0) {
            if (*budget == 0)
                return TAKE_BUDGET;
            ssize_t i = stp_q_find(q, posdeque_pop_front(&g->list));
            if (i < 0) {
                (*budget)--; /* stale */
                continue;
            }
            *e = stp_q_remove_at(q, (size_t)i);
            if (!stp_q_expired(e->msg, now))
                return TAKE_ONE;
            stp_q_expire(w, q, e->msg);
        }
        if (!g->scanning)
            return TAKE_NONE;
        enum take t = scan(q, g, budget);
        if (t != TAKE_ONE)
            return t;
    }
}

/* Any waiting message: the front (a consumer without a selector). */
static enum take take_any(struct stp_worker *w, struct stp_queue *q, uint64_t *now,
                          struct qentry *e)
{
    stp_q_drop_expired_head(w, q, now);
    if (q->count == 0)
        return TAKE_NONE;
    *e = stp_q_remove_at(q, 0);
    return TAKE_ONE;
}

/* --- dispatch --- */

static void schedule(struct stp_worker *w, struct stp_queue *q)
{
    if (q->pending || STP_ARRAY_RESERVE(w->qwork, w->cap_qwork, w->nqwork + 1) < 0)
        return; /* ENOMEM: resumed by the next event on the queue */
    w->qwork[w->nqwork++] = q;
    q->pending = true;
    if (!uv_is_active((uv_handle_t *)&w->qwork_idle))
        uv_idle_start(&w->qwork_idle, stp_qsel_on_idle);
}

void stp_qsel_unschedule(struct stp_worker *w, struct stp_queue *q)
{
    if (!q->pending)
        return;
    for (size_t i = 0; i < w->nqwork; i++) {
        if (w->qwork[i] == q) {
            memmove(&w->qwork[i], &w->qwork[i + 1], (w->nqwork - i - 1) * sizeof(w->qwork[0]));
            w->nqwork--;
            break;
        }
    }
    q->pending = false;
}

void stp_qsel_dispatch(struct stp_worker *w, struct stp_queue *q)
{
    size_t budget = PASS_BUDGET, idle = 0;
    uint64_t now = 0;
    /* Round-robin: each consumer with credit in turn takes what it may;
     * one full turn in which nobody took anything ends the pass. */
    while (q->count > 0 && idle < q->nconsumers) {
        struct stp_consumer *c = q->consumers[q->rr % q->nconsumers];
        q->rr = (q->rr + 1) % q->nconsumers;
        struct qentry e;
        enum take t = !stp_q_has_credit(c) ? TAKE_NONE
                      : c->group           ? take_matching(w, q, c->group, &budget, &now, &e)
                                           : take_any(w, q, &now, &e);
        if (t == TAKE_BUDGET) {
            schedule(w, q);
            break;
        }
        if (t == TAKE_NONE) {
            idle++;
            continue;
        }
        idle = 0;
        stp_q_deliver(w, c, e);
    }
    stp_q_unthrottle_if_drained(w, q);
}

void stp_qsel_on_idle(uv_idle_t *h)
{
    struct stp_worker *w = h->data;
    /* One pass for each queue that was waiting when this turn began; one
     * that runs out of budget again goes to the back, for the next turn.
     * Taken off the list before its pass, so a queue freed meanwhile is
     * never met here. */
    for (size_t n = w->nqwork; n > 0 && w->nqwork > 0; n--) {
        struct stp_queue *q = w->qwork[0];
        stp_qsel_unschedule(w, q);
        if (q->ngroups)
            stp_qsel_dispatch(w, q);
    }
    if (w->nqwork == 0)
        uv_idle_stop(&w->qwork_idle);
}

/* --- expiry --- */

size_t stp_qsel_sweep(struct stp_worker *w, struct stp_queue *q, uint64_t *now, size_t budget)
{
    size_t looked = 0;
    size_t i = stp_q_lower_bound(q, q->sweep_pos);
    while (i < q->ready.count && looked < budget) {
        struct qentry *x = qdeque_at(&q->ready, i);
        looked++;
        q->sweep_pos = x->tag + 1;
        if (!x->msg || !stp_q_expired(x->msg, now)) {
            i++;
            continue;
        }
        struct qentry e = stp_q_remove_at(q, i);
        stp_q_expire(w, q, e.msg);
        /* The deque may have been compacted or its front popped: find the
         * place again by position. */
        i = stp_q_lower_bound(q, q->sweep_pos);
    }
    if (i >= q->ready.count)
        q->sweep_pos = 0; /* the next sweep starts at the front again */
    return looked;
}

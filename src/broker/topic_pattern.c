/*
 * topic_pattern.c - topic pattern subscriptions (`/topic/a.*.c`,
 * `/topic/a.#`), owner side.
 *
 * A pattern can match topics owned by any worker, so a worker's first local
 * subscriber of a pattern posts PATTERN_INTEREST +1 to every worker (and -1
 * with its last). Each worker keeps, as an owner, a trie of the patterns
 * (w->patterns, pattern.h) whose terminals hold per-worker counts, like a
 * topic's. Routing a message for one of its topics, the owner marks the
 * workers with exact interest and those of every matching pattern, and
 * posts one TOPIC_DELIVER to each marked worker: a worker gets a message
 * once, through one ring, so its subscribers see the owner's order.
 *
 * Destination count (--max-destinations): a pattern is counted once, by its
 * home worker (the owner of "/topic/" plus its first word: the same for
 * every spelling of one pattern, "a.#.#" and "a.#"), when that worker makes
 * its record; the other workers keep their copy uncounted. When the count is
 * full the home worker refuses (REFUSED to the subscriber's worker, which
 * ERRORs its subscribers of the pattern); their -1 then clears the copies.
 *
 * Runs on the owning worker only. The local side (each worker's subscribers
 * of a pattern, found through w->local_patterns) is in topic.c.
 */
#include "broker/broker.h"
#include "broker/cluster.h"
#include "broker/dest.h"
#include "broker/pattern.h"
#include "broker/worker.h"
#include "stampede/log.h"
#include "stampede/msg.h"

#include <stdlib.h>
#include <string.h>

#define TOPIC_PREFIX 7 /* strlen("/topic/") */

/* An owner's record of one pattern. */
struct stp_opattern {
    unsigned nworkers; /* workers with a non-zero count */
    bool counted;      /* took the broker's destination count (home worker) */
    uint32_t counts[]; /* per worker: 1 while it has local subscribers */
};

bool stp_topic_is_pattern(const char *dest, size_t len, size_t *words)
{
    if (len <= TOPIC_PREFIX || memcmp(dest, "/topic/", TOPIC_PREFIX) != 0)
        return false;
    return stp_pattern_is(dest + TOPIC_PREFIX, len - TOPIC_PREFIX, words);
}

/* The record of `name`, made (and counted at home) for a +1; NULL when
 * there is none, or none could be made (the subscriber is told when the
 * count was full). */
static struct stp_opattern *record(struct stp_worker *w, struct stp_post *cmd, const char *name,
                                   size_t len)
{
    void **slot = stp_ptrie_find(&w->patterns, name + TOPIC_PREFIX, len - TOPIC_PREFIX);
    if (slot || cmd->u.interest.delta < 0)
        return slot ? *slot : NULL;
    if (!w->route_want && !(w->route_want = calloc(w->broker_workers, 1)))
        return NULL;
    const char *dot = memchr(name + TOPIC_PREFIX, '.', len - TOPIC_PREFIX);
    bool home = stp_owner_of(w, name, dot ? (size_t)(dot - name) : len) == w->id;
    if (home && !stp_dest_count_take(w)) {
        stp_dest_refuse(w, cmd, name);
        return NULL;
    }
    struct stp_opattern *p = calloc(1, sizeof(*p) + w->broker_workers * sizeof(uint32_t));
    slot = p ? stp_ptrie_add(&w->patterns, name + TOPIC_PREFIX, len - TOPIC_PREFIX) : NULL;
    if (!slot) {
        stp_error("pattern %s: out of memory, not registered", name);
        free(p);
        if (home)
            stp_dest_count_give(w);
        return NULL;
    }
    p->counted = home;
    *slot = p;
    return p;
}

void stp_topic_pattern_interest(struct stp_worker *w, unsigned from, struct stp_post *cmd)
{
    const char *name = cmd->u.interest.topic;
    size_t len = strlen(name);
    struct stp_opattern *p = record(w, cmd, name, len);
    if (p && cmd->u.interest.delta > 0 && p->counts[from]++ == 0 && p->nworkers++ == 0 &&
        p->counted && w->broker->cluster)
        stp_cluster_interest(w, name, len, 1); /* the home worker tells the node's interest */
    else if (p && cmd->u.interest.delta < 0 && p->counts[from] > 0 && --p->counts[from] == 0)
        p->nworkers--;
    if (p && p->nworkers == 0) {
        if (p->counted && w->broker->cluster)
            stp_cluster_interest(w, name, len, -1);
        stp_ptrie_del(&w->patterns, name + TOPIC_PREFIX, len - TOPIC_PREFIX);
        if (p->counted)
            stp_dest_count_give(w);
        free(p);
    }
    stp_post_release(cmd);
}

struct mark_ctx {
    uint8_t *want;
    unsigned n, nwant;
};

static bool mark_workers(void *ctx, void *payload)
{
    struct mark_ctx *mc = ctx;
    const struct stp_opattern *p = payload;
    for (unsigned i = 0; i < mc->n; i++) {
        if (p->counts[i] && !mc->want[i]) {
            mc->want[i] = 1;
            mc->nwant++;
        }
    }
    return mc->nwant == mc->n; /* every worker gets it already */
}

unsigned stp_topic_pattern_mark(struct stp_worker *w, const struct stp_msg *m, unsigned nwant)
{
    struct mark_ctx mc = {w->route_want, w->broker_workers, nwant};
    if (mc.nwant == mc.n)
        return mc.nwant;
    if (stp_ptrie_match(&w->patterns, m->dest + TOPIC_PREFIX, m->dest_len - TOPIC_PREFIX,
                        mark_workers, &mc) < 0)
        stp_error("topic %s: out of memory matching patterns", m->dest);
    return mc.nwant;
}

static void free_opattern(void *ctx, void *payload)
{
    (void)ctx;
    free(payload);
}

void stp_topic_patterns_free(struct stp_worker *w)
{
    stp_ptrie_free(&w->patterns, free_opattern, NULL);
    free(w->route_want);
    w->route_want = NULL;
}

/*
 * dest.h - destinations: topics and queues, owner side and local side.
 *
 * Owner side (called only on the worker that owns the destination):
 * stp_topic_* keeps which workers have subscribers of a topic and fans
 * messages out to them; stp_queue_* keeps queue contents, consumers and
 * in-flight deliveries. Local side (on a subscriber's worker): stp_ltopic_*
 * keeps the worker's subscribers of a topic.
 */
#ifndef STP_BROKER_DEST_H
#define STP_BROKER_DEST_H

#include "broker/cmd.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct stp_worker;
struct stp_msg;
struct stp_sub;
struct stp_qsnap;

/* The destinations a client names, each with a non-empty NAME:
 * "/topic/NAME", "/queue/NAME", "/temp-queue/NAME" (the connection's own
 * private queue, RabbitMQ's temp queues: session_temp.c) and
 * "/reply-queue/NAME" (what the broker rewrites a reply-to /temp-queue/ to;
 * anyone may SEND there, only the connection that made it consumes it). */
enum stp_dest_kind {
    STP_DEST_BAD = 0,
    STP_DEST_TOPIC,
    STP_DEST_QUEUE,
    STP_DEST_TEMP,
    STP_DEST_REPLY
};
/* The names of the broker's own queues behind durable topic subscriptions
 * (durable_sub.c): never valid in a client frame. */
#define STP_DSUB_PREFIX "/dsub/"

#define STP_DEST_PREFIX(name, len, lit)                                                            \
    ((len) > sizeof(lit) - 1 && memcmp((name), (lit), sizeof(lit) - 1) == 0)

/* Every SEND asks this several times: one branch on the second byte picks
 * the one prefix to compare. */
static inline enum stp_dest_kind stp_dest_kind(const char *name, size_t len)
{
    switch (len > 1 ? name[1] : 0) {
    case 't':
        if (STP_DEST_PREFIX(name, len, "/topic/"))
            return STP_DEST_TOPIC;
        return STP_DEST_PREFIX(name, len, "/temp-queue/") ? STP_DEST_TEMP : STP_DEST_BAD;
    case 'q':
        return STP_DEST_PREFIX(name, len, "/queue/") ? STP_DEST_QUEUE : STP_DEST_BAD;
    case 'r':
        return STP_DEST_PREFIX(name, len, "/reply-queue/") ? STP_DEST_REPLY : STP_DEST_BAD;
    default:
        return STP_DEST_BAD;
    }
}

/* Is this name a queue at its owner: /queue/, /reply-queue/ or a durable
 * subscription's queue? */
static inline bool stp_dest_is_queue(const char *name, size_t len)
{
    enum stp_dest_kind k = stp_dest_kind(name, len);
    return k == STP_DEST_QUEUE || k == STP_DEST_REPLY ||
           STP_DEST_PREFIX(name, len, STP_DSUB_PREFIX);
}
/* A temp queue's messages are never journaled and its queue goes with its
 * last consumer. */
static inline bool stp_dest_is_reply(const char *name, size_t len)
{
    return stp_dest_kind(name, len) == STP_DEST_REPLY;
}

/* owner side; each takes over the command's message reference and string */
void stp_topic_route(struct stp_worker *w, struct stp_post *cmd);
/* Durable subscriptions: queue q (on this worker) gets a copy of every
 * message routed to topic name from now on / no longer. bind: 0, or
 * STP_EFULL (--max-destinations) or STP_ENOMEM. */
struct stp_queue;
int stp_topic_bind(struct stp_worker *w, const char *name, size_t len, struct stp_queue *q);
void stp_topic_unbind(struct stp_worker *w, const char *name, size_t len, struct stp_queue *q);
void stp_topic_interest(struct stp_worker *w, unsigned from, struct stp_post *cmd);
void stp_topics_free(struct stp_worker *w);
/* Patterns (topic_pattern.c). dest "/topic/NAME": is NAME a pattern (a word
 * is exactly `*` or `#`); words: how many words NAME has (may be NULL). */
bool stp_topic_is_pattern(const char *dest, size_t len, size_t *words);
void stp_topic_pattern_interest(struct stp_worker *w, unsigned from, struct stp_post *cmd);
/* Mark in w->route_want the workers of every pattern that matches m's
 * topic; nwant: how many are marked already. Returns how many are marked. */
unsigned stp_topic_pattern_mark(struct stp_worker *w, const struct stp_msg *m, unsigned nwant);
void stp_topic_patterns_free(struct stp_worker *w);

void stp_queue_route(struct stp_worker *w, struct stp_post *cmd);
/* A copy (m, taken over) of a topic message for durable subscription queue
 * q; cmd names the publisher. Over the queue's bound it is dropped, not
 * throttled: a subscriber that is away must not stop the topic. */
void stp_queue_route_bound(struct stp_worker *w, struct stp_queue *q, struct stp_msg *m,
                           const struct stp_post *cmd);
/* Remove a durable subscription (cmd's queue): its messages and record go. */
void stp_queue_dsub_del(struct stp_worker *w, struct stp_post *cmd);
const char *stp_queue_name(const struct stp_queue *q);
/* A durable subscription's selector (NULL: it takes every message). */
struct stp_selector;
const struct stp_selector *stp_queue_binding_selector(const struct stp_queue *q);
void stp_queue_consumer_add(struct stp_worker *w, unsigned from, struct stp_post *cmd);
void stp_queue_consumer_del(struct stp_worker *w, struct stp_post *cmd);
void stp_queue_written(struct stp_worker *w, struct stp_post *cmd);
void stp_queue_ack(struct stp_worker *w, struct stp_post *cmd);
/* The DLQ owner stored a dead letter: settle the original (cmd's message). */
void stp_queue_dead_done(struct stp_worker *w, struct stp_post *cmd);
/* Once a second: expired messages at the head of each queue go. */
void stp_queue_expire(struct stp_worker *w);
void stp_queues_free(struct stp_worker *w);
/* Call fn for every message this worker's queues hold (ready and in
 * flight). fn must not change the queues. */
void stp_queue_foreach_msg(struct stp_worker *w, void (*fn)(void *ctx, struct stp_msg *m),
                           void *ctx);
/* Recovery: append m (a reference taken over on success) to its queue
 * m->dest, made when missing; marked redelivered when it was delivered
 * before. 0, STP_EFULL (--max-destinations) or STP_ENOMEM. Before the
 * worker serves clients. */
int stp_queue_restore(struct stp_worker *w, struct stp_msg *m);
/* The deepest queues this worker owns, at most max of them, into out. */
size_t stp_queue_snapshot(struct stp_worker *w, struct stp_qsnap *out, size_t max);

/* The broker-wide count of destinations: take one before making a queue or
 * topic (false: --max-destinations reached, make nothing), give it back when
 * the destination is freed. Any worker, any time. */
bool stp_dest_count_take(struct stp_worker *w);
void stp_dest_count_give(struct stp_worker *w);
/* Tell the connection behind cmd (or, for a topic, every local subscriber of
 * it on cmd's worker) that no destination could be made for it. */
void stp_dest_refuse(struct stp_worker *w, const struct stp_post *cmd, const char *topic);
/* On the refused connection's worker. */
void stp_dest_on_refused(struct stp_worker *w, struct stp_post *cmd);

/* local side */
/* Add sub to the worker's subscribers of its topic; true when it is the first. */
int stp_ltopic_add(struct stp_worker *w, struct stp_sub *sub, bool *first);
/* Remove; true when it was the last. */
bool stp_ltopic_remove(struct stp_worker *w, struct stp_sub *sub);
/* Give m to every local subscriber of its topic and of each pattern that
 * matches it; takes over the reference. */
void stp_ltopic_deliver(struct stp_worker *w, struct stp_msg *m);
/* The local record of a topic or pattern ("/topic/..."), or NULL. */
struct stp_ltopic *stp_ltopic_find(struct stp_worker *w, const char *dest, size_t len);
/* At the worker's end: free the local records. */
void stp_ltopics_free(struct stp_worker *w);

#endif

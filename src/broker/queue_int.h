/*
 * queue_int.h - a queue's state, shared by queue.c (the queue: messages,
 * consumers, credit, acks, expiry) and qselect.c (dispatch when some of its
 * consumers have a selector). Owner worker only; nothing here is shared
 * between threads.
 *
 * Positions. Every message in a queue's ready deque has a position (in
 * qentry.tag): a message appended takes the next position at the back, one
 * put back at the head the next one below the front. The deque is always in
 * position order, and a position is never used twice in a queue, so a
 * position names one message for as long as it waits (qselect.c keeps lists
 * of them).
 *
 * Tombstones. Only when selectors are in use is a message taken from the
 * middle of the deque: it is left as a tombstone (msg NULL), dropped when it
 * reaches the front and compacted away when tombstones outnumber live
 * entries. The front entry is never a tombstone.
 */
#ifndef STP_BROKER_QUEUE_INT_H
#define STP_BROKER_QUEUE_INT_H

#include "broker/worker.h"
#include "stampede/clock.h"
#include "stampede/deque.h"
#include "stampede/map.h"
#include "stampede/msg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define STP_QUEUE_OUT_WINDOW 2048

struct qentry {
    struct stp_msg *msg; /* NULL: a tombstone */
    uint64_t tag;        /* ready: the position; in-flight lists: the delivery tag */
    bool redelivered;
};

/* A FIFO of entries that can also grow at the head (for requeues). */
STP_DEQUE_DEFINE(qdeque, struct qentry)
/* Positions, ascending (a selector group's matches). */
STP_DEQUE_DEFINE(posdeque, uint64_t)

struct stp_selector;

/* The consumers of one queue whose selector text is the same (qselect.c).
 * list holds, ascending, the positions of waiting messages the selector
 * matches; some may be gone since (taken by another consumer, expired):
 * those are skipped when met. While `scanning`, the messages at positions
 * >= scan_pos have not been looked at yet (a group made while the queue held
 * messages looks at them a bounded number per dispatch pass); new messages
 * are then left for the scan, not indexed. */
struct stp_qgroup {
    char *text;
    struct stp_selector *sel; /* compiled here, owned */
    size_t members;
    struct posdeque list;
    bool scanning;
    uint64_t scan_pos;
};

struct stp_consumer {
    uint64_t key;
    struct stp_queue *q;
    struct stp_qgroup *group; /* NULL: no selector, takes any message */
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

#define STP_DSUB_UNCOUNTED UINT16_MAX

struct stp_queue {
    char *name;
    size_t name_len;
    /* A durable subscription's: the login counter its binding took
     * (STP_DSUB_UNCOUNTED: none, e.g. a binding recovered from the journal,
     * whose login is not known). */
    uint16_t dsub_stripe;
    struct qdeque ready; /* waiting messages, in position order (see above) */
    size_t count;        /* live entries of ready: the queue's depth */
    size_t tombs;        /* tombstones in ready */
    size_t bytes;
    uint64_t front_pos, back_pos; /* the lowest position given, the next one at the back */
    struct stp_consumer **consumers;
    size_t nconsumers, cap_consumers;
    size_t rr;
    /* Selector groups; none: every consumer takes any message and dispatch
     * is the plain round-robin of queue.c. */
    struct stp_qgroup **groups;
    size_t ngroups, cap_groups;
    uint64_t sweep_pos; /* where the next expiry sweep starts (selectors only) */
    bool pending;       /* on the worker's list of queues with dispatch work left */
    struct connref *throttled;
    size_t nthrottled, cap_throttled;
    struct stp_map throttled_set; /* keys point into throttled[] */
    /* A temp queue (/reply-queue/): made only by its connection's
     * subscription, never journaled or dead-lettered, gone with its last
     * consumer (messages and all). */
    bool temp;
    /* A durable topic subscription's queue (durable_sub.c): the record that
     * binds it to its topic (its tail is the topic's name), journaled like a
     * message; NULL for other queues. A bound queue is never forgotten. */
    struct stp_msg *binding;
    struct stp_selector *bind_sel; /* its selector, compiled (NULL: every message) */
    /* A cluster queue's (cluster_queue.h): its messages are kept in
     * JetStream; ready holds only what this node leased. */
    bool cluster;
    uint8_t js_state;      /* enum stp_cq_state */
    size_t js_pending;     /* publishes JetStream has not answered yet */
    uint64_t js_requested; /* messages asked for that have not arrived */
    uint64_t js_pull_ms;   /* the last pull asked or message leased */
    uint64_t js_open_ms;   /* the last CQ_OPEN sent */
};

enum stp_cq_state { STP_CQ_CLOSED, STP_CQ_OPENING, STP_CQ_OPEN };

static inline bool stp_q_has_credit(const struct stp_consumer *c)
{
    if (c->next_tag - c->written >= STP_QUEUE_OUT_WINDOW)
        return false;
    return !c->client_ack || c->prefetch == 0 || c->live < c->prefetch;
}

static inline bool stp_q_expired(const struct stp_msg *m, uint64_t *now)
{
    if (!m->expires_ms)
        return false;
    if (!*now)
        *now = stp_epoch_ms();
    return m->expires_ms <= *now;
}

/* --- queue.c, for qselect.c --- */

/* Index of the live ready entry at position pos, or -1. */
ssize_t stp_q_find(const struct stp_queue *q, uint64_t pos);
/* The first index of ready whose position is >= pos (ready.count: none). */
size_t stp_q_lower_bound(const struct stp_queue *q, uint64_t pos);
/* Take the live entry at index i out of ready (the front is popped, others
 * become tombstones); the queue's count and bytes follow. */
struct qentry stp_q_remove_at(struct stp_queue *q, size_t i);
/* Expired messages at the front go (dead-lettered). */
void stp_q_drop_expired_head(struct stp_worker *w, struct stp_queue *q, uint64_t *now);
/* An entry taken out of ready expired: dead-letter its message. */
void stp_q_expire(struct stp_worker *w, struct stp_queue *q, struct stp_msg *m);
/* Hand e (taken out of ready) to consumer c. */
void stp_q_deliver(struct stp_worker *w, struct stp_consumer *c, struct qentry e);
void stp_q_unthrottle_if_drained(struct stp_worker *w, struct stp_queue *q);
/* Pause the publisher of cmd (once) until q drains. */
void stp_q_throttle(struct stp_worker *w, struct stp_queue *q, const struct stp_post *cmd);
/* Drop q when it holds nothing a client could observe (may free q). */
void stp_q_forget_if_idle(struct stp_worker *w, struct stp_queue *q);
/* A message JetStream leased to this node (taken over) for cluster queue
 * `name`: queued and dispatched, or NAKed back when nobody here consumes. */
void stp_q_cluster_arrive(struct stp_worker *w, struct stp_msg *m, bool redelivered);
/* The queue named so, or NULL. */
struct stp_queue *stp_q_find_queue(struct stp_worker *w, const char *name, size_t len);

/* --- qselect.c --- */

/* The group for selector text (compiled and made when new; a new group
 * looks at the messages already waiting). NULL when out of memory or the
 * text does not compile. */
struct stp_qgroup *stp_qsel_join(struct stp_queue *q, const char *text);
/* Whether some consumer of q (with or without a selector) would take m. */
bool stp_qsel_wanted(const struct stp_queue *q, const struct stp_msg *m);
/* A member left: the group goes with its last member. */
void stp_qsel_leave(struct stp_queue *q, struct stp_qgroup *g);
/* A message entered ready at position e->tag, at the back or (front) put
 * back at the head: note it in each group whose selector matches. */
void stp_qsel_index(struct stp_queue *q, const struct qentry *e, bool front);
/* Dispatch when groups exist: round-robin over consumers with credit, each
 * taking the first waiting message it matches. Bounded work per call; what
 * is left is resumed from the worker's idle handle. */
void stp_qsel_dispatch(struct stp_worker *w, struct stp_queue *q);
/* Once a second: dead-letter expired messages anywhere in q (not only at the
 * head: a message nobody matches may wait behind others), looking at most at
 * `budget` entries from where the last sweep stopped. Returns how many it
 * looked at. */
size_t stp_qsel_sweep(struct stp_worker *w, struct stp_queue *q, uint64_t *now, size_t budget);
void stp_qsel_free(struct stp_queue *q);
/* q is being freed: forget its pending dispatch work. */
void stp_qsel_unschedule(struct stp_worker *w, struct stp_queue *q);
/* The worker's idle callback: resume the queues with work left. */
void stp_qsel_on_idle(uv_idle_t *h);

#endif

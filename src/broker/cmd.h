/*
 * cmd.h - the small commands workers post to each other through mailboxes.
 *
 * A command is copied by value into and out of a ring (one fixed-size slot).
 * Its kind says which member of the payload union is valid; each member
 * names its fields, and says what it owns: a message reference or a heap
 * string in a command belongs to the command until a handler takes it over
 * (stp_post_release drops whatever a command still owns, e.g. one left in a
 * ring at shutdown). The connection a command comes from or is about is
 * named by (worker, slot, gen): the slot's generation changes when the
 * connection is gone, so a late command finds nobody and is dropped.
 *
 * Build commands with the stp_post_* constructors below; the connection
 * fields are filled by whoever posts on the connection's behalf.
 */
#ifndef STP_BROKER_CMD_H
#define STP_BROKER_CMD_H

#include <stdbool.h>
#include <stdint.h>

struct stp_msg;

enum stp_wcmd {
    STP_WCMD_ROUTE = 1,     /* conn's worker -> owner: a SEND took effect */
    STP_WCMD_TOPIC_DELIVER, /* owner -> a worker with subscribers of the topic */
    STP_WCMD_INTEREST,      /* worker -> owner: its first / last local subscriber */
    STP_WCMD_CONSUMER_ADD,  /* worker -> owner: a queue subscription was made */
    STP_WCMD_CONSUMER_DEL,  /* worker -> owner: a queue subscription is gone */
    STP_WCMD_QDELIVER,      /* owner -> consumer's worker: one queue delivery */
    STP_WCMD_QWRITTEN,      /* consumer's worker -> owner: deliveries written out */
    STP_WCMD_QACK,          /* consumer's worker -> owner: ACK or NACK */
    STP_WCMD_FENCE,         /* conn's worker -> owner: a receipt barrier */
    STP_WCMD_FENCE_OK,      /* owner -> conn's worker: everything before it is done */
    STP_WCMD_THROTTLE,      /* owner -> publisher's worker: a queue over / under its bound */
    STP_WCMD_REFUSED,       /* owner -> conn's worker: --max-destinations reached */
    STP_WCMD_FENCE_FAIL,    /* owner -> conn's worker: the journal lost what the fence covers */
    STP_WCMD_NOT_STORED,    /* owner -> conn's worker: a persistent SEND the journal refused */
    STP_WCMD_DEAD_SYNC,     /* queue owner -> DLQ owner: tell me when the dead letter is stored */
    STP_WCMD_DEAD_DONE,     /* DLQ owner -> queue owner: it is (ok) or was lost */
    STP_WCMD_DSUB_DEL,      /* conn's worker -> owner: remove a durable subscription */
    STP_WCMD_PATTERN_INTEREST, /* worker -> every worker: first / last local subscriber of a pattern
                                */
    STP_WCMD_CLUSTER_PUBLISH,  /* topic owner -> cluster thread: publish to the other nodes */
    STP_WCMD_CLUSTER_INTEREST, /* owner -> cluster thread: the node's first / last interest */
    STP_WCMD_CLUSTER_FLUSH,    /* owner -> cluster thread: tell me when NATS has my interest */
    STP_WCMD_CLUSTER_FLUSHED,  /* cluster thread -> owner: it has (or NATS is away) */
    /* Cluster queues (cluster_queue.c: the owner's side; cluster_js.c: the
     * cluster thread's; cluster_in_js.c: the delivery thread's). */
    STP_WCMD_CQ_PUBLISH, /* queue owner -> cluster thread: store in JetStream */
    STP_WCMD_CQ_PUBACK,  /* delivery or cluster thread -> owner: stored, or why not */
    STP_WCMD_CQ_ARRIVE,  /* delivery thread -> owner: a message JetStream leased to us */
    STP_WCMD_CQ_SETTLE,  /* owner -> cluster thread: ACK, NAK, TERM or renew a lease */
    STP_WCMD_CQ_OPEN,    /* owner -> cluster thread: make the queue's stream and consumer */
    STP_WCMD_CQ_READY,   /* cluster thread -> owner: made (n 1) or not (n 0) */
    STP_WCMD_CQ_PULL,    /* owner -> cluster thread: ask JetStream for n messages */
    STP_WCMD_CQ_PULLED,  /* delivery or cluster thread -> owner: a pull ended, n undelivered */
};

/* The worker field of a command that comes from no connection (a dead
 * letter the broker routes itself): nobody to throttle, refuse or tell. */
#define STP_NO_CONN UINT16_MAX

struct stp_post {
    uint8_t type;    /* enum stp_wcmd */
    uint16_t worker; /* the connection's worker */
    uint32_t slot, gen;
    union {
        /* ROUTE, TOPIC_DELIVER, CLUSTER_PUBLISH: owns one reference to msg. */
        struct {
            struct stp_msg *msg;
        } route, topic_deliver;
        /* INTEREST, PATTERN_INTEREST, CLUSTER_INTEREST: owns the topic name or pattern
         * ("/topic/a.*", heap). delta is +1 or -1. */
        struct {
            char *topic;
            int delta;
        } interest;
        /* CONSUMER_ADD: owns the queue name and the selector text (heap;
         * selector NULL: none; the owner compiles it again). prefetch 0:
         * none. durable: the queue is a durable topic subscription's (made
         * and bound to its topic when missing; one consumer at a time). */
        struct {
            char *queue;
            char *selector;
            uint64_t sub_key;
            uint32_t prefetch;
            uint16_t login_stripe; /* durable: the subscriber's login's counter */
            bool client_ack;
            bool durable;
        } consumer_add;
        /* DSUB_DEL: owns the durable subscription's queue name (heap). */
        struct {
            char *queue;
        } dsub_del;
        /* CONSUMER_DEL: auto-ack deliveries up to written_upto are in the
         * consumer's output queue: settled, not requeued (0: none). */
        struct {
            uint64_t sub_key;
            uint64_t written_upto;
        } consumer_del;
        /* QDELIVER: owns one reference to msg. */
        struct {
            struct stp_msg *msg;
            uint64_t sub_key, tag;
            bool redelivered;
        } qdeliver;
        /* QWRITTEN: deliveries up to tag were written to the socket. */
        struct {
            uint64_t sub_key, tag;
        } qwritten;
        /* QACK: settle tag (and every earlier one when upto); nack puts it
         * back, unless reject (NACK requeue:false): then dead-lettered. */
        struct {
            uint64_t sub_key, tag;
            bool upto, nack, reject;
        } qack;
        /* DEAD_SYNC, DEAD_DONE: own one reference to the original message. */
        struct {
            struct stp_msg *msg;
            bool ok;
        } dead;
        /* CQ_PUBLISH: owns one reference to msg; id names the publish at its
         * owner. CQ_ARRIVE: owns one reference to msg (its cluster_ack set). */
        struct {
            struct stp_msg *msg;
            uint64_t id;
            bool redelivered;
        } cq_msg;
        /* CQ_PUBACK: err 0 (stored) or a negative STP_E* code. */
        struct {
            uint64_t id;
            int err;
        } cq_puback;
        /* CQ_SETTLE: owns one reference to the leased msg, whose cluster_ack
         * is the JetStream ack subject; or, with no message (the delivery
         * thread's +TERM of junk), the subject itself (heap). */
        struct {
            struct stp_msg *msg;
            char *subject;
            int kind; /* enum stp_cq_settle */
        } cq_settle;
        /* CQ_OPEN, CQ_READY, CQ_PULL, CQ_PULLED: own the queue name (heap). */
        struct {
            char *queue;
            int64_t n;
        } cq;
        /* FENCE, FENCE_OK, FENCE_FAIL (err: a negative STP_E* code) */
        struct {
            uint64_t id;
            int err;
        } fence;
        /* NOT_STORED: why (a negative STP_E* code), and the first fence of
         * the connection that covers the message (its receipt must not be
         * sent). */
        struct {
            int err;
            uint64_t fence;
        } not_stored;
        /* THROTTLE: on pauses reading the publisher, off resumes. */
        struct {
            bool on;
        } throttle;
        /* REFUSED: owns the topic name (heap), or NULL when the refused
         * destination was a queue (then the connection itself is refused).
         * why: what was refused. */
        struct {
            char *topic;
            int why; /* enum stp_refusal */
        } refused;
    } u;
};

/* A selector's text rides in CONSUMER_ADD as a pointer: the command stays
 * the size of its largest payload, QDELIVER's. */
_Static_assert(sizeof(((struct stp_post *)0)->u.consumer_add) <=
                   sizeof(((struct stp_post *)0)->u.qdeliver),
               "CONSUMER_ADD must not make every command bigger");

static inline struct stp_post stp_post_route(struct stp_msg *msg)
{
    return (struct stp_post){.type = STP_WCMD_ROUTE, .u.route = {msg}};
}

static inline struct stp_post stp_post_topic_deliver(struct stp_msg *msg)
{
    return (struct stp_post){.type = STP_WCMD_TOPIC_DELIVER, .u.topic_deliver = {msg}};
}

static inline struct stp_post stp_post_interest(char *topic, int delta)
{
    return (struct stp_post){.type = STP_WCMD_INTEREST, .u.interest = {topic, delta}};
}

static inline struct stp_post stp_post_pattern_interest(char *pattern, int delta)
{
    return (struct stp_post){.type = STP_WCMD_PATTERN_INTEREST, .u.interest = {pattern, delta}};
}

static inline struct stp_post stp_post_consumer_add(char *queue, char *selector, uint64_t sub_key,
                                                    uint32_t prefetch, bool client_ack)
{
    return (struct stp_post){
        .type = STP_WCMD_CONSUMER_ADD,
        .u.consumer_add = {queue, selector, sub_key, prefetch, 0, client_ack, false}};
}

static inline struct stp_post stp_post_consumer_del(uint64_t sub_key, uint64_t written_upto)
{
    return (struct stp_post){.type = STP_WCMD_CONSUMER_DEL,
                             .u.consumer_del = {sub_key, written_upto}};
}

static inline struct stp_post stp_post_qdeliver(struct stp_msg *msg, uint64_t sub_key, uint64_t tag,
                                                bool redelivered)
{
    return (struct stp_post){.type = STP_WCMD_QDELIVER,
                             .u.qdeliver = {msg, sub_key, tag, redelivered}};
}

static inline struct stp_post stp_post_qwritten(uint64_t sub_key, uint64_t tag)
{
    return (struct stp_post){.type = STP_WCMD_QWRITTEN, .u.qwritten = {sub_key, tag}};
}

static inline struct stp_post stp_post_qack(uint64_t sub_key, uint64_t tag, bool upto, bool nack,
                                            bool reject)
{
    return (struct stp_post){.type = STP_WCMD_QACK, .u.qack = {sub_key, tag, upto, nack, reject}};
}

static inline struct stp_post stp_post_dead_sync(struct stp_msg *msg)
{
    return (struct stp_post){.type = STP_WCMD_DEAD_SYNC, .u.dead = {msg, false}};
}

static inline struct stp_post stp_post_fence(uint64_t id)
{
    return (struct stp_post){.type = STP_WCMD_FENCE, .u.fence = {id, 0}};
}

static inline struct stp_post stp_post_not_stored(int err, uint64_t fence)
{
    return (struct stp_post){.type = STP_WCMD_NOT_STORED, .u.not_stored = {err, fence}};
}

static inline struct stp_post stp_post_throttle(bool on)
{
    return (struct stp_post){.type = STP_WCMD_THROTTLE, .u.throttle = {on}};
}

/* Why an owner refused a connection's frame. */
enum stp_refusal {
    STP_REFUSE_DESTINATIONS = 0, /* --max-destinations reached */
    STP_REFUSE_DSUB_BUSY = 1,    /* another connection holds the durable subscription */
    STP_REFUSE_DSUB_QUOTA = 2,   /* --max-durable-subscriptions-per-login reached */
};

static inline struct stp_post stp_post_refused(char *topic)
{
    return (struct stp_post){.type = STP_WCMD_REFUSED, .u.refused = {topic, 0}};
}

static inline struct stp_post stp_post_dsub_del(char *queue)
{
    return (struct stp_post){.type = STP_WCMD_DSUB_DEL, .u.dsub_del = {queue}};
}

/* Address a command to the connection (worker, slot, gen). */
static inline void stp_post_to_conn(struct stp_post *cmd, uint16_t worker, uint32_t slot,
                                    uint32_t gen)
{
    cmd->worker = worker;
    cmd->slot = slot;
    cmd->gen = gen;
}

/* Drop what a command still owns (its message reference or heap string). */
void stp_post_release(struct stp_post *cmd);
/* A mailbox handler (stp_mailboxes_drain) for commands left in the rings at
 * shutdown: releases what each carries. */
void stp_post_drop(void *ctx, unsigned from, const void *cmd);

#endif

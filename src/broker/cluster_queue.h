/*
 * cluster_queue.h - queues across the nodes of a cluster (--cluster, issue
 * 14), the owner worker's side.
 *
 * With --cluster every /queue/NAME is one queue for all nodes, kept by NATS
 * JetStream: one work-queue stream (STP_QUEUES, subjects stp.q.<name
 * token>) and one durable pull consumer per queue shared by every node.
 * The owner worker of /queue/NAME on each node:
 *
 *   - stores: a SEND is not queued locally but handed to the cluster thread
 *     (CQ_PUBLISH), which publishes it to JetStream; JetStream's answer comes
 *     back as CQ_PUBACK. A receipt fence behind such a publish is held until
 *     every publish before it is answered; a refused one tells its publisher
 *     (ERROR "message not stored"), as a journal that fails does;
 *   - leases: it asks JetStream (CQ_PULL) for as many messages as its local
 *     consumers have room for; they arrive (CQ_ARRIVE) with their ack
 *     subject and enter the local queue, which delivers them as usual;
 *   - settles: a message acked (or written, auto ack), expired or
 *     dead-lettered is acked in JetStream; one NACKed or returned by a
 *     consumer that left is NAKed there (JetStream gives it to whichever
 *     node asks next); a lease still held is renewed before the ack wait
 *     runs out, so only a node that died loses its leases to the others.
 *
 * Everything here runs on the owner worker's thread.
 */
#ifndef STP_BROKER_CLUSTER_QUEUE_H
#define STP_BROKER_CLUSTER_QUEUE_H

#include "broker/cmd.h"
#include "stampede/deque.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct stp_worker;
struct stp_queue;
struct stp_msg;

/* What JetStream is told of a leased message (its ack subject's payload). */
enum stp_cq_settle {
    STP_CQ_ACK,  /* done: removed from the stream */
    STP_CQ_NAK,  /* give it to a consumer again (any node) */
    STP_CQ_TERM, /* never deliver it again (not a valid message) */
    STP_CQ_WPI,  /* still being worked on: restart the ack wait */
    /* give it to a consumer again after STP_CQ_NAK_DELAY_MS (not one of
     * this node's: none matches it) */
    STP_CQ_NAK_LATER,
};
#define STP_CQ_NAK_DELAY_MS 100

/* JetStream's pieces, the same on every node. */
#define STP_CQ_STREAM "STP_QUEUES"
/* Publishes one owner has not heard back about, per queue, before its
 * publishers are paused (and resumed below 90%). */
#define STP_CQ_PUB_WINDOW 4096

/* A pull request lasts this long at most in JetStream (then it answers
 * 408 with what it did not bring). */
#define STP_CQ_PULL_EXPIRES_MS 5000
/* CQ_PULLED's n when the queue's consumer is missing in JetStream (made
 * again), besides n >= 0 (undelivered) and -1 (unknown: NATS away). */
#define STP_CQ_PULL_NO_CONSUMER (-2)

/* A publish waiting for JetStream's answer, and who to tell if refused. */
struct stp_cq_pub {
    uint64_t id;
    /* Its queue, kept while it has publishes unanswered (js_pending);
     * NULL once this one is answered. */
    struct stp_queue *q;
    uint64_t fence; /* the message's pub_fence */
    uint64_t sent_ms;
    uint32_t slot, gen;
    uint16_t worker; /* STP_NO_CONN: nobody to tell (a dead letter) */
    bool done;
};
STP_DEQUE_DEFINE(stp_cq_pubs, struct stp_cq_pub)

/* A receipt fence held until the publishes up to `upto` are answered. */
struct stp_cq_fence {
    uint64_t upto;
    struct stp_post fence;
};
STP_DEQUE_DEFINE(stp_cq_fences, struct stp_cq_fence)

/* The owner worker's state (in struct stp_worker). */
struct stp_cq_owner {
    struct stp_cq_pubs pubs; /* in id order */
    struct stp_cq_fences fences;
    uint64_t next_id;
};

/* Whether /queue/NAME-style name[0, len) is a cluster queue on this broker. */
bool stp_cq_is_cluster(const struct stp_worker *w, const char *name, size_t len);
/* A SEND (ROUTE cmd, its message taken over) to cluster queue q: store it
 * in JetStream. */
void stp_cq_send(struct stp_worker *w, struct stp_queue *q, struct stp_post *cmd);
/* A receipt FENCE: true when it is held behind publishes not answered yet. */
bool stp_cq_hold_fence(struct stp_worker *w, const struct stp_post *fence);
/* Tell JetStream what became of leased message m (the caller keeps m). */
void stp_cq_settle(struct stp_worker *w, struct stp_msg *m, enum stp_cq_settle kind);
/* q's consumers may have room: lease more (opening the consumer first). */
void stp_cq_want(struct stp_worker *w, struct stp_queue *q);
/* Commands for the owner: CQ_PUBACK, CQ_ARRIVE, CQ_READY, CQ_PULLED. */
void stp_cq_handle(struct stp_worker *w, struct stp_post *cmd);
/* Every quarter of the ack wait (at most a second, at least 100 ms):
 * publishes JetStream never answered fail, stale pulls are forgotten,
 * leases held half the ack wait are renewed, failed opens are retried. */
void stp_cq_tick(struct stp_worker *w);
void stp_cq_free(struct stp_worker *w);

#endif

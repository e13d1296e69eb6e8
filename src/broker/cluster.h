/*
 * cluster.h - this node's part of a cluster on NATS (--cluster, issue 14).
 *
 * Topics span the nodes: the owner of a topic hands every message a local
 * client sent to it to the cluster thread, which publishes it once on the
 * topic's NATS subject (src/cluster/subject.h); a node subscribes in NATS
 * only to the subjects it has local interest in (a topic with subscribers
 * or durable subscriptions, a pattern with subscribers), so NATS carries a
 * message to the nodes that want it, once per node. What arrives is checked
 * and rebuilt on libnats's delivery thread (cluster_in.c) and routed to the
 * topic's owner like a local SEND, except that it is not published again.
 *
 * Threads and mailbox indexes: workers are 0..N-1; the cluster thread is
 * mailbox endpoint N (it receives CLUSTER_PUBLISH, CLUSTER_INTEREST and
 * CLUSTER_FLUSH from owners and answers the last with CLUSTER_FLUSHED); the delivery thread is
 * endpoint N+1 (it only sends ROUTE to owners, and waits while a ring is full: back-pressure that
 * ends at libnats's per-subscription pending limit, past which NATS drops for us and on_error
 * counts it).
 *
 * Without --cluster none of this exists: b->cluster is NULL, the mailboxes
 * have N endpoints, and the module is never loaded.
 */
#ifndef STP_BROKER_CLUSTER_H
#define STP_BROKER_CLUSTER_H

#include "stampede/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct stp_broker;
struct stp_worker;
struct stp_msg;
struct stp_post;

/* Mailbox endpoints the cluster adds to the workers' (0 without --cluster). */
#define STP_CLUSTER_ENDPOINTS 2

/* Main thread, after the mailboxes exist and before the workers start: load
 * the module, start connecting, start the cluster thread. 0, or -1 after a
 * logged one-line error (the broker does not start). */
int stp_cluster_start(struct stp_broker *b);
/* Main thread, before the workers stop: from now on what arrives from NATS
 * is dropped (the workers no longer drain their rings). */
void stp_cluster_closing(struct stp_broker *b);
/* Main thread, after the workers ended: stop the cluster thread, close the
 * NATS connection (waits for libnats's threads), free everything. */
void stp_cluster_stop(struct stp_broker *b);

/* An owner's thread: publish m (a topic message a local client sent) to
 * the other nodes. Takes its own reference. */
void stp_cluster_publish(struct stp_worker *w, struct stp_msg *m);
/* An owner's thread: the node's interest in a topic name or pattern
 * changed (+1 first, -1 last; each name has one owner, so these alternate). */
void stp_cluster_interest(struct stp_worker *w, const char *name, size_t len, int delta);

/* An owner's thread, on a receipt FENCE: when the owner told the cluster
 * thread of new interest since its last flush (or holds fences already),
 * keep the fence (and ask the cluster thread for a NATS round trip) and
 * return true: a SUBSCRIBE's RECEIPT then means NATS has the subscription,
 * so what any node publishes after it reaches the subscriber. false: answer
 * it now. */
bool stp_cluster_hold_fence(struct stp_worker *w, const struct stp_post *fence);
/* An owner's thread: the cluster thread's answer to a flush; when it was
 * the last one asked, the held fences are answered, in order. */
void stp_cluster_flushed(struct stp_worker *w);

/* Cluster thread: a command from an owner (mailbox handler). */
void stp_cluster_handle(void *ctx, unsigned from, const void *cmd);

/* /healthz and /metrics (any thread). */
bool stp_cluster_degraded(const struct stp_broker *b);
int stp_cluster_metrics(const struct stp_broker *b, struct stp_buf *out);

#endif

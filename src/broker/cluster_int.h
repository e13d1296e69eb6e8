/*
 * cluster_int.h - the cluster's state, shared by cluster.c (the cluster
 * thread, start and stop) and cluster_in.c (the delivery thread).
 */
#ifndef STP_BROKER_CLUSTER_INT_H
#define STP_BROKER_CLUSTER_INT_H

#include "broker/cluster.h"
#include "cluster/nats_api.h"
#include "stampede/buf.h"
#include "stampede/map.h"
#include "stampede/stomp.h"

#include <stdatomic.h>
#include <uv.h>

/* Every subject this project puts in NATS starts so (src/cluster/subject.h). */
#define STP_CLUSTER_PREFIX "stp"
/* Publishing nodes whose last sequence number the delivery thread keeps. */
#define STP_CLUSTER_ORIGINS 64

struct stp_cluster_origin {
    uint64_t origin, last_seq, used;
};

/* Delivery thread only. */
struct stp_cluster_in {
    struct stp_parser parser;
    struct stp_buf frame, dest, scratch;
    struct stp_cluster_origin origins[STP_CLUSTER_ORIGINS];
    uint64_t clock; /* ticks of `used` */
};

struct stp_cluster {
    struct stp_broker *b;
    const struct stp_nats_api *api;
    struct stp_nats *nats;
    unsigned self, ingress; /* mailbox endpoints: N and N+1 */
    uint64_t origin;        /* this node's random id in the wire format */
    /* The cluster thread's. */
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t stop_async;
    bool loop_ready;     /* loop and stop_async initialized */
    struct stp_map subs; /* topic name or pattern -> struct stp_cluster_sub */
    struct stp_buf subject, payload;
    uint64_t seq;
    /* Cluster queues: "_STP.<origin in hex>", the prefix of the subjects
     * JetStream answers this node on (publish acks, pull statuses), and
     * the one subscription that takes them. */
    char inbox[32];
    size_t inbox_len;
    void *inbox_sub;
    struct stp_buf js_reply, js_body; /* the cluster thread's */
    uint64_t stream_retry_ms;         /* cluster thread: no stream setup before this */
    /* The delivery thread's. */
    struct stp_cluster_in in;
    /* Any thread: state and counters (relaxed; read by /metrics). */
    atomic_int state; /* enum stp_nats_state; 0 while the first connect is pending */
    atomic_bool closing;
    atomic_uint_fast64_t published, publish_dropped, delivered_in, duplicates, rejected,
        nats_errors, disconnects;
    atomic_uint_fast64_t subscriptions;
    /* Cluster queues: publishes stored / refused, messages leased. */
    atomic_uint_fast64_t cq_stored, cq_refused, cq_leased;
    /* The stream exists as far as we know: set by the cluster thread once
     * made, cleared by the delivery thread when a publish found no
     * JetStream to answer (made again before the next publish). */
    atomic_bool stream_ok;
};

struct stp_config;
struct stp_wire_msg;

/* The cluster thread: m in the wire format, the next of this node's
 * sequence numbers (cluster.c: topics and replies; cluster_js.c: queues). */
struct stp_wire_msg stp_cluster_wire_of(struct stp_cluster *c, const struct stp_msg *m);
/* The delivery thread: the destination a subject made by stp_subject_of
 * names, into in->dest (NUL-terminated; *len its length), or NULL. */
const char *stp_cluster_in_dest(struct stp_cluster_in *in, const char *subject, size_t *len);

/* The delivery thread's hook (cluster_in.c). */
void stp_cluster_on_msg(void *ctx, const struct stp_nats_msg *m);
/* The delivery thread: JetStream's part of what arrives (cluster_in_js.c):
 * leased queue messages and answers on the node's inbox. false: not
 * JetStream's, a topic message. */
bool stp_cluster_in_js(struct stp_cluster *c, const struct stp_nats_msg *m);
/* For cluster_in_js.c (delivery thread): the frame "SEND\n" + wm's tail
 * parsed into *f, NULL unless it is one whole SEND to dest; hand cmd to
 * mailbox endpoint `to`, waiting while its ring is full (false: the broker
 * stops, cmd released); count and log a message dropped for `why`. */
const struct stp_frame *stp_cluster_in_parse(struct stp_cluster_in *in,
                                             const struct stp_wire_msg *wm, const char *dest,
                                             struct stp_frame *f);
bool stp_cluster_in_post(struct stp_cluster *c, unsigned to, struct stp_post *cmd);
void stp_cluster_in_reject(struct stp_cluster *c, const char *subject, const char *why);
/* The cluster thread: cluster queues' commands (cluster_js.c); false when
 * cmd is not one of them. */
bool stp_cluster_js_handle(struct stp_cluster *c, unsigned from, struct stp_post *cmd);
/* The durable consumer's name of queue name[0, len) ("stpq_" + 16 hex
 * digits of its hash: JetStream names may not hold every byte a queue
 * name may), the same on every node. */
void stp_cluster_consumer_name(char out[24], const char *name, size_t len);
/* The checks of one arrival, without side effects but on in's buffers:
 * the topic it is for (NUL-terminated, in in's buffer), with *wm decoded
 * and *f the parsed SEND (slices into in's buffer); or NULL and *why. The
 * fuzz target fuzz_cluster drives this directly. */
const char *stp_cluster_in_check(struct stp_cluster_in *in, const char *subject, const void *data,
                                 size_t len, struct stp_wire_msg *wm, struct stp_frame *f,
                                 const char **why);
/* The same for a message JetStream leased to this node (cluster_in_js.c):
 * the queue its subject names, its tail one SEND to that queue. */
const char *stp_cluster_in_check_leased(struct stp_cluster_in *in, const char *subject,
                                        const void *data, size_t len, struct stp_wire_msg *wm,
                                        struct stp_frame *f, const char **why);
int stp_cluster_in_init(struct stp_cluster_in *in, const struct stp_config *cfg);
void stp_cluster_in_free(struct stp_cluster_in *in);

#endif

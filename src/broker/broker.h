/*
 * broker.h - the broker: its workers, their mailboxes and listening sockets.
 *
 * Created, started and stopped on the main thread. stp_broker_start opens
 * every listener (one SO_REUSEPORT socket per worker, so the kernel spreads
 * connections over the workers) and starts the worker threads.
 * stp_broker_stop stops accepting, lets every worker flush and close its
 * connections, then joins the threads and frees everything.
 */
#ifndef STP_BROKER_BROKER_H
#define STP_BROKER_BROKER_H

#include "auth/auth.h"
#include "broker/recover.h"
#include "net/admit.h"
#include "stampede/config.h"
#include "stampede/ws.h"

#include <stdatomic.h>
#include <stdint.h>

/* Counters of durable subscriptions per login (a hash picks one). */
#define STP_DSUB_STRIPES 4096

struct stp_worker;
struct stp_mailboxes;
struct stp_cluster;

struct stp_broker {
    const struct stp_config *cfg;
    unsigned nworkers;
    struct stp_worker *workers;
    struct stp_mailboxes *mb;
    int *fds; /* [listener * nworkers + worker] */
    uint16_t ports[STP_MAX_LISTENERS];
    struct stp_ws_config ws_cfg[STP_MAX_LISTENERS];    /* ws:// and wss:// */
    struct stp_tls_config *tls_cfg[STP_MAX_LISTENERS]; /* stomp+ssl:// and wss:// */
    uint64_t started_ms;
    struct stp_admit admit; /* connection limits shared by the workers */
    /* Workers whose connections are all closed (read by the main thread
     * while stopping; release/acquire so their frees happen-before). */
    atomic_uint drained;
    /* Queues and topics alive in the whole broker (--max-destinations):
     * owners on every worker add and remove (stp_dest_count_take/give). */
    atomic_size_t ndests;
    /* Bytes of every de-duplication window (--dedup-max-memory): owners on
     * every worker add and remove (dedup.c). */
    atomic_size_t dedup_bytes;
    /* Durable topic subscriptions per login (--max-durable-subscriptions-
     * per-login), in STP_DSUB_STRIPES counters indexed by a hash of the
     * login: made and removed by the subscriptions' owners on any worker. */
    atomic_uint dsubs_per_login[STP_DSUB_STRIPES];
    /* Access control (src/auth), loaded by stp_broker_prepare, read-only
     * while the workers run; NULL when not configured. */
    struct stp_users *users;
    struct stp_acl *acl;
    struct stp_login_cache *login_cache; /* with users: recently verified passcodes */
    struct stp_backoff backoff;          /* failed logins by source address (atomics) */
    /* --data-dir: the lock, and what the journals held at start (handed to
     * the workers by stp_broker_start). */
    struct stp_recovery recovery;
    /* --cluster: this node's part of the cluster (src/broker/cluster.c);
     * NULL on a single node. */
    struct stp_cluster *cluster;
};

struct stp_tls_config;
struct stp_login_cache;

/* Load what the listeners need before anything starts (TLS certificates and
 * keys): 0, or a negative code after one line on stderr (exit 2). */
int stp_broker_prepare(struct stp_broker *b, const struct stp_config *cfg);
/* Open the listeners and start the workers: 0, or a negative code after
 * logging why. */
int stp_broker_start(struct stp_broker *b);
/* SIGHUP: reload every TLS listener's certificate and key; a pair that does
 * not load is refused with a log line and the old one stays. */
void stp_broker_reload_tls(struct stp_broker *b);
void stp_broker_stop(struct stp_broker *b);
/* Free what stp_broker_prepare loaded (stp_broker_stop does; for a broker
 * that was prepared but never started, e.g. the unit tests'). */
void stp_broker_release(struct stp_broker *b);

#endif

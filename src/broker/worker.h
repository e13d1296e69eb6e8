/*
 * worker.h - one event loop thread and everything it owns.
 *
 * A worker owns: its uv loop and handles, its net context (listeners and the
 * connections it accepted: net/net.h), the local records of its connections'
 * subscriptions, and the destinations that hash to it (topics' interest
 * tables, queues). Other workers reach these only through the mailboxes. A
 * few fields are shared, each saying how: stop_request (written by the main
 * thread), net.tls_reload (handed over by the main thread on SIGHUP), qsnap
 * under qsnap_lock and qsnap_ready (read by /metrics on any worker), and
 * stats and net.stats (single-writer counters any worker reads for
 * /metrics).
 */
#ifndef STP_BROKER_WORKER_H
#define STP_BROKER_WORKER_H

#include "broker/cluster_queue.h"
#include "broker/cmd.h"
#include "broker/durable.h"
#include "broker/pattern.h"
#include "broker/recover.h"
#include "broker/stats.h"
#include "net/conn.h"
#include "stampede/buf.h"
#include "stampede/config.h"
#include "stampede/map.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct stp_broker;
struct stp_tls_config;

#define STP_QSNAP_MAX 50

/* A queue's figures as last published for /metrics. */
struct stp_qsnap {
    char name[128];
    size_t depth;
    size_t consumers;
};
struct stp_mailboxes;

struct stp_worker {
    unsigned id;
    unsigned broker_workers; /* how many workers the broker runs */
    struct stp_broker *broker;
    struct stp_mailboxes *mb;
    const struct stp_config *cfg;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t stop_async;
    uv_check_t flush_check;
    uv_prepare_t flush_prepare;
    bool stopping;
    /* Written by the main thread, read by the worker after the stop wake-up:
     * release/acquire orders the main thread's earlier writes before it. */
    atomic_uint stop_request;
    unsigned stop_phase;
    bool drained_reported;
    uv_timer_t drain_timer;
    uv_timer_t budget_timer; /* runs while publishers wait for memory */

    /* Listeners and connections: the net layer's part of this thread. */
    struct stp_net net;

    /* Local subscription records. */
    struct stp_map local_topics;     /* topic name -> struct stp_ltopic */
    struct stp_ptrie local_patterns; /* pattern -> struct stp_ltopic (topic.c) */
    struct stp_map subs_by_key;      /* sub key (8 bytes) -> struct stp_sub */
    uint64_t sub_counter;

    /* Destinations owned by this worker. */
    struct stp_map topics; /* name -> struct stp_topic */
    /* Every pattern any worker subscribes (topic_pattern.c): pattern ->
     * per-worker counts; route_want: workers a message goes to, all zero
     * between two routes (made with the first pattern). */
    struct stp_ptrie patterns;
    uint8_t *route_want;
    struct stp_map queues;    /* name -> struct stp_queue */
    struct stp_map consumers; /* sub key -> struct stp_consumer */
    struct stp_map dedup;     /* destination -> its de-duplication window (dedup.c) */
    /* Queues whose dispatch stopped at its work bound (selectors: see
     * qselect.c), resumed from this idle handle, which runs only while the
     * list is not empty. */
    uv_idle_t qwork_idle;
    struct stp_queue **qwork;
    size_t nqwork, cap_qwork;

    /* The journal of this worker's queues (--data-dir), and what the
     * recovery found for them: handed over by the broker before the worker
     * starts (journal_dir NULL: no data dir), put in the queues by
     * stp_worker_init. */
    struct stp_durable dur;
    const char *journal_dir;
    uint64_t journal_next_lsn;
    struct stp_msg **restore; /* references, in queue order per queue */
    size_t nrestore;
    struct stp_recovery_segs journal_segs;     /* MSG counts of its segments (freed at init) */
    struct stp_recovered_dedups restore_dedup; /* its queues' dedup-ids (freed at init) */

    struct stp_buf scratch; /* reused for building frames on this thread */
    /* Published once a second by the stats timer, read by /metrics on any
     * worker: the mutex is taken only there, never on the message path. */
    uv_mutex_t qsnap_lock;
    /* Set (release) at the end of stp_worker_init, once qsnap_lock and the
     * journal (dur.j) exist. The main thread starts the workers one after
     * another, so worker 0 may answer /metrics before a later worker is set
     * up: /metrics skips a worker whose flag it does not see (acquire); such
     * a worker has not started and has nothing to report. */
    atomic_bool qsnap_ready;
    struct stp_qsnap qsnap[STP_QSNAP_MAX];
    size_t nqsnap;
    uv_timer_t stats_timer;
    uint64_t stats_due_ns;
    size_t trim_peak; /* worker 0: peak message bytes since the last malloc_trim */
    struct stp_worker_stats stats;
    /* --cluster (cluster.c): this owner told the cluster thread of new
     * interest since its last flush; flushes asked and not answered; the
     * receipt fences held back until NATS has that interest (in order). */
    bool cluster_unflushed;
    unsigned cluster_flushes;
    struct stp_post *held_fences;
    size_t nheld_fences, cap_held_fences;
    struct stp_cq_owner cq; /* cluster queues' publishes and fences (cluster_queue.h) */
    uv_timer_t cq_timer;    /* --cluster: stp_cq_tick, a quarter of the ack wait (<= 1 s) */
};

/* The owner of a destination: hash(name) % workers. */
unsigned stp_owner_of(const struct stp_worker *w, const char *dest, size_t len);

/* Post a command from worker w to worker `to` (direct call when to == w). */
void stp_worker_post(struct stp_worker *w, unsigned to, struct stp_post *cmd);
/* True while w's outgoing mailboxes overflow (stop reading publishers). */
bool stp_worker_backlogged(struct stp_worker *w);

/* Resume connections paused for back-pressure when nothing holds them. */
void stp_worker_maybe_resume(struct stp_worker *w);
/* After a publish: pause c while the broker's messages exceed the budget. */
void stp_worker_check_budget(struct stp_worker *w, struct stp_conn *c);

/* The connection behind a (slot, gen) reference, or NULL when it is gone. */
static inline struct stp_conn *stp_worker_conn(struct stp_worker *w, uint32_t slot, uint32_t gen)
{
    return stp_net_conn(&w->net, slot, gen);
}

/* The worker a connection belongs to (its net is embedded in the worker). */
static inline struct stp_worker *stp_worker_of(const struct stp_conn *c)
{
    return (struct stp_worker *)((char *)c->net - offsetof(struct stp_worker, net));
}

/* Called on the worker's thread for each command from another worker. */
void stp_worker_handle(struct stp_worker *w, unsigned from, struct stp_post *cmd);
/* Answer a receipt fence that reached this owner: FENCE_OK to the
 * connection's worker (after the journal when it has one). */
void stp_worker_answer_fence(struct stp_worker *w, const struct stp_post *fence);

/* Set the worker's loop and handles up, open its listeners and start its
 * thread. Before: the fields the broker fills (id, broker_workers, broker,
 * mb, cfg) and, in net, tls_cfg[], ws_cfg and admit. */
int stp_worker_start(struct stp_worker *w);
/* The parts of a worker's life without a thread or listeners, for whoever
 * runs its loop itself (stp_worker_start, the unit tests): set up the loop,
 * handles, net context (ops: stp_session_ops) and mailbox; close every
 * handle and connection (the loop then ends); free what is left after the
 * loop ended. */
int stp_worker_init(struct stp_worker *w);
void stp_worker_close(struct stp_worker *w);
void stp_worker_fini(struct stp_worker *w);
/* From the main thread: hand the worker a new TLS config for a listener
 * (the worker takes over the reference cfg holds). */
void stp_worker_reload_tls(struct stp_worker *w, unsigned listener, struct stp_tls_config *cfg);
/* From the main thread: phase 1 stops accepting and closes connections,
 * phase 2 ends the loop. */
void stp_worker_request_stop(struct stp_worker *w, unsigned phase);

#endif

/*
 * worker.c - a worker thread: its loop, listeners, command dispatch and the
 * per-iteration flush.
 *
 * Each worker runs one uv loop on its own thread. Commands from other
 * workers arrive through the mailboxes (stp_worker_handle); its net context
 * accepts connections on the worker's own SO_REUSEPORT listeners and calls
 * the STOMP session through stp_session_ops. Once per loop iteration
 * (uv_check, uv_prepare) the worker runs the net's flush point: pending
 * closes finish and every connection that has output is written, one writev
 * each.
 */
#include "broker/worker.h"

#include "broker/broker.h"
#include "broker/cluster.h"
#include "broker/cluster_queue.h"
#include "broker/dedup.h"
#include "broker/dest.h"
#include "broker/session.h"
#include "stampede/buf.h"
#include "stampede/error.h"
#include "stampede/log.h"
#include "stampede/mailbox.h"
#include "stampede/map.h"
#include "stampede/msg.h"
#include "stampede/tls.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

unsigned stp_owner_of(const struct stp_worker *w, const char *dest, size_t len)
{
    /* A durable subscription's queue lives with its topic (durable_sub.c):
     * the topic hands it messages by a direct call, in the topic's order,
     * and a publisher's receipt fences the one worker that stores them. */
    if (len > 6 && dest[1] == 'd' && memcmp(dest, STP_DSUB_PREFIX, 6) == 0) {
        const char *topic = memchr(dest + 6, '/', len - 6);
        if (topic) {
            len -= (size_t)(topic - dest);
            dest = topic;
        }
    }
    return (unsigned)(stp_hash(dest, len) % w->broker_workers);
}

void stp_worker_post(struct stp_worker *w, unsigned to, struct stp_post *cmd)
{
    if (to == w->id) {
        stp_worker_handle(w, w->id, cmd);
        return;
    }
    if (stp_mailbox_post(w->mb, w->id, to, cmd) < 0) {
        /* Out of memory: drop what the command owns rather than leak it. */
        stp_error("mailbox post to worker %u failed: out of memory", to);
        stp_post_release(cmd);
    }
}

void stp_post_release(struct stp_post *cmd)
{
    switch (cmd->type) {
    case STP_WCMD_ROUTE:
    case STP_WCMD_CLUSTER_PUBLISH:
        stp_msg_unref(&cmd->u.route.msg);
        break;
    case STP_WCMD_CQ_PUBLISH:
    case STP_WCMD_CQ_ARRIVE:
        stp_msg_unref(&cmd->u.cq_msg.msg);
        break;
    case STP_WCMD_CQ_SETTLE:
        stp_msg_unref(&cmd->u.cq_settle.msg);
        free(cmd->u.cq_settle.subject);
        cmd->u.cq_settle.subject = NULL;
        break;
    case STP_WCMD_CQ_OPEN:
    case STP_WCMD_CQ_READY:
    case STP_WCMD_CQ_PULL:
    case STP_WCMD_CQ_PULLED:
        free(cmd->u.cq.queue);
        cmd->u.cq.queue = NULL;
        break;
    case STP_WCMD_TOPIC_DELIVER:
        stp_msg_unref(&cmd->u.topic_deliver.msg);
        break;
    case STP_WCMD_QDELIVER:
        stp_msg_unref(&cmd->u.qdeliver.msg);
        break;
    case STP_WCMD_DEAD_SYNC:
    case STP_WCMD_DEAD_DONE:
        stp_msg_unref(&cmd->u.dead.msg);
        break;
    case STP_WCMD_INTEREST:
    case STP_WCMD_PATTERN_INTEREST:
    case STP_WCMD_CLUSTER_INTEREST:
        free(cmd->u.interest.topic);
        cmd->u.interest.topic = NULL;
        break;
    case STP_WCMD_CONSUMER_ADD:
        free(cmd->u.consumer_add.queue);
        cmd->u.consumer_add.queue = NULL;
        free(cmd->u.consumer_add.selector);
        cmd->u.consumer_add.selector = NULL;
        break;
    case STP_WCMD_REFUSED:
        free(cmd->u.refused.topic);
        cmd->u.refused.topic = NULL;
        break;
    case STP_WCMD_DSUB_DEL:
        free(cmd->u.dsub_del.queue);
        cmd->u.dsub_del.queue = NULL;
        break;
    default:
        break; /* owns nothing */
    }
}

void stp_post_drop(void *ctx, unsigned from, const void *p)
{
    struct stp_post cmd;
    (void)ctx;
    (void)from;
    memcpy(&cmd, p, sizeof(cmd));
    stp_post_release(&cmd);
}

bool stp_worker_backlogged(struct stp_worker *w)
{
    return w->broker_workers > 1 && stp_mailbox_backlogged(w->mb, w->id);
}

static void on_queue_delivery(struct stp_worker *w, struct stp_post *cmd)
{
    struct stp_sub *sub =
        stp_map_get(&w->subs_by_key, &cmd->u.qdeliver.sub_key, sizeof(cmd->u.qdeliver.sub_key));
    /* A subscription that is gone (or closing) drops the delivery; its
     * owner puts the message back when it hears the consumer left. */
    if (sub && sub->conn->closing == STP_OPEN)
        stp_session_deliver_queue(sub, cmd->u.qdeliver.msg, cmd->u.qdeliver.tag,
                                  cmd->u.qdeliver.redelivered);
    stp_msg_unref(&cmd->u.qdeliver.msg);
}

static bool over_budget(struct stp_worker *w, size_t percent)
{
    size_t held = stp_msg_bytes_in_use() + stp_durable_pending_bytes();
    return held / 100 > w->cfg->memory_budget / 100 * percent / 100;
}

static void on_budget_timer(uv_timer_t *t)
{
    struct stp_worker *w = t->data;
    stp_worker_maybe_resume(w);
    if (!w->net.paused)
        uv_timer_stop(t);
}

void stp_worker_maybe_resume(struct stp_worker *w)
{
    if (w->net.paused && !stp_worker_backlogged(w) && !over_budget(w, 90))
        stp_net_resume_paused(&w->net);
}

void stp_worker_check_budget(struct stp_worker *w, struct stp_conn *c)
{
    if (!over_budget(w, 100))
        return;
    /* Like RabbitMQ's memory alarm: stop reading publishers until the
     * messages held in the broker fall below 90% of the budget. */
    stp_conn_pause(c);
    if (!uv_is_active((uv_handle_t *)&w->budget_timer))
        uv_timer_start(&w->budget_timer, on_budget_timer, 10, 10);
}

static void on_throttle(struct stp_worker *w, struct stp_post *cmd)
{
    struct stp_conn *c = stp_worker_conn(w, cmd->slot, cmd->gen);
    if (!c)
        return;
    if (cmd->u.throttle.on) {
        c->throttled++;
        stp_conn_pause(c);
    } else if (c->throttled > 0 && --c->throttled == 0) {
        stp_worker_maybe_resume(w);
    }
}

/* --- the broker-wide destination count --- */

bool stp_dest_count_take(struct stp_worker *w)
{
    if (!w->broker)
        return true;
    /* Relaxed: a pure counter, nothing is published through it. Adding
     * first and undoing when over keeps it at most the limit, whatever the
     * other workers do at the same time. */
    size_t n = atomic_fetch_add_explicit(&w->broker->ndests, 1, memory_order_relaxed);
    if (n < w->cfg->max_destinations)
        return true;
    atomic_fetch_sub_explicit(&w->broker->ndests, 1, memory_order_relaxed);
    return false;
}

void stp_dest_count_give(struct stp_worker *w)
{
    if (w->broker)
        atomic_fetch_sub_explicit(&w->broker->ndests, 1, memory_order_relaxed);
}

void stp_dest_refuse(struct stp_worker *w, const struct stp_post *cmd, const char *topic)
{
    struct stp_post r = stp_post_refused(NULL);
    stp_post_to_conn(&r, cmd->worker, cmd->slot, cmd->gen);
    if (topic && !(r.u.refused.topic = strdup(topic)))
        return;
    static _Thread_local uint64_t last_log_ms; /* one line a second per worker */
    uint64_t now = uv_now(&w->loop);
    if (last_log_ms == 0 || now - last_log_ms >= 1000) {
        last_log_ms = now;
        stp_warn("--max-destinations (%zu) reached: a new %s was refused", w->cfg->max_destinations,
                 topic ? "topic" : "queue");
    }
    stp_worker_post(w, cmd->worker, &r);
}

static void refuse_conn(struct stp_conn *c)
{
    if (c && c->closing == STP_OPEN)
        stp_session_error(c, "too many destinations",
                          "The broker holds --max-destinations queues and topics already.", NULL);
}

void stp_dest_on_refused(struct stp_worker *w, struct stp_post *cmd)
{
    char *topic = cmd->u.refused.topic;
    if (cmd->u.refused.why == STP_REFUSE_DSUB_QUOTA) {
        struct stp_conn *c = stp_worker_conn(w, cmd->slot, cmd->gen);
        if (c && c->closing == STP_OPEN)
            stp_session_error(c, "too many durable subscriptions",
                              "This login holds as many durable subscriptions as "
                              "--max-durable-subscriptions-per-login allows; remove one "
                              "(UNSUBSCRIBE with durable:true) first.",
                              NULL);
        return;
    }
    if (cmd->u.refused.why == STP_REFUSE_DSUB_BUSY) {
        struct stp_conn *c = stp_worker_conn(w, cmd->slot, cmd->gen);
        if (c && c->closing == STP_OPEN)
            stp_session_error(c, "durable subscription in use",
                              "Another connection holds this durable subscription; a durable "
                              "subscription has one subscriber at a time.",
                              NULL);
        return;
    }
    if (!topic) {
        refuse_conn(stp_worker_conn(w, cmd->slot, cmd->gen));
        return;
    }
    /* The owner has no record of this topic, so none of this worker's
     * subscribers of it would ever get a message: refuse them all. */
    struct stp_ltopic *lt = stp_ltopic_find(w, topic, strlen(topic));
    for (struct stp_sub *s = lt ? lt->head : NULL; s; s = s->tnext)
        refuse_conn(s->conn);
    stp_post_release(cmd);
}

static void on_route(struct stp_worker *w, unsigned from, struct stp_post *cmd)
{
    struct stp_msg *m = cmd->u.route.msg;
    if (m->dedup_len && stp_dedup_seen(w, m)) {
        /* Seen within --dedup-window: dropped. A receipt the publisher
         * asked for is a fence behind this command: it still comes. */
        stp_post_release(cmd);
        return;
    }
    if (stp_dest_is_queue(m->dest, m->dest_len)) {
        stp_queue_route(w, cmd); /* remembers the id once the queue took it */
    } else {
        if (m->dedup_len)
            stp_dedup_remember(w, m);
        /* A local client's message goes to the other nodes too (one from
         * the cluster, from >= broker_workers, came from there). */
        if (w->broker->cluster && from < w->broker_workers)
            stp_cluster_publish(w, m);
        stp_topic_route(w, cmd);
    }
}

void stp_worker_answer_fence(struct stp_worker *w, const struct stp_post *fence)
{
    /* Everything this connection sent before the fence is done here; with a
     * journal, answered once it is on disk too. */
    struct stp_post ok = *fence;
    ok.type = STP_WCMD_FENCE_OK;
    stp_durable_post(w, &w->dur, fence->worker, &ok, true);
}

void stp_worker_handle(struct stp_worker *w, unsigned from, struct stp_post *cmd)
{
    switch (cmd->type) {
    case STP_WCMD_ROUTE:
        on_route(w, from, cmd);
        break;
    case STP_WCMD_TOPIC_DELIVER:
        stp_ltopic_deliver(w, cmd->u.topic_deliver.msg);
        cmd->u.topic_deliver.msg = NULL;
        break;
    case STP_WCMD_INTEREST:
        stp_topic_interest(w, from, cmd);
        break;
    case STP_WCMD_PATTERN_INTEREST:
        stp_topic_pattern_interest(w, from, cmd);
        break;
    case STP_WCMD_CONSUMER_ADD:
        stp_queue_consumer_add(w, from, cmd);
        break;
    case STP_WCMD_CONSUMER_DEL:
        stp_queue_consumer_del(w, cmd);
        break;
    case STP_WCMD_QDELIVER:
        on_queue_delivery(w, cmd);
        break;
    case STP_WCMD_QWRITTEN:
        stp_queue_written(w, cmd);
        break;
    case STP_WCMD_QACK:
        stp_queue_ack(w, cmd);
        break;
    case STP_WCMD_FENCE:
        /* With --cluster, a fence behind queue messages JetStream has not
         * stored yet waits for them (cluster_queue.c), and one behind new
         * interest until NATS has it (cluster.c); then it comes back through
         * stp_worker_answer_fence. */
        if (!w->broker->cluster || (!stp_cq_hold_fence(w, cmd) && !stp_cluster_hold_fence(w, cmd)))
            stp_worker_answer_fence(w, cmd);
        break;
    case STP_WCMD_CQ_PUBACK:
    case STP_WCMD_CQ_ARRIVE:
    case STP_WCMD_CQ_READY:
    case STP_WCMD_CQ_PULLED:
        stp_cq_handle(w, cmd);
        break;
    case STP_WCMD_CLUSTER_FLUSHED:
        stp_cluster_flushed(w);
        break;
    case STP_WCMD_FENCE_FAIL: {
        struct stp_conn *c = stp_worker_conn(w, cmd->slot, cmd->gen);
        if (c && c->closing == STP_OPEN)
            stp_session_fence_fail(c, cmd->u.fence.id, cmd->u.fence.err);
        break;
    }
    case STP_WCMD_NOT_STORED: {
        struct stp_conn *c = stp_worker_conn(w, cmd->slot, cmd->gen);
        if (c && c->closing == STP_OPEN)
            stp_session_not_stored(c, cmd->u.not_stored.err, cmd->u.not_stored.fence);
        break;
    }
    case STP_WCMD_FENCE_OK: {
        struct stp_conn *c = stp_worker_conn(w, cmd->slot, cmd->gen);
        if (c && c->closing == STP_OPEN)
            stp_session_fence_ok(c, cmd->u.fence.id);
        break;
    }
    case STP_WCMD_THROTTLE:
        on_throttle(w, cmd);
        break;
    case STP_WCMD_DEAD_SYNC: {
        /* The dead letter routed just before is in this worker's queue (and
         * journal): answer once it is on disk. */
        struct stp_post done = *cmd;
        done.type = STP_WCMD_DEAD_DONE;
        done.u.dead.ok = true;
        stp_durable_post(w, &w->dur, from, &done, true);
        break;
    }
    case STP_WCMD_DEAD_DONE:
        stp_queue_dead_done(w, cmd);
        break;
    case STP_WCMD_REFUSED:
        stp_dest_on_refused(w, cmd);
        break;
    case STP_WCMD_DSUB_DEL:
        stp_queue_dsub_del(w, cmd);
        break;
    default:
        stp_error("unknown command type %d from worker %u", cmd->type, from);
        break;
    }
}

/* --- loop plumbing --- */

static void on_mailbox(void *ctx, unsigned from, const void *p)
{
    struct stp_post cmd;
    memcpy(&cmd, p, sizeof(cmd));
    stp_worker_handle(ctx, from, &cmd);
}

static void on_unblocked(void *ctx)
{
    stp_worker_maybe_resume(ctx);
}

/* After the poll phase: write what I/O callbacks and mailboxes produced. */
static void on_check(uv_check_t *h)
{
    struct stp_worker *w = h->data;
    stp_durable_flush(w);
    stp_net_flush(&w->net);
}

/* Before the poll phase: write what timers produced, before the loop sleeps. */
static void on_prepare(uv_prepare_t *h)
{
    struct stp_worker *w = h->data;
    stp_durable_flush(w);
    stp_net_flush(&w->net);
}

static void on_drain_timer(uv_timer_t *t)
{
    struct stp_worker *w = t->data;
    stp_net_close_all(&w->net, STP_CLOSE_AFTER_FLUSH);
    if (stp_net_idle(&w->net) && !w->drained_reported) {
        w->drained_reported = true;
        atomic_fetch_add_explicit(&w->broker->drained, 1, memory_order_release);
    }
    if (w->stop_phase == 2) {
        uv_timer_stop(t);
        uv_close((uv_handle_t *)t, NULL);
        stp_worker_close(w);
    }
}

void stp_worker_close(struct stp_worker *w)
{
    uv_close((uv_handle_t *)&w->flush_check, NULL);
    uv_close((uv_handle_t *)&w->flush_prepare, NULL);
    uv_close((uv_handle_t *)&w->budget_timer, NULL);
    uv_close((uv_handle_t *)&w->qwork_idle, NULL);
    uv_close((uv_handle_t *)&w->stats_timer, NULL);
    uv_close((uv_handle_t *)&w->cq_timer, NULL);
    uv_close((uv_handle_t *)&w->stop_async, NULL);
    stp_mailbox_detach(w->mb, w->id);
    stp_net_close_handles(&w->net);
    stp_durable_stop(w);
}

/* Phase 1 (stopping): stop accepting, flush and close every connection,
 * keep serving the mailboxes. Phase 2 (the main thread saw every worker
 * drained, or gave up waiting): close the remaining handles; the loop ends. */
static void on_stop(uv_async_t *a)
{
    struct stp_worker *w = a->data;
    if (!w->stopping) {
        w->stopping = true;
        stp_net_stop_listening(&w->net);
        uv_timer_init(&w->loop, &w->drain_timer);
        w->drain_timer.data = w;
        uv_timer_start(&w->drain_timer, on_drain_timer, 0, 20);
    }
    w->stop_phase = atomic_load_explicit(&w->stop_request, memory_order_acquire);
}

/* After a backlog drained (message bytes fell to a quarter of their peak,
 * and the peak was large), give the freed pages back to the system: glibc
 * keeps them otherwise. Worker 0 only, at most once a second, off the
 * message path. */
#define TRIM_PEAK_MIN (64u << 20)

static void maybe_trim(struct stp_worker *w)
{
    size_t bytes = stp_msg_bytes_in_use();
    if (bytes > w->trim_peak)
        w->trim_peak = bytes;
    if (w->trim_peak < TRIM_PEAK_MIN || bytes > w->trim_peak / 4)
        return;
    malloc_trim(0);
    w->trim_peak = bytes;
}

/* Once a second: measure how late the loop runs timers, publish the deepest
 * queues for /metrics, and (worker 0) return memory after a drained backlog. */
static void on_cq_timer(uv_timer_t *t)
{
    stp_cq_tick(t->data);
}

static void on_stats_timer(uv_timer_t *t)
{
    struct stp_worker *w = t->data;
    if (w->id == 0)
        maybe_trim(w);
    stp_queue_expire(w);
    stp_dedup_expire(w);
    stp_durable_compact(w);
    uint64_t now = uv_hrtime();
    uint64_t lag = now > w->stats_due_ns ? (now - w->stats_due_ns) / 1000 : 0;
    atomic_store_explicit(&w->stats.loop_lag_us, lag, memory_order_relaxed);
    w->stats_due_ns = now + 1000000000ULL;
    struct stp_qsnap snap[STP_QSNAP_MAX];
    size_t n = stp_queue_snapshot(w, snap, STP_QSNAP_MAX);
    uv_mutex_lock(&w->qsnap_lock);
    memcpy(w->qsnap, snap, n * sizeof(snap[0]));
    w->nqsnap = n;
    uv_mutex_unlock(&w->qsnap_lock);
}

static int open_listeners(struct stp_worker *w)
{
    struct stp_broker *b = w->broker;
    for (unsigned l = 0; l < w->cfg->nlisten; l++) {
        int rc = stp_net_listen(&w->net, l, b->fds[l * b->nworkers + w->id]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void worker_main(void *arg)
{
    struct stp_worker *w = arg;
    stp_log_set_thread_worker((int)w->id);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    stp_worker_fini(w);
}

void stp_worker_fini(struct stp_worker *w)
{
    stp_queues_free(w);
    stp_durable_free(w);
    stp_dedup_free(w); /* after the journal: its records stay for the next start */
    stp_topics_free(w);
    stp_cq_free(w);
    free(w->held_fences); /* fences own nothing */
    w->held_fences = NULL;
    stp_topic_patterns_free(w);
    stp_ltopics_free(w);
    stp_map_free(&w->subs_by_key);
    stp_buf_free(&w->scratch);
    stp_net_free(&w->net);
    uv_loop_close(&w->loop);
}

/* Open the journal and put back what the recovery found (the references
 * in w->restore are taken over, the array freed). */
static int restore_queues(struct stp_worker *w)
{
    int rc = w->journal_dir ? stp_durable_open(w, w->journal_dir, w->journal_next_lsn) : 0;
    uint64_t t0 = uv_hrtime();
    for (size_t i = 0; i < w->nrestore; i++) {
        struct stp_msg *m = w->restore[i];
        if (rc == 0)
            stp_durable_adopt(w, m);
        if (rc < 0 || stp_queue_restore(w, m) < 0) {
            if (rc == 0)
                stp_error("recovery: no room for a message of %s; it stays in the journal",
                          m->dest);
            stp_msg_unref(&m);
        }
    }
    if (w->nrestore)
        stp_debug("recovery: worker %u took back %zu messages in %llu ms", w->id, w->nrestore,
                  (unsigned long long)((uv_hrtime() - t0) / 1000000));
    free(w->restore);
    w->restore = NULL;
    w->nrestore = 0;
    for (size_t i = 0; i < w->restore_dedup.n; i++) {
        const struct stp_recovered_dedup *d = w->restore_dedup.v[i];
        stp_dedup_restore(w, d->data, d->queue_len, d->data + d->queue_len, d->id_len, d->seen_ms,
                          rc == 0 ? d->lsn : 0);
    }
    stp_recovered_dedups_free(&w->restore_dedup);
    free(w->journal_segs.lsns);
    free(w->journal_segs.msgs);
    w->journal_segs = (struct stp_recovery_segs){0};
    return rc;
}

int stp_worker_init(struct stp_worker *w)
{
    int rc = uv_loop_init(&w->loop);
    if (rc < 0)
        return stp_err_from_uv(rc);
    w->loop.data = w;
    uv_async_init(&w->loop, &w->stop_async, on_stop);
    w->stop_async.data = w;
    uv_timer_init(&w->loop, &w->budget_timer);
    w->budget_timer.data = w;
    uv_idle_init(&w->loop, &w->qwork_idle);
    w->qwork_idle.data = w;
    uv_timer_init(&w->loop, &w->stats_timer);
    w->stats_timer.data = w;
    w->stats_due_ns = uv_hrtime() + 1000000000ULL;
    uv_timer_start(&w->stats_timer, on_stats_timer, 1000, 1000);
    uv_timer_init(&w->loop, &w->cq_timer);
    w->cq_timer.data = w;
    if (w->broker->cluster) {
        /* Cluster queues' leases must be renewed well within the ack wait:
         * a quarter of it, at most a second. */
        uint64_t every = w->cfg->cluster_ack_wait_ms / 4;
        every = every < 100 ? 100 : every > 1000 ? 1000 : every;
        uv_timer_start(&w->cq_timer, on_cq_timer, every, every);
    }
    uv_mutex_init(&w->qsnap_lock);
    rc = stp_net_init(&w->net, &w->loop, w->cfg, &stp_session_ops);
    if (rc < 0)
        return rc;
    uv_check_init(&w->loop, &w->flush_check);
    w->flush_check.data = w;
    uv_check_start(&w->flush_check, on_check);
    uv_prepare_init(&w->loop, &w->flush_prepare);
    w->flush_prepare.data = w;
    uv_prepare_start(&w->flush_prepare, on_prepare);
    rc = stp_mailbox_attach(w->mb, w->id, &w->loop, on_mailbox, on_unblocked, w);
    if (rc == 0)
        rc = restore_queues(w);
    /* Last: /metrics on other workers reads qsnap_lock and the journal's
     * counters only once it sees this (see worker.h). */
    if (rc == 0)
        atomic_store_explicit(&w->qsnap_ready, true, memory_order_release);
    return rc;
}

int stp_worker_start(struct stp_worker *w)
{
    int rc = stp_worker_init(w);
    if (rc == 0)
        rc = open_listeners(w);
    if (rc < 0)
        return rc;
    rc = uv_thread_create(&w->thread, worker_main, w);
    return rc < 0 ? stp_err_from_uv(rc) : 0;
}

void stp_worker_reload_tls(struct stp_worker *w, unsigned listener, struct stp_tls_config *cfg)
{
    stp_net_reload_tls(&w->net, listener, cfg);
}

void stp_worker_request_stop(struct stp_worker *w, unsigned phase)
{
    atomic_store_explicit(&w->stop_request, phase, memory_order_release);
    uv_async_send(&w->stop_async);
}

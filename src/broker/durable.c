/*
 * durable.c - a worker's journal: appending its queues' records, holding
 * posts until the records before them are on disk, and what a lost batch
 * means for the clients (see durable.h).
 */
#include "broker/durable.h"

#include "broker/dest.h"
#include "broker/worker.h"
#include "stampede/error.h"
#include "stampede/log.h"
#include "stampede/msg.h"
#include "store/journal.h"

#include <string.h>

static struct stp_durable *dur(struct stp_worker *w)
{
    return &w->dur;
}

/* Relaxed: a figure compared against a budget, like stp_msg_bytes_in_use. */
static atomic_size_t pending_bytes;

size_t stp_durable_pending_bytes(void)
{
    return atomic_load_explicit(&pending_bytes, memory_order_relaxed);
}

/* Publish this journal's unsynced bytes (at the flush point and when a
 * batch completes: often enough for a budget checked every 10 ms). */
static void tell_pending(struct stp_durable *d)
{
    size_t now = d->j ? stp_journal_pending_bytes(d->j) : 0;
    if (now == d->pending_told)
        return;
    if (now > d->pending_told)
        atomic_fetch_add_explicit(&pending_bytes, now - d->pending_told, memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(&pending_bytes, d->pending_told - now, memory_order_relaxed);
    d->pending_told = now;
}

/* Post the waits whose records are settled (lsn <= upto). */
static void release_waits(struct stp_worker *w, uint64_t upto)
{
    struct stp_durable *d = dur(w);
    while (d->waits.count > 0 && stp_durable_waits_at(&d->waits, 0)->lsn <= upto) {
        struct stp_durable_wait wt = stp_durable_waits_pop_front(&d->waits);
        stp_worker_post(w, wt.to, &wt.cmd);
    }
}

static void drop_pubs(struct stp_durable *d, uint64_t upto)
{
    while (d->pubs.count > 0 && stp_durable_pubs_at(&d->pubs, 0)->lsn <= upto)
        (void)stp_durable_pubs_pop_front(&d->pubs);
}

static void on_synced(void *ctx, uint64_t synced)
{
    struct stp_worker *w = ctx;
    struct stp_durable *d = dur(w);
    if (synced > d->resolved)
        d->resolved = synced;
    drop_pubs(d, synced);
    release_waits(w, d->resolved);
    tell_pending(d);
}

/* The batch [first, last] is lost: its publishers get an ERROR (their
 * messages may still be delivered from memory, but were not stored), the
 * fences over it fail, deliveries waiting for it go out. */
static void on_failed(void *ctx, uint64_t first, uint64_t last, int err)
{
    struct stp_worker *w = ctx;
    struct stp_durable *d = dur(w);
    if (!stp_durable_failed(d))
        stp_error("journal of worker %u: %s; persistent messages are refused until it "
                  "can write again",
                  w->id, stp_strerror(err));
    atomic_store_explicit(&d->failed, true, memory_order_relaxed);
    d->fail_err = err;
    /* Fences first: a publisher that asked for a receipt gets the ERROR in
     * its place, with the receipt-id; NOT_STORED then finds it closing. */
    while (d->waits.count > 0 && stp_durable_waits_at(&d->waits, 0)->lsn <= last) {
        struct stp_durable_wait wt = stp_durable_waits_pop_front(&d->waits);
        if (wt.cmd.type == STP_WCMD_FENCE_OK) {
            wt.cmd.type = STP_WCMD_FENCE_FAIL;
            wt.cmd.u.fence.err = err;
        } else if (wt.cmd.type == STP_WCMD_DEAD_DONE) {
            wt.cmd.u.dead.ok = false; /* the original stays in its journal */
        }
        stp_worker_post(w, wt.to, &wt.cmd);
    }
    while (d->pubs.count > 0 && stp_durable_pubs_at(&d->pubs, 0)->lsn <= last) {
        struct stp_durable_pub p = stp_durable_pubs_pop_front(&d->pubs);
        if (p.lsn < first)
            continue;
        struct stp_post cmd = stp_post_not_stored(err, p.fence);
        stp_post_to_conn(&cmd, p.worker, p.slot, p.gen);
        stp_worker_post(w, p.worker, &cmd);
    }
    if (last > d->resolved)
        d->resolved = last;
    tell_pending(d);
}

static void on_recovered(void *ctx)
{
    struct stp_worker *w = ctx;
    stp_info("journal of worker %u writes again; persistent messages are accepted", w->id);
    atomic_store_explicit(&dur(w)->failed, false, memory_order_relaxed);
}

int stp_durable_open(struct stp_worker *w, const char *dir, uint64_t next_lsn)
{
    struct stp_durable *d = dur(w);
    struct stp_journal_opts o = {
        .dir = dir,
        .loop = &w->loop,
        .next_lsn = next_lsn ? next_lsn : 1,
        .ctx = w,
        .on_synced = on_synced,
        .on_failed = on_failed,
        .on_recovered = on_recovered,
        .seg_lsns = w->journal_segs.lsns,
        .seg_msgs = w->journal_segs.msgs,
        .nseg = w->journal_segs.n,
    };
    d->resolved = o.next_lsn - 1;
    return stp_journal_open(&d->j, &o);
}

void stp_durable_adopt(struct stp_worker *w, const struct stp_msg *m)
{
    if (dur(w)->j && m->jlsn)
        stp_journal_adopt(dur(w)->j, m->jlsn);
}

void stp_durable_flush(struct stp_worker *w)
{
    if (dur(w)->j) {
        stp_journal_flush(dur(w)->j);
        tell_pending(dur(w));
    }
}

void stp_durable_stop(struct stp_worker *w)
{
    struct stp_durable *d = dur(w);
    if (!d->j)
        return;
    stp_journal_stop(d->j);
    /* Whatever still waits is on disk now (or lost): let it go. */
    release_waits(w, UINT64_MAX);
}

void stp_durable_free(struct stp_worker *w)
{
    struct stp_durable *d = dur(w);
    while (d->waits.count > 0) {
        struct stp_durable_wait wt = stp_durable_waits_pop_front(&d->waits);
        stp_post_release(&wt.cmd);
    }
    stp_durable_waits_free(&d->waits);
    stp_durable_pubs_free(&d->pubs);
    stp_journal_free(d->j);
    d->j = NULL;
    tell_pending(d);
}

void stp_durable_post_slow(struct stp_worker *w, unsigned to, struct stp_post *cmd, bool wait)
{
    struct stp_durable *d = dur(w);
    uint64_t lsn = d->j ? stp_journal_appended(d->j) : 0;
    bool hold = d->waits.count > 0 || (wait && lsn > d->resolved);
    if (!hold) {
        stp_worker_post(w, to, cmd);
        return;
    }
    if (stp_durable_waits_push_back(&d->waits, (struct stp_durable_wait){lsn, to, *cmd}) < 0) {
        /* Out of memory: a fence that cannot wait fails rather than lie. */
        if (cmd->type == STP_WCMD_FENCE_OK) {
            cmd->type = STP_WCMD_FENCE_FAIL;
            cmd->u.fence.err = STP_ENOMEM;
        }
        stp_worker_post(w, to, cmd);
    }
}

/* Append r; 0 when the journal refused it. */
static uint64_t append(struct stp_durable *d, struct stp_jrec *r)
{
    return stp_durable_failed(d) ? 0 : stp_journal_append(d->j, r);
}

void stp_durable_msg_record(struct stp_jrec *r, const struct stp_msg *m)
{
    *r = (struct stp_jrec){
        .type = STP_JREC_MSG,
        .flags = (uint8_t)((m->needs_escape ? STP_JMSG_NEEDS_ESCAPE : 0) |
                           (m->binding ? STP_JMSG_BINDING : 0)),
        .key = m->jkey,
        .expires_ms = m->expires_ms,
        .deliveries = m->deliveries,
        .body_len = (uint32_t)m->body_len,
        .queue = m->dest,
        .queue_len = m->dest_len,
        .tail = m->tail,
        .tail_len = (uint32_t)m->tail_len,
    };
}

int stp_durable_store(struct stp_worker *w, struct stp_msg *m, const struct stp_post *from)
{
    struct stp_durable *d = dur(w);
    if (!d->j || !m->persistent)
        return 0;
    if (stp_durable_failed(d))
        return d->fail_err ? d->fail_err : STP_EIO;
    struct stp_jrec r;
    m->jkey = 0;
    stp_durable_msg_record(&r, m);
    uint64_t lsn = append(d, &r);
    if (!lsn)
        return STP_ENOMEM;
    m->jkey = r.key;
    m->jlsn = lsn;
    if (from && from->worker != UINT16_MAX) {
        struct stp_durable_pub p = {lsn, m->pub_fence, from->worker, from->slot, from->gen};
        (void)stp_durable_pubs_push_back(&d->pubs, p); /* ENOMEM: not told of a loss */
    }
    return 0;
}

bool stp_durable_delivered_(struct stp_worker *w, struct stp_msg *m)
{
    struct stp_durable *d = dur(w);
    if (!d->j || !m->jkey)
        return false;
    struct stp_jrec r = {.type = STP_JREC_DELIVER, .key = m->jkey};
    return append(d, &r) != 0;
}

void stp_durable_settled_(struct stp_worker *w, struct stp_msg *m)
{
    struct stp_durable *d = dur(w);
    if (!d->j || !m->jkey)
        return;
    struct stp_jrec r = {.type = STP_JREC_SETTLE, .key = m->jkey};
    /* Lost (failed journal): the message may come back after a restart,
     * marked redelivered; at least once, never lost. */
    (void)append(d, &r);
    stp_journal_release(d->j, m->jlsn);
    m->jkey = m->jlsn = 0;
}

uint64_t stp_durable_dedup(struct stp_worker *w, const char *dest, size_t dest_len, const char *id,
                           size_t id_len, uint64_t seen_ms)
{
    struct stp_durable *d = dur(w);
    if (!d->j)
        return 0;
    struct stp_jrec r = {.type = STP_JREC_DEDUP,
                         .seen_ms = seen_ms,
                         .queue = dest,
                         .queue_len = (uint32_t)dest_len,
                         .id = id,
                         .id_len = (uint32_t)id_len};
    return append(d, &r);
}

/* Copy m's record forward (compaction): a new MSG with the same key. */
static void copy_forward(struct stp_worker *w, struct stp_msg *m)
{
    struct stp_durable *d = dur(w);
    struct stp_jrec r;
    stp_durable_msg_record(&r, m);
    uint64_t lsn = append(d, &r);
    if (!lsn)
        return; /* stays where it is; the segment stays too */
    stp_journal_release(d->j, m->jlsn);
    m->jlsn = lsn;
}

struct compact_ctx {
    struct stp_worker *w;
    uint64_t below;
};

static void compact_one(void *ctx, struct stp_msg *m)
{
    struct compact_ctx *cc = ctx;
    if (m->jkey && m->jlsn < cc->below)
        copy_forward(cc->w, m);
}

void stp_durable_compact(struct stp_worker *w)
{
    struct stp_durable *d = dur(w);
    if (!d->j || stp_durable_failed(d))
        return;
    struct compact_ctx cc = {w, stp_journal_compact_below(d->j)};
    if (cc.below)
        stp_queue_foreach_msg(w, compact_one, &cc);
}

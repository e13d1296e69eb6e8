/*
 * journal_int.h - the journal's state, shared by its loop side (journal.c,
 * segs.c) and its writer thread (writer.c).
 *
 * Who owns what: the loop thread owns every field under "loop side" and
 * the batch in j->open; the writer thread owns the fields under "writer
 * side" and the batch it was handed (j->job) until it reports it done. The
 * handoff goes through j->mu: the loop sets job and signals cond_job; the
 * writer clears job, sets done, signals cond_done and sends the async. The
 * mutex orders the batch's contents both ways.
 */
#ifndef STP_STORE_JOURNAL_INT_H
#define STP_STORE_JOURNAL_INT_H

#include "store_internal.h"

#include "stampede/buf.h"

/* From byte off of its batch on, records go to a new segment named lsn. */
struct jroll {
    size_t off;
    uint64_t lsn;
};

/* Records handed to the writer in one piece: one fdatasync covers them. */
struct jbatch {
    struct stp_buf buf;  /* encoded records */
    uint64_t first;      /* lsn of the first record; 0: no records */
    uint64_t last;       /* lsn of the last record */
    struct jroll *rolls; /* in offset order */
    size_t nrolls, rolls_cap;
    uint64_t *unlinks; /* segments to remove once the batch is on disk */
    size_t nunlinks, unlinks_cap;
    bool probe; /* a NOOP written to test a failed journal */
    int err;    /* the writer's verdict: 0 or a negative STP_E* code */
};

/* A segment as the loop sees it. */
struct jseg {
    uint64_t first_lsn; /* its name */
    uint64_t live;      /* MSG records not released */
    uint64_t msgs;      /* MSG records in all */
    uint64_t bytes;     /* bytes assigned to it (decides the roll) */
};

struct stp_journal {
    /* --- loop side --- */
    uv_loop_t *loop;
    uv_async_t async; /* the writer finished a batch */
    uv_timer_t retry; /* failed: the next probe */
    char *dir;
    size_t segment_bytes;
    uint64_t retry_ms;
    void *ctx;
    void (*on_synced)(void *ctx, uint64_t synced);
    void (*on_failed)(void *ctx, uint64_t first, uint64_t last, int err);
    void (*on_recovered)(void *ctx);
    uint64_t next_lsn; /* assigned by the next append or probe */
    uint64_t appended; /* lsn of the last record appended by the caller */
    uint64_t synced;   /* last value given to on_synced */
    bool failed, busy, stopped;
    struct jbatch *open;   /* appends go here */
    struct jbatch *flight; /* with the writer (busy) or idle and empty */
    struct jbatch batches[2];
    struct jseg *segs; /* alive, by first_lsn; the last one is current */
    size_t nsegs, segs_cap;
    uint64_t *dead; /* dead segments whose unlink is not handed over yet */
    size_t ndead, dead_cap;
    struct stp_journal_stats stats;
    /* At open only: the replay's MSG counts (opts.seg_lsns/seg_msgs). */
    const uint64_t *seg_lsns, *seg_msgs;
    size_t nseg_known;

    /* --- handoff (under mu) --- */
    uv_mutex_t mu;
    uv_cond_t cond_job, cond_done;
    struct jbatch *job; /* for the writer */
    bool done;          /* the writer finished the last job */
    bool quit;
    uv_thread_t thread;
    bool thread_started;

    /* --- writer side --- */
    int dirfd;
    int cur_fd; /* the segment being appended to; -1 after a failure */
    uint64_t cur_lsn;
    uint64_t cur_size;
    bool cur_dirty; /* written since its last fdatasync */
    bool probing;   /* the batch being written is a probe */
};

/* The writer thread's body (writer.c). */
void stp_journal_writer_main(void *arg);
/* Create segment lsn in the directory (O_EXCL) and sync the directory:
 * the fd, or a negative STP_E* code. Writer, or open before the writer. */
int stp_journal_create_segment(struct stp_journal *j, uint64_t lsn);

/* Append a segment entry (segs.c): 0 or STP_ENOMEM. */
int stp_jseg_push(struct stp_journal *j, uint64_t first_lsn, uint64_t msgs, uint64_t bytes);
/* Move the dead segments at the head (no live record, not current) to
 * j->dead, to be unlinked after the next batch handed over. */
void stp_jseg_reap(struct stp_journal *j);

/* Relaxed: the counters are statistics, read for display; nothing else
 * is ordered by them. */
static inline void stp_jstat_add(atomic_uint_least64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline void stp_jstat_sub(atomic_uint_least64_t *c, uint64_t n)
{
    atomic_fetch_sub_explicit(c, n, memory_order_relaxed);
}

#endif

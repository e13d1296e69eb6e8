/*
 * recover.h - the data directory at start: lock it, replay every worker's
 * journal, and hand each worker the persistent messages of the queues it
 * owns (issue 12).
 *
 * DIR/LOCK      flock'ed for the broker's lifetime: one broker per DIR.
 * DIR/CURRENT   "stampede-journal 1", "generation G", "workers N" lines.
 * DIR/gG/wI/    worker I's journal segments (src/store).
 *
 * The journals are replayed in parallel, one thread each. A queue is owned
 * by hash(name) % workers, so when the worker count changed since the last
 * run the live messages are rewritten, in order, into a new generation's
 * journals (one per new owner), CURRENT is switched atomically (rename) and
 * the old generation removed: a crash during the rewrite leaves the old
 * generation in force. Main thread, before the workers start.
 */
#ifndef STP_BROKER_RECOVER_H
#define STP_BROKER_RECOVER_H

#include <stddef.h>
#include <stdint.h>

struct stp_broker;
struct stp_worker;
struct stp_msg;

/* MSG records per existing segment of a journal, by segment name: the
 * journal then need not read its files again at open to count them. */
struct stp_recovery_segs {
    uint64_t *lsns, *msgs;
    size_t n, cap;
};

/* A DEDUP record the replay found still within --dedup-window (one
 * allocation: the queue name, then the id). */
struct stp_recovered_dedup {
    uint64_t seen_ms;
    uint64_t lsn; /* its record in the journal the worker opens */
    uint16_t queue_len, id_len;
    char data[];
};

/* A list of them, in journal order. */
struct stp_recovered_dedups {
    struct stp_recovered_dedup **v;
    size_t n, cap;
};

/* What recovery found and hands over, per worker of this run. */
struct stp_recovery {
    int lock_fd; /* -1: no data dir */
    unsigned nworkers;
    char **dirs; /* journal directory of each worker */
    uint64_t *next_lsn;
    struct stp_msg ***msgs; /* references, queue order within each queue */
    size_t *nmsgs;
    struct stp_recovery_segs *segs;
    struct stp_recovered_dedups *dedups; /* de-duplication ids, per worker */
    /* Figures for the log and /metrics. */
    uint64_t messages, queues_hint, damaged_records, damaged_bytes, truncated_bytes, bad_records;
    uint64_t bytes_read, elapsed_ms;
    unsigned generation;
};

/* With cfg->data_dir: lock it and recover (b->nworkers is this run's count).
 * 0, or a negative code after one line on stderr (exit 2). */
int stp_recover(struct stp_broker *b);
/* Give worker w its journal directory, next lsn and messages (moved). */
void stp_recover_hand_over(struct stp_broker *b, struct stp_worker *w);
/* Free a list of recovered DEDUP records. */
void stp_recovered_dedups_free(struct stp_recovered_dedups *l);
/* Free what is left and release the lock. */
void stp_recover_release(struct stp_broker *b);

#endif

/*
 * durable.h - a worker's journal (issue 12): the records of its queues'
 * persistent messages, and the posts that must wait until they are on disk.
 *
 * With --data-dir every worker has a journal (src/store) for the queues it
 * owns. A persistent message gets a MSG record when it enters its queue, a
 * DELIVER record each time it is handed to a consumer and a SETTLE record
 * when it leaves for good. Receipts are durability barriers: the owner
 * answers a FENCE only once every record appended before it is on disk
 * (stp_durable_post with wait), and a journaled message is handed to its
 * consumer only once its DELIVER record is (so a message seen by a client
 * comes back after a crash marked redelivered). Posts that wait keep their
 * order: once one waits, every later one through here waits behind it.
 *
 * Everything here runs on the worker's thread. Without a data dir the
 * journal is NULL and every function is a cheap no-op or a plain post.
 */
#ifndef STP_BROKER_DURABLE_H
#define STP_BROKER_DURABLE_H

#include "broker/cmd.h"
#include "stampede/deque.h"
#include "stampede/msg.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct stp_worker;
struct stp_msg;
struct stp_journal;

/* A post held until the journal is on disk up to lsn. */
struct stp_durable_wait {
    uint64_t lsn;
    unsigned to;
    struct stp_post cmd;
};
STP_DEQUE_DEFINE(stp_durable_waits, struct stp_durable_wait)

/* A persistent message appended and not yet on disk, and who sent it (told
 * when its batch is lost). */
struct stp_durable_pub {
    uint64_t lsn;
    uint64_t fence; /* the message's pub_fence */
    uint16_t worker;
    uint32_t slot, gen;
};
STP_DEQUE_DEFINE(stp_durable_pubs, struct stp_durable_pub)

struct stp_durable {
    struct stp_journal *j; /* NULL: no data dir */
    struct stp_durable_waits waits;
    struct stp_durable_pubs pubs;
    /* Records up to here are settled one way or the other: on disk, or lost
     * and answered (a fence over them fails). A new fence waits only for
     * records after it. */
    uint64_t resolved;
    /* The journal refuses appends until a probe succeeds. Written by the
     * worker, read (relaxed) by /healthz on any worker. */
    atomic_bool failed;
    int fail_err;
    size_t pending_told; /* this journal's share of stp_durable_pending_bytes */
};

/* Open the worker's journal in dir (start of the worker, its thread or the
 * test's). next_lsn: after the recovery's last lsn. 0 or a negative code. */
int stp_durable_open(struct stp_worker *w, const char *dir, uint64_t next_lsn);
/* The recovery found this message live in the journal at m->jlsn. */
void stp_durable_adopt(struct stp_worker *w, const struct stp_msg *m);
/* At the loop's flush point: hand appended records to the writer. */
void stp_durable_flush(struct stp_worker *w);
/* Stop (write what is appended, join the writer, close handles) and free. */
void stp_durable_stop(struct stp_worker *w);
void stp_durable_free(struct stp_worker *w);

/* Bytes all journals hold in memory, appended and not yet on disk. They
 * count toward --memory-budget: publishers that outrun the disk without
 * asking for receipts wait like publishers that outrun their consumers.
 * Any thread (relaxed). */
size_t stp_durable_pending_bytes(void);

/* Post cmd to worker `to`; with wait, only once every record appended so
 * far is on disk. A post behind a waiting one waits too (order). d is the
 * worker's (w->dur): the common case, nothing to wait for, stays inline. */
void stp_durable_post_slow(struct stp_worker *w, unsigned to, struct stp_post *cmd, bool wait);
void stp_worker_post(struct stp_worker *w, unsigned to, struct stp_post *cmd);
static inline void stp_durable_post(struct stp_worker *w, struct stp_durable *d, unsigned to,
                                    struct stp_post *cmd, bool wait)
{
    if (d->waits.count == 0 && (!wait || !d->j))
        stp_worker_post(w, to, cmd);
    else
        stp_durable_post_slow(w, to, cmd, wait);
}

/* A message enters a queue of this worker: journal it when it is
 * persistent and there is a journal (from: the ROUTE command, whose
 * connection is told if its batch is lost). 0, or a negative code when the
 * journal refuses it (failed): the caller must not keep the message. */
int stp_durable_store(struct stp_worker *w, struct stp_msg *m, const struct stp_post *from);
/* m is handed to a consumer once more: true when its DELIVER record was
 * appended (then the delivery must wait: stp_durable_post with wait). */
bool stp_durable_delivered_(struct stp_worker *w, struct stp_msg *m);
/* m left its queue for good (acked, written with auto ack, expired, dead-
 * lettered): SETTLE record, and its MSG record is no longer needed. */
void stp_durable_settled_(struct stp_worker *w, struct stp_msg *m);
/* The MSG record of m (its key, expiry, deliveries, queue and tail); the
 * recovery writes re-homed messages with it too. */
struct stp_jrec;
void stp_durable_msg_record(struct stp_jrec *r, const struct stp_msg *m);
/* A DEDUP record (dedup.c): the id of a message just journaled, first seen
 * at seen_ms on queue dest. Its lsn (0: not journaled), which counts as
 * live in its segment until stp_journal_release. */
uint64_t stp_durable_dedup(struct stp_worker *w, const char *dest, size_t dest_len, const char *id,
                           size_t id_len, uint64_t seen_ms);
/* Once a second: copy forward the live messages pinning old segments. */
void stp_durable_compact(struct stp_worker *w);

/* Inline front doors: only a journaled message (jkey set) goes further. */
static inline bool stp_durable_delivered(struct stp_worker *w, struct stp_msg *m)
{
    return m->jkey ? stp_durable_delivered_(w, m) : false;
}

static inline void stp_durable_settled(struct stp_worker *w, struct stp_msg *m)
{
    if (m->jkey)
        stp_durable_settled_(w, m);
}

static inline bool stp_durable_on(const struct stp_durable *d)
{
    return d->j != NULL;
}

/* Any thread (relaxed: a status, nothing is published through it). */
static inline bool stp_durable_failed(const struct stp_durable *d)
{
    return atomic_load_explicit(&d->failed, memory_order_relaxed);
}

#endif

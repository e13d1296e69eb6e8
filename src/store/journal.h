/*
 * journal.h - the durable journal: append-only segment files of checksummed
 * records, written and fdatasync'ed off the event loop (group commit).
 *
 * A library below the broker: it knows records, files and a uv loop, not
 * STOMP, queues or connections. The broker runs one journal per worker; the
 * worker owns it and calls every function here on its own loop thread,
 * except stp_journal_replay (any thread, before a journal is opened on the
 * directory) and the stats (any thread).
 *
 * Files: DIR/%016llx.seg, named by the lsn of the first record the segment
 * was opened for. A journal never appends to a segment it did not create:
 * opening one starts a new segment.
 *
 * Record (little endian), 32-byte header then payload:
 *   magic: the 4 bytes 'S' 'T' 'P' 'J' | u32 crc32c of every byte after
 *   this field through the end of the payload |
 *   u32 payload length | u8 type | u8 flags | u16 0 | u64 lsn | u64 key
 * MSG payload: u64 expires_ms | u32 deliveries | u32 body_len |
 *   u16 queue_len | u16 0 | u32 tail_len | queue bytes | tail bytes
 * DEDUP payload: u64 seen_ms | u16 queue_len | u16 id_len | u32 0 |
 *   queue bytes | id bytes
 * SETTLE, DELIVER, NOOP: no payload.
 *
 * Group commit: appends go into the open batch (memory). At the loop's
 * flush point stp_journal_flush hands the batch to the journal's writer
 * thread unless a write is in flight; the writer write()s it, fdatasync()s,
 * unlinks the segments the batch made dead, and the loop hears back
 * (on_synced) with the highest lsn now on disk. Appends made meanwhile form
 * the next batch: one fdatasync covers every record of a batch.
 */
#ifndef STP_STORE_JOURNAL_H
#define STP_STORE_JOURNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

enum stp_jrec_type {
    STP_JREC_MSG = 1,     /* a message entered a queue (or was copied forward) */
    STP_JREC_SETTLE = 2,  /* the message is gone from its queue for good */
    STP_JREC_DELIVER = 3, /* the message was handed to a consumer once more */
    STP_JREC_NOOP = 4,    /* written to probe a failed journal; carries nothing */
    STP_JREC_DEDUP = 5,   /* a queue saw a dedup-id (live until its window ends) */
    /* 6 is taken by durable subscriptions */
};

#define STP_JMSG_NEEDS_ESCAPE 0x01 /* flags: the broker's stp_msg needs_escape */
#define STP_JMSG_BINDING 0x02      /* flags: a durable subscription, not a message */

#define STP_JREC_HEADER 32u
#define STP_JREC_MSG_FIXED 24u           /* MSG payload bytes before queue and tail */
#define STP_JREC_MAX_PAYLOAD (64u << 20) /* decoding refuses larger lengths */
#define STP_JREC_DEDUP_FIXED 16u         /* DEDUP payload bytes before queue and id */
#define STP_JREC_DEDUP_MAX_ID 1024u      /* longest id a DEDUP record carries */

/* One record. In a decoded record queue and tail point into the buffer it
 * was decoded from. */
struct stp_jrec {
    uint8_t type;  /* enum stp_jrec_type */
    uint8_t flags; /* MSG: STP_JMSG_* */
    uint64_t lsn;  /* this record's log sequence number (assigned by append) */
    /* The message's durable key: the lsn of its first MSG record. A MSG
     * appended with key 0 is a new message (append sets key = lsn); a copy
     * forward carries the original's key. SETTLE/DELIVER: whose. */
    uint64_t key;
    /* MSG only */
    uint64_t expires_ms; /* epoch milliseconds; 0: never */
    uint32_t deliveries; /* times delivered before this record */
    uint32_t body_len;
    const char *queue;
    uint32_t queue_len; /* 1..65535 (wider, so that a longer one is refused) */
    const char *tail;
    uint32_t tail_len;
    /* DEDUP only (with queue, queue_len): the id, 1..STP_JREC_DEDUP_MAX_ID
     * bytes, first seen at seen_ms (epoch milliseconds). */
    uint64_t seen_ms;
    const char *id;
    uint32_t id_len;
};

/* CRC-32C (Castagnoli), as iSCSI and ext4 use it: crc 0 to start. Uses
 * SSE4.2's crc32 instruction where the CPU has it. */
uint32_t stp_crc32c(uint32_t crc, const void *p, size_t n);

/* Encoded size of r; 0 when a length is out of bounds (MSG or DEDUP with
 * a queue of 0 or over 65535 bytes, DEDUP with an id of 0 or over
 * STP_JREC_DEDUP_MAX_ID bytes, payload over STP_JREC_MAX_PAYLOAD) or the
 * type is unknown. */
size_t stp_jrec_size(const struct stp_jrec *r);
/* Write r's encoding (exactly stp_jrec_size(r) bytes) at out. */
void stp_jrec_encode(const struct stp_jrec *r, uint8_t *out);

enum stp_jdec {
    STP_JDEC_OK = 0,    /* *used bytes decoded into *r */
    STP_JDEC_SHORT = 1, /* a record may start here but buf ends first */
    STP_JDEC_BAD = 2,   /* no valid record starts here */
};
/* Decode the record at buf[0, len): checks magic, length bounds, type,
 * the MSG and DEDUP layouts and the checksum. Never reads past len. */
enum stp_jdec stp_jrec_decode(const uint8_t *buf, size_t len, struct stp_jrec *r, size_t *used);

/* --- replay (recovery) --- */

struct stp_journal_replay_stats {
    uint64_t segments;        /* segment files read */
    uint64_t records;         /* valid records passed to the callback */
    uint64_t bytes;           /* bytes of the segment files */
    uint64_t damaged_records; /* stretches of bad bytes skipped between valid records */
    uint64_t damaged_bytes;
    uint64_t truncated_bytes; /* torn tail cut off the newest segment */
    uint64_t last_lsn;        /* highest lsn seen; 0 when none */
};

/* Not a record: after each segment the replay calls back once with this
 * type, lsn = the segment's name (its first lsn) and key = how many MSG
 * and DEDUP records it held, for stp_journal_opts.seg_msgs. */
#define STP_JREC_SEGMENT_DONE 0x80

/* Called once per valid record in lsn order (segment by segment, in file
 * order), and once per segment with STP_JREC_SEGMENT_DONE; r's pointers are
 * valid during the call only. Non-zero stops the replay and is returned. */
typedef int (*stp_journal_replay_cb)(void *ctx, const struct stp_jrec *r);

/* Read every segment of dir in order. Bad bytes followed by a valid record
 * (found by scanning for the next magic whose record checks) are skipped
 * with a log line and counted as damaged; bad bytes up to the end of the
 * newest segment are a torn tail: the file is truncated there (log line).
 * An empty segment file is removed. A missing dir is an empty journal.
 * Returns 0, the callback's non-zero value, or a negative STP_E* code for
 * an I/O error (a file that cannot be opened or read). */
int stp_journal_replay(const char *dir, stp_journal_replay_cb cb, void *ctx,
                       struct stp_journal_replay_stats *st);

/* --- the journal at run time --- */

struct stp_journal;

/* Counters any thread may read (relaxed atomics, written by the owner). */
struct stp_journal_stats {
    atomic_uint_least64_t records;       /* appended */
    atomic_uint_least64_t bytes_written; /* to files */
    atomic_uint_least64_t syncs;         /* fdatasync calls that succeeded */
    atomic_uint_least64_t batches;       /* writes handed to the writer */
    atomic_uint_least64_t failures;      /* batches lost to a write/sync error */
    atomic_uint_least64_t segments;      /* segment files alive */
    atomic_uint_least64_t segments_deleted;
    atomic_uint_least64_t disk_bytes; /* bytes in segment files alive */
};

struct stp_journal_opts {
    const char *dir;      /* made (mode 0700) when missing */
    uv_loop_t *loop;      /* the owner's loop: callbacks run on it */
    size_t segment_bytes; /* a segment rolls past this size; 0: 64 MiB */
    uint64_t next_lsn;    /* first lsn to assign: replay's last_lsn + 1 (>= 1) */
    uint64_t retry_ms;    /* failed: probe again after this long; 0: 1000 */
    void *ctx;            /* passed to the callbacks */
    /* Every record with lsn <= synced is on disk (after a batch's sync),
     * except those reported lost by on_failed before. */
    void (*on_synced)(void *ctx, uint64_t synced);
    /* The batch [first, last] could not be written or synced (err: a
     * negative STP_E* code, e.g. STP_ENOSPC or STP_EIO): those records
     * are lost (the writer cuts them off again, best effort). Called for
     * the batch being written and then for the open one. The journal is
     * failed from now on (appends return 0) until a probe succeeds; then
     * on_recovered. A lost MSG lsn is still released once like any other.
     * What still matters should be appended again from on_recovered: the
     * segments awaiting deletion at the failure are unlinked only once the
     * first batch handed over after on_recovered is on disk. */
    void (*on_failed)(void *ctx, uint64_t first, uint64_t last, int err);
    /* The probe (a NOOP record in a new segment) is on disk: appends work
     * again. */
    void (*on_recovered)(void *ctx);
    /* Optional, from the replay (STP_JREC_SEGMENT_DONE): the MSG records of
     * existing segments, by name, ascending. A segment listed here is not
     * read again at open to count them (compaction needs the count). */
    const uint64_t *seg_lsns, *seg_msgs;
    size_t nseg;
};

/* Open the journal of dir: lists its segments (for reclamation; reads
 * their headers to count their MSG records), starts a new segment and the
 * writer thread. 0 or a negative STP_E* code: STP_EEXISTS when a non-empty
 * segment is named at or after next_lsn (the dir was not replayed). */
int stp_journal_open(struct stp_journal **out, const struct stp_journal_opts *o);

/* After opening, for each live message found by the replay: the record at
 * lsn holds a message still needed (counts toward its segment). */
void stp_journal_adopt(struct stp_journal *j, uint64_t lsn);

/* Append a copy of r to the open batch: sets r->lsn (and r->key when a
 * new MSG has key 0) and returns the lsn; 0 (nothing appended) while the
 * journal is failed, on a bad length or out of memory. A MSG counts as
 * (or a DEDUP) counts as live in the current segment until released. */
uint64_t stp_journal_append(struct stp_journal *j, struct stp_jrec *r);

/* The MSG (or DEDUP) record at lsn is no longer needed (its message was settled, or
 * copied forward by a later MSG). Segments are deleted oldest first: a
 * segment's SETTLE records may name messages of older segments, so a
 * segment goes once it holds no live MSG record and every older segment is
 * gone. The unlink happens in the writer after the batch that made the
 * segment dead is on disk. */
void stp_journal_release(struct stp_journal *j, uint64_t lsn);

/* The oldest segment still alive pins every newer one. When it holds few
 * live messages (under a quarter of its records) and is not the current
 * segment, returns the lsn bound B: the caller should copy forward every
 * live message whose record lsn < B (append a MSG with the same key, then
 * release the old lsn). 0: nothing to compact. */
uint64_t stp_journal_compact_below(struct stp_journal *j);

/* At the loop's flush point (once per loop turn): hand the open batch to
 * the writer unless it is busy. Cheap when there is nothing to write. */
void stp_journal_flush(struct stp_journal *j);

uint64_t stp_journal_appended(const struct stp_journal *j); /* last lsn appended */
uint64_t stp_journal_synced(const struct stp_journal *j);   /* last lsn on disk */
/* Bytes appended and not yet on disk (the open batch and the one being
 * written): memory the caller may want to bound. */
size_t stp_journal_pending_bytes(const struct stp_journal *j);
bool stp_journal_failed(const struct stp_journal *j);
const struct stp_journal_stats *stp_journal_stats(const struct stp_journal *j);

/* Write and sync what is appended, stop the writer thread and close the
 * journal's handles (the loop must run once more to finish closing).
 * Loop thread; blocks on the writer. The callbacks of the batches it
 * waits for run before it returns. */
void stp_journal_stop(struct stp_journal *j);
/* Free it, after stop and after the loop ended. NULL is fine. */
void stp_journal_free(struct stp_journal *j);

#endif

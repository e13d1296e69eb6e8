/*
 * seqtrack.h - loss, duplicate and reorder detection.
 *
 * Every message carries (producer, seq). A tracker remembers which sequence
 * numbers of each of its streams (one stream per producer of a destination)
 * arrived, in lazily allocated bitmap chunks. A topic subscription has its own
 * tracker; the consumers of one queue share the destination's tracker, so a
 * message delivered to two consumers counts as a duplicate and the loss count
 * is "each message exactly once overall". Marking is an atomic fetch-or:
 * trackers shared by consumers on different threads need no lock, and a bit
 * is owned by whichever consumer set it first (relaxed ordering is enough: the
 * bit itself is the only state, and the main thread reads the bitmaps only
 * after the threads were joined).
 *
 * Reordering is per subscription: struct stp_seqorder remembers the highest
 * sequence seen from each producer by one subscription (owned by that
 * subscription's thread). A new message below it is reordered.
 */
#ifndef STAMPEDE_BENCH_SEQTRACK_H
#define STAMPEDE_BENCH_SEQTRACK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define STP_SEQ_CHUNK_BITS 20 /* sequence numbers per chunk: 2^20 (128 KiB) */
#define STP_SEQ_DIR_BITS 14   /* chunks per stream: up to 2^34 messages */
#define STP_SEQ_MAX (UINT64_C(1) << (STP_SEQ_CHUNK_BITS + STP_SEQ_DIR_BITS))

struct stp_seqtrack {
    unsigned nstreams;
    _Atomic(uint64_t *) *dir; /* nstreams << STP_SEQ_DIR_BITS chunk pointers */
};

struct stp_seqorder {
    unsigned nstreams;
    uint64_t *next; /* per stream: highest seq seen + 1 (0 = none yet) */
};

/* Counters of one subscription (owned by its thread). */
struct stp_seqstats {
    uint64_t received;   /* messages with a valid (producer, seq) */
    uint64_t unique;     /* first deliveries (bits this subscription set) */
    uint64_t duplicated; /* deliveries of a seq already seen */
    uint64_t reordered;  /* first deliveries below the highest seq seen */
    uint64_t invalid;    /* out of range producer or seq, or no memory */
};

int stp_seqtrack_init(struct stp_seqtrack *t, unsigned nstreams);
void stp_seqtrack_free(struct stp_seqtrack *t);
/* 1: first time seen, 0: duplicate, STP_EINVAL: out of range, STP_ENOMEM. */
int stp_seqtrack_mark(struct stp_seqtrack *t, unsigned stream, uint64_t seq);
bool stp_seqtrack_seen(const struct stp_seqtrack *t, unsigned stream, uint64_t seq);
/* Sequence numbers in [0, upto) of `stream` that never arrived. */
uint64_t stp_seqtrack_missing(const struct stp_seqtrack *t, unsigned stream, uint64_t upto);

/* Lowest sequence number in [0, upto) of `stream` that never arrived, or
 * UINT64_MAX when none is missing. */
uint64_t stp_seqtrack_first_missing(const struct stp_seqtrack *t, unsigned stream, uint64_t upto);

int stp_seqorder_init(struct stp_seqorder *o, unsigned nstreams);
void stp_seqorder_free(struct stp_seqorder *o);

/* Account one delivery to a subscription: marks the tracker, updates the
 * order state and the counters. */
void stp_seq_receive(struct stp_seqtrack *t, struct stp_seqorder *o, struct stp_seqstats *st,
                     unsigned stream, uint64_t seq);

#endif

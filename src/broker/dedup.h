/*
 * dedup.h - publish de-duplication (issue 13): the ids of SENDs each
 * destination has seen within --dedup-window.
 *
 * A SEND with a dedup-id header whose id its destination already saw within
 * the window is dropped at the destination's owner; the publisher's RECEIPT
 * still comes (the fence passes the owner after the drop). Every SEND to a
 * destination passes through its owner in order, so each window is kept
 * there, in time order: a hash set of ids plus a FIFO for expiry. Windows
 * live in their own per-worker map, apart from the queue or topic, so a
 * destination that is forgotten (an idle queue, a topic without
 * subscribers) keeps its window until its ids expire.
 *
 * Bounds: at most --dedup-max-ids ids per destination and about
 * --dedup-max-memory bytes for every window of the broker (one relaxed
 * atomic in struct stp_broker); past either a window forgets its oldest ids
 * early, counted in /metrics. Ids are at most STP_DEDUP_ID_MAX bytes as
 * sent (the session refuses longer ones).
 *
 * With --data-dir a persistent message to a queue is journaled with a DEDUP
 * record (the queue, the id, when it was first seen), so its id survives a
 * restart within the window; the record is released when the id leaves the
 * window, so it pins its segment no longer than that.
 *
 * Everything here runs on the owning worker's thread.
 */
#ifndef STP_BROKER_DEDUP_H
#define STP_BROKER_DEDUP_H

#include "stampede/deque.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct stp_worker;
struct stp_msg;

/* Longest dedup-id a SEND may carry, in bytes as sent. */
#define STP_DEDUP_ID_MAX 256

/* dedup.c's own types: one remembered id, and a window's FIFO of them (defined
 * here because clang warns about unused static inline functions that a
 * .c file defines). */
struct stp_dedup_id {
    uint64_t seen_ms; /* epoch ms it was first seen */
    uint64_t jlsn;    /* its DEDUP record; 0: none */
    uint16_t len;
    char id[]; /* the hash set's key (not NUL-terminated) */
};
struct stp_dedup_slot {
    struct stp_dedup_id *d;
};
STP_DEQUE_DEFINE(stp_dedup_fifo, struct stp_dedup_slot)

/* True when m's dedup-id was seen on m->dest within the window: the caller
 * drops m (counted here). Only for m with a dedup_len. */
bool stp_dedup_seen(struct stp_worker *w, const struct stp_msg *m);
/* m was taken by its destination: remember its id from now. When m was
 * journaled (m->jkey), a DEDUP record goes to the journal with it. */
void stp_dedup_remember(struct stp_worker *w, const struct stp_msg *m);
/* Recovery (before the worker serves clients): an id of the queue dest
 * first seen at seen_ms, whose DEDUP record at lsn the journal keeps until
 * it expires (0: none). Ids already past the window are ignored. */
void stp_dedup_restore(struct stp_worker *w, const char *dest, size_t dest_len, const char *id,
                       size_t id_len, uint64_t seen_ms, uint64_t lsn);
/* Once a second: ids past the window go; empty windows are freed. */
void stp_dedup_expire(struct stp_worker *w);
/* Shutdown: free every window (the journal keeps its records). */
void stp_dedup_free(struct stp_worker *w);
/* Ids this worker remembers (tests, /metrics). */
size_t stp_dedup_count(const struct stp_worker *w);

#endif

/*
 * unacked.h - a client-ack subscription's deliveries awaiting ACK or NACK.
 *
 * Owned by one subscription's local record (struct stp_sub), on the
 * connection's worker; never touched by another thread. Deliveries are pushed
 * in tag order (a queue owner numbers its deliveries to a consumer 1, 2, 3...
 * and the ring between them is FIFO), so a tag is found by binary search.
 * A delivery settled out of order (client-individual) leaves a tombstone that
 * is dropped once it reaches the head, and the array is compacted when
 * tombstones outnumber live entries: every operation is O(log n) amortized,
 * whatever order a client acks in.
 *
 * With ids tracked (STOMP 1.0/1.1, whose clients ack by message-id), each
 * live entry holds a reference to its message, whose id is the key of a map
 * from message-id to tag; the reference is dropped when the entry is settled.
 */
#ifndef STP_BROKER_UNACKED_H
#define STP_BROKER_UNACKED_H

#include "stampede/deque.h"
#include "stampede/map.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct stp_msg;

struct stp_unacked {
    uint64_t tag;
    struct stp_msg *msg; /* ids tracked: a reference (its id is the map key) */
    bool settled;        /* a tombstone */
    uint16_t nacks;      /* topic subscriptions: times NACKed before this delivery */
};

STP_DEQUE_DEFINE(stp_unacked_deque, struct stp_unacked)

struct stp_unacked_list {
    struct stp_unacked_deque q; /* entries in tag order, tombstones included */
    size_t live;                /* entries not settled */
    bool track_ids;
    struct stp_map by_id; /* message id (8 bytes in the message) -> tag */
};

/* Append a delivery; tags must increase. 0 or STP_ENOMEM. */
int stp_unacked_push(struct stp_unacked_list *l, uint64_t tag, struct stp_msg *m);
/* Index of the live delivery with this tag, or -1. */
ssize_t stp_unacked_find_tag(const struct stp_unacked_list *l, uint64_t tag);
/* Index of the live delivery of this message id (ids tracked), or -1. */
ssize_t stp_unacked_find_id(const struct stp_unacked_list *l, uint64_t msg_id);
uint64_t stp_unacked_tag_at(const struct stp_unacked_list *l, size_t idx);
/* Settle the delivery at idx only, or it and every one before it. */
void stp_unacked_settle_one(struct stp_unacked_list *l, size_t idx);
void stp_unacked_settle_upto(struct stp_unacked_list *l, size_t idx);
void stp_unacked_free(struct stp_unacked_list *l);

#endif

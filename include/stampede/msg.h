/*
 * msg.h - immutable, reference-counted messages.
 *
 * A message is built once by the worker that parsed the SEND and is then
 * shared read-only by every worker that delivers it. It holds the destination
 * and the pre-serialized shared tail of every MESSAGE frame that carries it:
 *
 *     destination:/topic/x\n content-type:...\n content-length:N\n
 *     <user headers, escaped 1.1/1.2 style>\n \n <body> \0
 *
 * Each delivery prepends only its own small header block ("MESSAGE\n",
 * subscription, message-id, ack, redelivered).
 *
 * Ownership: stp_msg_alloc returns one reference. Whoever holds a reference
 * releases it with stp_msg_unref(&m), which clears the caller's pointer; the
 * last release frees the message. References may be taken and dropped on any
 * thread.
 */
#ifndef STAMPEDE_MSG_H
#define STAMPEDE_MSG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct stp_msg {
    atomic_uint refs;
    uint32_t dest_len;
    uint64_t id;        /* unique in this broker process */
    size_t tail_len;    /* bytes of the shared tail */
    size_t tail_cap;    /* bytes allocated for the tail */
    size_t body_len;    /* bytes of the body inside the tail */
    bool needs_escape;  /* a forwarded header differs between 1.0 and 1.1/1.2 */
    atomic_uchar utf8;  /* WebSocket: 0 not checked yet, 1 valid UTF-8, 2 not */
    bool persistent;    /* SENT with persistent:true (set before it is shared) */
    uint16_t dedup_len; /* dedup-id value in the tail, escaped (0: none); see dedup_off */
    /* Not a message: the record of a durable topic subscription, kept by
     * its queue's owner so the journal holds it like a message (its tail is
     * the topic's name and a NUL; src/broker/durable_sub.c). */
    bool binding;
    uint64_t expires_ms; /* epoch ms from which it is never delivered; 0: never */
    /* Queue owner's state, read and written only by the worker that owns
     * the message's queue (a queue message is in one queue): how many times
     * it was handed to a consumer, and for a journaled message its durable
     * key and the lsn of its current MSG record (0: not journaled). */
    uint32_t deliveries;
    /* Set before it is shared: the dedup-id value is tail[dedup_off, +dedup_len)
     * (placed here, it fills a hole). */
    uint32_t dedup_off;
    uint64_t jkey, jlsn;
    /* A cluster queue's message leased from JetStream (issue 14): its ack
     * subject (heap, freed with the message; NULL for every other message),
     * set before it is shared, and when the owner last told JetStream it
     * still holds it (owner only). */
    char *cluster_ack;
    uint64_t cluster_lease_ms;
    /* Set by the publisher's worker before it is shared: the first receipt
     * fence of the sending connection that covers this SEND (told back if
     * the journal loses it). */
    uint64_t pub_fence;
    uint8_t id_line_len;
    char id_line[32]; /* "message-id:<id>\n", formatted once for every delivery */
    const char *dest; /* NUL-terminated, inside data[] */
    const char *tail; /* inside data[] */
    char data[];
};

/* Allocate a message with room for a destination of dest_len bytes and a tail
 * of tail_cap bytes; the caller fills the tail then sets tail_len. Returns
 * NULL on allocation failure. Counts its size against the broker's memory. */
struct stp_msg *stp_msg_alloc(const char *dest, size_t dest_len, size_t tail_cap);

static inline struct stp_msg *stp_msg_ref(struct stp_msg *m)
{
    /* Relaxed: taking a reference needs no ordering; the holder already has
     * a reference that keeps the message alive (the boost/Rust Arc rule). */
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void stp_msg_free_(struct stp_msg *m);

static inline void stp_msg_unref(struct stp_msg **mp)
{
    struct stp_msg *m = *mp;
    *mp = NULL;
    if (!m)
        return;
    /* Acq_rel on the decrement: its release half publishes this owner's
     * reads of the message before the count drops; its acquire half, in the
     * owner that drops the last reference, orders the free after every other
     * owner's release (they form one release sequence on refs). This is the
     * classic release decrement + acquire fence, but written as one RMW:
     * ThreadSanitizer does not model standalone fences and reported every
     * cross-thread free as a race, and on x86 the locked RMW is a full
     * barrier either way, so the acquire costs nothing. */
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        stp_msg_free_(m);
}

/* A new message with m's tail, expiry and persistence under another
 * destination (a durable subscription's queue), or NULL. Its id is for the
 * caller to set. */
struct stp_msg *stp_msg_copy(const struct stp_msg *m, const char *dest, size_t dest_len);

/* Set the message's id and its pre-formatted "message-id:" header line. */
void stp_msg_set_id(struct stp_msg *m, uint64_t id);

/* Bytes of message memory alive in the process (for the memory budget). */
size_t stp_msg_bytes_in_use(void);
/* Unique ids: the worker index in the top bits, a per-worker counter below. */
uint64_t stp_msg_next_id(unsigned worker);

#endif

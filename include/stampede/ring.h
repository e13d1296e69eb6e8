/*
 * ring.h - bounded lock-free single-producer/single-consumer ring of
 * fixed-size elements.
 *
 * Exactly one thread pushes and exactly one thread pops; both may run at the
 * same time. Elements are copied in and out (they are small commands). The
 * capacity is a power of two. Head and tail live on separate cache lines, and
 * each side caches the other's index so the common case touches no shared line.
 */
#ifndef STAMPEDE_RING_H
#define STAMPEDE_RING_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#define STP_CACHELINE 64

struct stp_ring {
    /* consumer side */
    alignas(STP_CACHELINE) atomic_size_t head; /* next slot to pop */
    size_t tail_cache;                         /* consumer's last view of tail */
    /* producer side */
    alignas(STP_CACHELINE) atomic_size_t tail; /* next slot to push */
    size_t head_cache;                         /* producer's last view of head */
    /* read-only after init */
    alignas(STP_CACHELINE) size_t mask;
    size_t elem_size;
    unsigned char *slots;
};

/* capacity must be a power of two >= 2. 0, STP_EINVAL or STP_ENOMEM. */
int stp_ring_init(struct stp_ring *r, size_t capacity, size_t elem_size);
void stp_ring_free(struct stp_ring *r);
/* Producer only. Copies elem in; false when full. */
bool stp_ring_push(struct stp_ring *r, const void *elem);
/* Consumer only. Copies up to max elements into out; returns how many. */
size_t stp_ring_pop(struct stp_ring *r, void *out, size_t max);
/* Either side; an approximate count (exact when the other side is idle). */
size_t stp_ring_count(const struct stp_ring *r);
size_t stp_ring_capacity(const struct stp_ring *r);

#endif

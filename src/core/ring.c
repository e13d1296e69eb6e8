/*
 * ring.c - bounded lock-free single-producer/single-consumer ring (see ring.h).
 *
 * Owns the slot array of one ring. Thread contract: exactly one producer
 * thread calls stp_ring_push and exactly one consumer thread calls
 * stp_ring_pop; init/free run while neither side is active. head and tail are
 * free-running counters (they wrap at SIZE_MAX, which unsigned arithmetic
 * handles); a slot index is counter & mask. tail - head is the fill level and
 * never exceeds the capacity. Each side writes only its own counter and keeps
 * a plain cache of the other's, refreshed only when the cache says "full"
 * (producer) or "not enough" (consumer), so the common case reads no line
 * that the other thread writes.
 */
#include "stampede/ring.h"

#include "stampede/error.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int stp_ring_init(struct stp_ring *r, size_t capacity, size_t elem_size)
{
    if (capacity < 2 || (capacity & (capacity - 1)) != 0 || elem_size == 0 ||
        capacity > SIZE_MAX / elem_size)
        return STP_EINVAL;
    unsigned char *slots = malloc(capacity * elem_size);
    if (!slots)
        return STP_ENOMEM;
    atomic_init(&r->head, 0);
    r->tail_cache = 0;
    atomic_init(&r->tail, 0);
    r->head_cache = 0;
    r->mask = capacity - 1;
    r->elem_size = elem_size;
    r->slots = slots;
    return 0;
}

void stp_ring_free(struct stp_ring *r)
{
    free(r->slots);
    r->slots = NULL;
}

bool stp_ring_push(struct stp_ring *r, const void *elem)
{
    /* Relaxed: only this (producer) thread ever writes tail. */
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (tail - r->head_cache > r->mask) {
        /* Acquire: pairs with the consumer's release of head, so its copies out
         * of the slots it freed are finished before we overwrite them. */
        r->head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
        if (tail - r->head_cache > r->mask)
            return false;
    }
    memcpy(r->slots + (tail & r->mask) * r->elem_size, elem, r->elem_size);
    /* Release: the slot's bytes become visible before the new tail does, so a
     * consumer that acquires this tail reads a complete element. */
    atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
    return true;
}

size_t stp_ring_pop(struct stp_ring *r, void *out, size_t max)
{
    /* Relaxed: only this (consumer) thread ever writes head. */
    size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    size_t avail = r->tail_cache - head;
    if (avail < max) {
        /* Acquire: pairs with the producer's release of tail, so the bytes of
         * every slot below that tail are visible before we copy them out. */
        r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
        avail = r->tail_cache - head;
    }
    size_t n = avail < max ? avail : max;
    if (n == 0)
        return 0;
    size_t es = r->elem_size;
    size_t idx = head & r->mask;
    size_t first = r->mask + 1 - idx; /* slots before the wrap */
    if (first > n)
        first = n;
    memcpy(out, r->slots + idx * es, first * es);
    if (n > first)
        memcpy((unsigned char *)out + first * es, r->slots, (n - first) * es);
    /* Release: our copies out of these slots are done before the producer can
     * see them as free and overwrite them. */
    atomic_store_explicit(&r->head, head + n, memory_order_release);
    return n;
}

size_t stp_ring_count(const struct stp_ring *r)
{
    /* Acquire: synchronizes with the consumer's release of head, whose value
     * it wrote after seeing a tail at least that high, so the tail we load
     * next is >= head (no negative count) and is not hoisted above this load. */
    size_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    /* Relaxed: an approximate count needs no ordering with the slot bytes. */
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t n = tail - head;
    return n > r->mask + 1 ? r->mask + 1 : n;
}

size_t stp_ring_capacity(const struct stp_ring *r)
{
    return r->mask + 1;
}

/*
 * search.h - binary search over anything indexable whose keys never
 * decrease with the index (ring buffers kept in tag or id order: a
 * subscription's unacked deliveries, a queue consumer's in-flight list, a
 * session's pending fences). Pure; no state.
 */
#ifndef STAMPEDE_SEARCH_H
#define STAMPEDE_SEARCH_H

#include <stddef.h>
#include <stdint.h>

/* The first index in [0, n) whose key is >= key (n when there is none);
 * key_at(ctx, i) reads the key at index i. */
static inline size_t stp_lower_bound(size_t n, uint64_t key,
                                     uint64_t (*key_at)(const void *ctx, size_t i), const void *ctx)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (key_at(ctx, mid) < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

#endif

/*
 * deque.h - a typed ring buffer that grows: the one FIFO of the project
 * (a queue's messages and in-flight deliveries, a session's pending fences,
 * a subscription's unacked deliveries).
 *
 * STP_DEQUE_DEFINE(name, type) declares `struct name` and static inline
 * functions name_at, name_push_back, name_push_front, name_pop_front,
 * name_filter and name_free. The capacity is 0 or a power of two, so an index
 * is a mask, not a division. Elements are copied by value. Not thread-safe:
 * a deque belongs to whoever embeds it.
 */
#ifndef STAMPEDE_DEQUE_H
#define STAMPEDE_DEQUE_H

#include "stampede/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

#define STP_DEQUE_MIN_CAP 16

#define STP_DEQUE_DEFINE(name, type)                                                               \
    struct name {                                                                                  \
        type *e;                                                                                   \
        size_t head, count, cap; /* cap: 0 or a power of two */                                    \
    };                                                                                             \
    /* Element i from the front (i < count). */                                                    \
    static inline type *name##_at(const struct name *d, size_t i)                                  \
    {                                                                                              \
        return &d->e[(d->head + i) & (d->cap - 1)];                                                \
    }                                                                                              \
    /* Copy the elements `keep` accepts (all when NULL), in order, into an array of     */         \
    /* ncap. 0 or STP_ENOMEM (the deque unchanged). */                                             \
    static inline int name##_rebuild(struct name *d, size_t ncap, bool (*keep)(const type *))      \
    {                                                                                              \
        type *ne = malloc(ncap * sizeof(*ne));                                                     \
        if (!ne)                                                                                   \
            return STP_ENOMEM;                                                                     \
        size_t n = 0;                                                                              \
        for (size_t i = 0; i < d->count; i++) {                                                    \
            if (!keep || keep(name##_at(d, i)))                                                    \
                ne[n++] = *name##_at(d, i);                                                        \
        }                                                                                          \
        free(d->e);                                                                                \
        d->e = ne;                                                                                 \
        d->head = 0;                                                                               \
        d->count = n;                                                                              \
        d->cap = ncap;                                                                             \
        return 0;                                                                                  \
    }                                                                                              \
    static inline int name##_push_back(struct name *d, type v)                                     \
    {                                                                                              \
        if (d->count == d->cap &&                                                                  \
            name##_rebuild(d, d->cap ? d->cap * 2 : STP_DEQUE_MIN_CAP, NULL) < 0)                  \
            return STP_ENOMEM;                                                                     \
        d->e[(d->head + d->count) & (d->cap - 1)] = v;                                             \
        d->count++;                                                                                \
        return 0;                                                                                  \
    }                                                                                              \
    static inline int name##_push_front(struct name *d, type v)                                    \
    {                                                                                              \
        if (d->count == d->cap &&                                                                  \
            name##_rebuild(d, d->cap ? d->cap * 2 : STP_DEQUE_MIN_CAP, NULL) < 0)                  \
            return STP_ENOMEM;                                                                     \
        d->head = (d->head + d->cap - 1) & (d->cap - 1);                                           \
        d->e[d->head] = v;                                                                         \
        d->count++;                                                                                \
        return 0;                                                                                  \
    }                                                                                              \
    /* The front element, removed (count > 0). */                                                  \
    static inline type name##_pop_front(struct name *d)                                            \
    {                                                                                              \
        type v = d->e[d->head];                                                                    \
        d->head = (d->head + 1) & (d->cap - 1);                                                    \
        d->count--;                                                                                \
        return v;                                                                                  \
    }                                                                                              \
    /* Keep only the elements `keep` accepts, in order; the capacity stays. */                     \
    static inline int name##_filter(struct name *d, bool (*keep)(const type *))                    \
    {                                                                                              \
        return d->cap ? name##_rebuild(d, d->cap, keep) : 0;                                       \
    }                                                                                              \
    /* Release the storage (the elements own nothing here: drop theirs first). */                  \
    static inline void name##_free(struct name *d)                                                 \
    {                                                                                              \
        free(d->e);                                                                                \
        d->e = NULL;                                                                               \
        d->head = d->count = d->cap = 0;                                                           \
    }

#endif

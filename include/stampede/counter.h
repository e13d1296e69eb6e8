/*
 * counter.h - single-writer statistics counters, readable from any thread.
 *
 * Each counter is written only by one thread (its worker) and read by any
 * thread answering /metrics. STP_STAT_ADD is a relaxed load and store, not a
 * locked read-modify-write: with a single writer no increment is lost, a
 * reader sees some recent value, and the hot path pays a plain add. Both the
 * net layer (bytes, connections) and the broker (frames, messages) count
 * with these.
 */
#ifndef STP_COUNTER_H
#define STP_COUNTER_H

#include <stdatomic.h>
#include <stdint.h>

typedef _Atomic uint64_t stp_counter;

#define STP_STAT_ADD(field, n)                                                                     \
    atomic_store_explicit(&(field), atomic_load_explicit(&(field), memory_order_relaxed) + (n),    \
                          memory_order_relaxed)
#define STP_STAT_INC(field) STP_STAT_ADD(field, 1)
#define STP_STAT_GET(field) atomic_load_explicit(&(field), memory_order_relaxed)

#endif

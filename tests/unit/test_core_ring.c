/* Unit tests of the SPSC ring: single-thread semantics and a two-thread stress run. */
#include "stampede/error.h"
#include "stampede/ring.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define STRESS_N 1000000u
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define STRESS_N 1000000u
#endif
#endif
#ifndef STRESS_N
#define STRESS_N 10000000u
#endif

/* An element whose size is not a power of two, to catch offset mistakes. */
struct elem {
    uint32_t seq;
    uint32_t check;
    uint32_t pad;
};

static struct elem mk(uint32_t seq)
{
    return (struct elem){seq, ~seq, seq * 7u};
}

static void expect_elem(const struct elem *e, uint32_t seq)
{
    cr_assert_eq(e->seq, seq, "got %u, want %u", e->seq, seq);
    cr_assert_eq(e->check, ~seq);
    cr_assert_eq(e->pad, seq * 7u);
}

Test(core_ring, init_rejects_bad_arguments)
{
    struct stp_ring r;
    size_t bad[] = {0, 1, 3, 6, 12, 1000};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(stp_ring_init(&r, bad[i], 8), STP_EINVAL, "capacity %zu", bad[i]);
    cr_assert_eq(stp_ring_init(&r, 8, 0), STP_EINVAL);
    cr_assert_eq(stp_ring_init(&r, (size_t)1 << 62, 16), STP_EINVAL);
    cr_assert_eq(stp_ring_init(&r, 2, 8), 0);
    cr_assert_eq(stp_ring_capacity(&r), 2);
    stp_ring_free(&r);
    cr_assert_null(r.slots);
}

Test(core_ring, fills_to_capacity_then_refuses)
{
    struct stp_ring r;
    cr_assert_eq(stp_ring_init(&r, 8, sizeof(struct elem)), 0);
    struct elem out[16];
    cr_assert_eq(stp_ring_pop(&r, out, 16), 0, "empty ring pops nothing");
    cr_assert_eq(stp_ring_count(&r), 0);
    for (uint32_t i = 0; i < 8; i++) {
        struct elem e = mk(i);
        cr_assert(stp_ring_push(&r, &e), "push %u", i);
        cr_assert_eq(stp_ring_count(&r), i + 1);
    }
    struct elem e = mk(99);
    cr_assert_not(stp_ring_push(&r, &e), "push into a full ring");
    cr_assert_eq(stp_ring_count(&r), 8);
    cr_assert_eq(stp_ring_pop(&r, out, 3), 3);
    for (uint32_t i = 0; i < 3; i++)
        expect_elem(&out[i], i);
    cr_assert_eq(stp_ring_count(&r), 5);
    for (uint32_t i = 8; i < 11; i++) { /* these wrap around the slot array */
        e = mk(i);
        cr_assert(stp_ring_push(&r, &e));
    }
    cr_assert_not(stp_ring_push(&r, &e));
    cr_assert_eq(stp_ring_pop(&r, out, 16), 8, "batch pop takes all, across the wrap");
    for (uint32_t i = 0; i < 8; i++)
        expect_elem(&out[i], i + 3);
    cr_assert_eq(stp_ring_pop(&r, out, 16), 0);
    cr_assert_eq(stp_ring_count(&r), 0);
    stp_ring_free(&r);
}

Test(core_ring, pop_zero_max_takes_nothing)
{
    struct stp_ring r;
    cr_assert_eq(stp_ring_init(&r, 4, sizeof(uint64_t)), 0);
    uint64_t v = 42, out = 0;
    cr_assert(stp_ring_push(&r, &v));
    cr_assert_eq(stp_ring_pop(&r, &out, 0), 0);
    cr_assert_eq(stp_ring_count(&r), 1);
    cr_assert_eq(stp_ring_pop(&r, &out, 1), 1);
    cr_assert_eq(out, 42);
    stp_ring_free(&r);
}

/* Pushes and pops in varying batch sizes many times round a small ring. */
Test(core_ring, wraparound_keeps_fifo_order)
{
    struct stp_ring r;
    cr_assert_eq(stp_ring_init(&r, 4, sizeof(struct elem)), 0);
    uint32_t next_in = 0, next_out = 0;
    struct elem out[4];
    for (int round = 0; round < 5000; round++) {
        size_t want = (size_t)(round % 4) + 1;
        for (size_t k = 0; k < want; k++) {
            struct elem e = mk(next_in);
            if (!stp_ring_push(&r, &e))
                break;
            next_in++;
        }
        cr_assert_leq(next_in - next_out, 4);
        cr_assert_eq(stp_ring_count(&r), next_in - next_out);
        size_t max = (size_t)(round % 3) + 1;
        size_t got = stp_ring_pop(&r, out, max);
        size_t expect = next_in - next_out < max ? next_in - next_out : max;
        cr_assert_eq(got, expect);
        for (size_t k = 0; k < got; k++)
            expect_elem(&out[k], next_out++);
    }
    cr_assert_gt(next_out, 5000, "the ring went round many times");
    stp_ring_free(&r);
}

/* Free-running counters near SIZE_MAX must wrap without confusing full/empty. */
Test(core_ring, counters_wrap_at_size_max)
{
    struct stp_ring r;
    cr_assert_eq(stp_ring_init(&r, 4, sizeof(uint32_t)), 0);
    size_t start = SIZE_MAX - 5;
    atomic_store(&r.head, start);
    atomic_store(&r.tail, start);
    r.head_cache = r.tail_cache = start;
    uint32_t in = 0, out_next = 0, out[4];
    for (int i = 0; i < 20; i++) {
        while (stp_ring_push(&r, &in))
            in++;
        cr_assert_eq(stp_ring_count(&r), 4);
        size_t got = stp_ring_pop(&r, out, 3);
        cr_assert_eq(got, 3);
        for (size_t k = 0; k < got; k++)
            cr_assert_eq(out[k], out_next++);
    }
    stp_ring_free(&r);
}

/* Time budget of the stress run: on a loaded machine it stops early. */
#define STRESS_SECONDS 3.0
#define STRESS_MIN 100000u

struct stress {
    struct stp_ring ring;
    uint64_t n;                    /* at most this many */
    atomic_bool stop;              /* consumer -> producer: time is up */
    atomic_uint_fast64_t produced; /* set by the producer when it is done */
    atomic_bool finished;
    uint64_t bad; /* first out-of-order value + 1, or 0 */
    uint64_t received;
    size_t max_count;
};

static void *producer(void *arg)
{
    struct stress *s = arg;
    uint64_t i = 0;
    for (; i < s->n; i++) {
        if ((i & 1023) == 0 && atomic_load(&s->stop))
            break;
        while (!stp_ring_push(&s->ring, &i))
            sched_yield();
    }
    atomic_store(&s->produced, i);
    atomic_store(&s->finished, true);
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void consume(struct stress *s)
{
    uint64_t expect = 0, batch[32];
    bool producer_done = false;
    double deadline = now_s() + STRESS_SECONDS;
    for (;;) {
        size_t c = stp_ring_count(&s->ring);
        if (c > s->max_count)
            s->max_count = c;
        size_t k = stp_ring_pop(&s->ring, batch, 32);
        if (k == 0) {
            if (producer_done)
                break; /* empty after the producer had finished: that was all */
            /* finished is set after the last push: one more pop sees everything */
            producer_done = atomic_load(&s->finished);
            if (!producer_done)
                sched_yield();
            continue;
        }
        for (size_t i = 0; i < k; i++, expect++) {
            if (batch[i] != expect && !s->bad)
                s->bad = batch[i] + 1;
        }
        if ((expect & 0xffff) < k && now_s() > deadline)
            atomic_store(&s->stop, true);
    }
    s->received = expect;
}

/* Up to STRESS_N sequence numbers (at most ~3 s worth) through a 64-slot ring
 * between two threads: strict order, no loss, no duplicate. */
Test(core_ring, two_thread_stress_keeps_order)
{
    struct stress s = {.n = STRESS_N};
    cr_assert_eq(stp_ring_init(&s.ring, 64, sizeof(uint64_t)), 0);
    pthread_t t;
    double t0 = now_s();
    cr_assert_eq(pthread_create(&t, NULL, producer, &s), 0);
    consume(&s);
    pthread_join(t, NULL);
    double dt = now_s() - t0;
    cr_assert_eq(s.bad, 0, "out of order: got %llu", (unsigned long long)(s.bad - 1));
    cr_assert_eq(s.received, atomic_load(&s.produced), "every element arrives once");
    cr_assert_geq(s.received, STRESS_MIN);
    cr_assert_leq(s.max_count, 64);
    uint64_t extra;
    cr_assert_eq(stp_ring_pop(&s.ring, &extra, 1), 0, "nothing beyond the sequence");
    cr_log_info("ring stress: %llu elements in %.3f s = %.1f M ops/s\n",
                (unsigned long long)s.received, dt, (double)s.received / dt / 1e6);
    stp_ring_free(&s.ring);
}

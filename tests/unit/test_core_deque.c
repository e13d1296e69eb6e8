/*
 * test_core_deque.c - the typed ring (stampede/deque.h): order kept across
 * wrap-around and growth at both ends, filtering, freeing.
 */
#include "stampede/deque.h"

#include <criterion/criterion.h>

#include <stdint.h>

STP_DEQUE_DEFINE(u64q, uint64_t)

static bool is_even(const uint64_t *v)
{
    return *v % 2 == 0;
}

Test(core_deque, fifo_across_wrap_and_growth)
{
    struct u64q d = {0};
    uint64_t next_in = 0, next_out = 0;
    /* Keep 10 in flight while 1000 pass: the head wraps many times. */
    for (int i = 0; i < 1000; i++) {
        cr_assert_eq(u64q_push_back(&d, next_in++), 0);
        if (d.count > 10)
            cr_assert_eq(u64q_pop_front(&d), next_out++);
    }
    cr_assert_eq(d.cap, STP_DEQUE_MIN_CAP);
    /* Grow while wrapped: order survives. */
    for (int i = 0; i < 100; i++)
        cr_assert_eq(u64q_push_back(&d, next_in++), 0);
    cr_assert_eq(d.cap & (d.cap - 1), 0, "capacity %zu is not a power of two", d.cap);
    for (size_t i = 0; i < d.count; i++)
        cr_assert_eq(*u64q_at(&d, i), next_out + i);
    while (d.count)
        cr_assert_eq(u64q_pop_front(&d), next_out++);
    cr_assert_eq(next_out, next_in);
    u64q_free(&d);
    cr_assert_null(d.e);
}

Test(core_deque, push_front_puts_back_in_order)
{
    struct u64q d = {0};
    for (uint64_t i = 10; i < 20; i++)
        u64q_push_back(&d, i);
    /* Requeue 9..0 at the head, newest first, as a queue does. */
    for (uint64_t i = 10; i > 0; i--)
        cr_assert_eq(u64q_push_front(&d, i - 1), 0);
    for (int k = 0; k < 30; k++) /* grows while the head is wrapped */
        u64q_push_front(&d, 1000 + (uint64_t)k);
    for (int k = 29; k >= 0; k--)
        cr_assert_eq(u64q_pop_front(&d), 1000 + (uint64_t)k);
    for (uint64_t i = 0; i < 20; i++)
        cr_assert_eq(u64q_pop_front(&d), i);
    u64q_free(&d);
}

Test(core_deque, filter_keeps_order_and_capacity)
{
    struct u64q d = {0};
    cr_assert_eq(u64q_filter(&d, is_even), 0); /* empty: nothing to do */
    for (uint64_t i = 0; i < 40; i++)
        u64q_push_back(&d, i);
    u64q_pop_front(&d);
    size_t cap = d.cap;
    cr_assert_eq(u64q_filter(&d, is_even), 0);
    cr_assert_eq(d.cap, cap);
    cr_assert_eq(d.count, 19);
    for (size_t i = 0; i < d.count; i++)
        cr_assert_eq(*u64q_at(&d, i), 2 * (i + 1));
    u64q_free(&d);
}

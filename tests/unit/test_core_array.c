/*
 * test_core_array.c - stp_array_reserve: doubling, keeping the elements,
 * refusing a size that would overflow.
 */
#include "stampede/array.h"
#include "stampede/error.h"

#include <criterion/criterion.h>

#include <stdint.h>
#include <stdlib.h>

Test(core_array, grows_by_doubling_and_keeps_elements)
{
    uint64_t *a = NULL;
    size_t cap = 0, n = 0;
    for (uint64_t i = 0; i < 1000; i++) {
        cr_assert_eq(STP_ARRAY_RESERVE(a, cap, n + 1), 0);
        cr_assert_geq(cap, n + 1);
        a[n++] = i * 7;
    }
    /* 8, 16, ... 1024: doubling from the minimum. */
    cr_assert_eq(cap, 1024);
    for (uint64_t i = 0; i < 1000; i++)
        cr_assert_eq(a[i], i * 7);
    /* Room already there: nothing moves. */
    uint64_t *before = a;
    cr_assert_eq(STP_ARRAY_RESERVE(a, cap, 10), 0);
    cr_assert_eq(a, before);
    cr_assert_eq(cap, 1024);
    /* A jump past twice the capacity goes straight to what is needed. */
    cr_assert_eq(STP_ARRAY_RESERVE(a, cap, 5000), 0);
    cr_assert_eq(cap, 5000);
    cr_assert_eq(a[999], 999 * 7);
    free(a);
}

Test(core_array, refuses_overflowing_sizes)
{
    uint64_t *a = NULL;
    size_t cap = 0;
    cr_assert_eq(STP_ARRAY_RESERVE(a, cap, SIZE_MAX / 4), STP_ENOMEM);
    cr_assert_null(a);
    cr_assert_eq(cap, 0);
}

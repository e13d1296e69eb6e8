/* Unit tests of the open-addressing hash map (src/core/map.c). */
#include "stampede/map.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define N 5000

static char keys[N][16];

static void fill_keys(void)
{
    for (int i = 0; i < N; i++)
        snprintf(keys[i], sizeof(keys[i]), "/queue/q%d", i);
}

Test(core_map, put_get_replace)
{
    struct stp_map m = {0};
    cr_assert_null(stp_map_get(&m, "x", 1), "an empty map finds nothing");
    int a = 1, b = 2;
    cr_assert_eq(stp_map_put(&m, "x", 1, &a), 0);
    cr_assert_eq(stp_map_get(&m, "x", 1), &a);
    cr_assert_eq(stp_map_put(&m, "x", 1, &b), 0);
    cr_assert_eq(stp_map_get(&m, "x", 1), &b, "put replaces");
    cr_assert_eq(m.count, 1);
    cr_assert_null(stp_map_get(&m, "xy", 2));
    stp_map_free(&m);
}

Test(core_map, grows_and_finds_every_key)
{
    struct stp_map m = {0};
    fill_keys();
    for (int i = 0; i < N; i++)
        cr_assert_eq(stp_map_put(&m, keys[i], strlen(keys[i]), keys[i]), 0);
    cr_assert_eq(m.count, N);
    cr_assert(m.count * 10 <= m.cap * 7, "load factor stays under 70%%");
    for (int i = 0; i < N; i++)
        cr_assert_eq(stp_map_get(&m, keys[i], strlen(keys[i])), keys[i], "key %d", i);
    stp_map_free(&m);
}

/* Deleting with backward shift must keep every other key reachable, whatever
 * the order of deletions. */
Test(core_map, delete_keeps_the_rest_reachable)
{
    struct stp_map m = {0};
    fill_keys();
    for (int i = 0; i < N; i++)
        stp_map_put(&m, keys[i], strlen(keys[i]), keys[i]);
    for (int i = 0; i < N; i += 3)
        cr_assert_eq(stp_map_del(&m, keys[i], strlen(keys[i])), keys[i]);
    cr_assert_null(stp_map_del(&m, keys[0], strlen(keys[0])), "deleting twice finds nothing");
    for (int i = 0; i < N; i++) {
        void *v = stp_map_get(&m, keys[i], strlen(keys[i]));
        if (i % 3 == 0)
            cr_assert_null(v, "deleted key %d", i);
        else
            cr_assert_eq(v, keys[i], "kept key %d", i);
    }
    for (int i = 0; i < N; i++)
        stp_map_del(&m, keys[i], strlen(keys[i]));
    cr_assert_eq(m.count, 0);
    for (size_t i = 0; i < m.cap; i++)
        cr_assert_eq(m.slots[i].hash, 0, "no tombstones left");
    stp_map_free(&m);
}

Test(core_map, binary_keys)
{
    struct stp_map m = {0};
    uint64_t k1 = 1, k2 = 1ULL << 48;
    int a, b;
    stp_map_put(&m, &k1, sizeof(k1), &a);
    stp_map_put(&m, &k2, sizeof(k2), &b);
    cr_assert_eq(stp_map_get(&m, &k1, sizeof(k1)), &a);
    cr_assert_eq(stp_map_get(&m, &k2, sizeof(k2)), &b);
    cr_assert_neq(stp_hash(&k1, 8), 0, "0 means an empty slot, so no hash is 0");
    stp_map_free(&m);
}

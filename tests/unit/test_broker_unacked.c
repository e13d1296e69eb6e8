/*
 * test_broker_unacked.c - the unacked-delivery list (src/broker/unacked.c):
 * lookup by tag and by message id, cumulative and individual settling in any
 * order, tombstones and compaction, message references released.
 */
#include "broker/unacked.h"
#include "stampede/msg.h"

#include <criterion/criterion.h>

#include <stdlib.h>

static struct stp_msg *new_msg(uint64_t id)
{
    struct stp_msg *m = stp_msg_alloc("/queue/u", 8, 16);
    cr_assert_not_null(m);
    stp_msg_set_id(m, id);
    return m;
}

Test(broker_unacked, find_by_tag_after_individual_settles)
{
    struct stp_unacked_list l = {0};
    for (uint64_t t = 1; t <= 1000; t++)
        cr_assert_eq(stp_unacked_push(&l, t * 3, NULL), 0);
    /* Settle every even one, newest first. */
    for (uint64_t t = 1000; t >= 2; t -= 2) {
        ssize_t i = stp_unacked_find_tag(&l, t * 3);
        cr_assert_geq(i, 0, "tag %lu", (unsigned long)(t * 3));
        stp_unacked_settle_one(&l, (size_t)i);
        cr_assert_eq(stp_unacked_find_tag(&l, t * 3), -1, "settled twice");
    }
    cr_assert_eq(l.live, 500);
    cr_assert_leq(l.q.count, 1000);
    for (uint64_t t = 1; t <= 1000; t++) {
        ssize_t i = stp_unacked_find_tag(&l, t * 3);
        cr_assert_eq(i >= 0, t % 2 == 1, "tag %lu", (unsigned long)(t * 3));
        if (i >= 0)
            cr_assert_eq(stp_unacked_tag_at(&l, (size_t)i), t * 3);
        cr_assert_eq(stp_unacked_find_tag(&l, t * 3 + 1), -1);
    }
    /* Settling the oldest drops the tombstones behind it from the head. */
    stp_unacked_settle_one(&l, (size_t)stp_unacked_find_tag(&l, 3));
    cr_assert_eq(stp_unacked_tag_at(&l, 0), 9);
    stp_unacked_free(&l);
}

Test(broker_unacked, tombstones_are_compacted)
{
    struct stp_unacked_list l = {0};
    uint64_t tag = 0;
    /* The oldest is never acked; everything after it is, one by one, while
     * new deliveries keep coming: entries stay bounded by twice the live. */
    cr_assert_eq(stp_unacked_push(&l, ++tag, NULL), 0);
    for (int round = 0; round < 100000; round++) {
        cr_assert_eq(stp_unacked_push(&l, ++tag, NULL), 0);
        ssize_t i = stp_unacked_find_tag(&l, tag);
        cr_assert_geq(i, 0);
        stp_unacked_settle_one(&l, (size_t)i);
    }
    cr_assert_eq(l.live, 1);
    cr_assert_leq(l.q.count, 64, "%zu entries for one live delivery", l.q.count);
    cr_assert_leq(l.q.cap, 128);
    cr_assert_eq(stp_unacked_find_tag(&l, 1), 0);
    stp_unacked_free(&l);
}

Test(broker_unacked, cumulative_settle)
{
    struct stp_unacked_list l = {0};
    for (uint64_t t = 1; t <= 10; t++)
        stp_unacked_push(&l, t, NULL);
    stp_unacked_settle_upto(&l, (size_t)stp_unacked_find_tag(&l, 4));
    cr_assert_eq(l.live, 6);
    cr_assert_eq(stp_unacked_find_tag(&l, 4), -1);
    cr_assert_eq(stp_unacked_find_tag(&l, 5), 0);
    stp_unacked_free(&l);
}

Test(broker_unacked, by_message_id_holds_and_releases_references)
{
    size_t before = stp_msg_bytes_in_use();
    struct stp_unacked_list l = {.track_ids = true};
    struct stp_msg *m[64];
    /* Ids out of order (messages from several publishers' workers). */
    for (int i = 0; i < 64; i++) {
        m[i] = new_msg((uint64_t)(i * 7919 % 64) + 1000);
        cr_assert_eq(stp_unacked_push(&l, (uint64_t)i + 1, m[i]), 0);
    }
    for (int i = 0; i < 64; i++)
        stp_msg_unref(&m[i]); /* the list keeps its own references */
    cr_assert_gt(stp_msg_bytes_in_use(), before);
    for (int i = 63; i >= 0; i -= 2) {
        uint64_t id = (uint64_t)(i * 7919 % 64) + 1000;
        ssize_t k = stp_unacked_find_id(&l, id);
        cr_assert_geq(k, 0, "id %lu", (unsigned long)id);
        cr_assert_eq(stp_unacked_tag_at(&l, (size_t)k), (uint64_t)i + 1);
        stp_unacked_settle_one(&l, (size_t)k);
        cr_assert_eq(stp_unacked_find_id(&l, id), -1);
    }
    cr_assert_eq(stp_unacked_find_id(&l, 5), -1);
    stp_unacked_free(&l);
    cr_assert_eq(stp_msg_bytes_in_use(), before, "message references leaked");
}

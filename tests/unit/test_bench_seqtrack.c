/* Unit tests of stampede-bench's loss, duplicate and reorder detection. */
#include "seqtrack.h"

#include "stampede/error.h"

#include <criterion/criterion.h>
#include <pthread.h>

static void feed(struct stp_seqtrack *t, struct stp_seqorder *o, struct stp_seqstats *st,
                 unsigned stream, const uint64_t *seqs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        stp_seq_receive(t, o, st, stream, seqs[i]);
}

Test(bench_seqtrack, loss_duplicate_reorder_on_one_subscription)
{
    struct stp_seqtrack t;
    struct stp_seqorder o;
    struct stp_seqstats st = {0};
    cr_assert_eq(stp_seqtrack_init(&t, 1), 0);
    cr_assert_eq(stp_seqorder_init(&o, 1), 0);
    const uint64_t seqs[] = {0, 1, 2, 4, 3, 3, 6, 6, 7};
    feed(&t, &o, &st, 0, seqs, sizeof(seqs) / sizeof(seqs[0]));
    cr_assert_eq(st.received, 9);
    cr_assert_eq(st.unique, 7);
    cr_assert_eq(st.duplicated, 2, "3 and 6 twice");
    cr_assert_eq(st.reordered, 1, "3 after 4");
    cr_assert_eq(st.invalid, 0);
    cr_assert_eq(stp_seqtrack_missing(&t, 0, 8), 1, "5 never came");
    cr_assert_eq(stp_seqtrack_first_missing(&t, 0, 8), 5);
    cr_assert_eq(stp_seqtrack_missing(&t, 0, 10), 3, "5, 8, 9 when 10 were sent");
    cr_assert_eq(stp_seqtrack_first_missing(&t, 0, 5), UINT64_MAX, "0..4 all arrived");
    stp_seqorder_free(&o);
    stp_seqtrack_free(&t);
}

Test(bench_seqtrack, nothing_lost_in_order)
{
    struct stp_seqtrack t;
    struct stp_seqorder o;
    struct stp_seqstats st = {0};
    cr_assert_eq(stp_seqtrack_init(&t, 1), 0);
    cr_assert_eq(stp_seqorder_init(&o, 1), 0);
    for (uint64_t s = 0; s < 100000; s++)
        stp_seq_receive(&t, &o, &st, 0, s);
    cr_assert_eq(st.unique, 100000);
    cr_assert_eq(st.duplicated + st.reordered + st.invalid, 0);
    cr_assert_eq(stp_seqtrack_missing(&t, 0, 100000), 0);
    cr_assert_eq(stp_seqtrack_missing(&t, 0, 100001), 1);
    stp_seqorder_free(&o);
    stp_seqtrack_free(&t);
}

Test(bench_seqtrack, streams_are_independent)
{
    struct stp_seqtrack t;
    struct stp_seqorder o;
    struct stp_seqstats st = {0};
    cr_assert_eq(stp_seqtrack_init(&t, 3), 0);
    cr_assert_eq(stp_seqorder_init(&o, 3), 0);
    const uint64_t a[] = {0, 1, 2}, b[] = {0, 2, 1};
    feed(&t, &o, &st, 0, a, 3);
    feed(&t, &o, &st, 1, b, 3);
    cr_assert_eq(st.duplicated, 0, "the same seq from two producers is no duplicate");
    cr_assert_eq(st.reordered, 1, "stream 1 went 2 then 1");
    cr_assert_eq(stp_seqtrack_missing(&t, 0, 3), 0);
    cr_assert_eq(stp_seqtrack_missing(&t, 1, 3), 0);
    cr_assert_eq(stp_seqtrack_missing(&t, 2, 3), 3, "stream 2 got nothing");
    stp_seqorder_free(&o);
    stp_seqtrack_free(&t);
}

/* A queue's consumers share the destination's tracker: each message must
 * arrive exactly once overall; order is judged per consumer. */
Test(bench_seqtrack, queue_consumers_share_a_tracker)
{
    struct stp_seqtrack t;
    struct stp_seqorder oa, ob;
    struct stp_seqstats sa = {0}, sb = {0};
    cr_assert_eq(stp_seqtrack_init(&t, 1), 0);
    cr_assert_eq(stp_seqorder_init(&oa, 1), 0);
    cr_assert_eq(stp_seqorder_init(&ob, 1), 0);
    const uint64_t a[] = {0, 2, 4, 6}, b[] = {1, 3, 4, 5};
    feed(&t, &oa, &sa, 0, a, 4);
    feed(&t, &ob, &sb, 0, b, 4);
    cr_assert_eq(sa.duplicated + sb.duplicated, 1, "4 went to both consumers");
    cr_assert_eq(sa.reordered + sb.reordered, 0, "each consumer saw increasing seqs");
    cr_assert_eq(sa.unique + sb.unique, 7);
    cr_assert_eq(stp_seqtrack_missing(&t, 0, 8), 1, "7 went to nobody");
    stp_seqorder_free(&oa);
    stp_seqorder_free(&ob);
    stp_seqtrack_free(&t);
}

Test(bench_seqtrack, chunk_boundaries_and_sparse_ranges)
{
    struct stp_seqtrack t;
    cr_assert_eq(stp_seqtrack_init(&t, 1), 0);
    uint64_t chunk = UINT64_C(1) << STP_SEQ_CHUNK_BITS;
    cr_assert_eq(stp_seqtrack_mark(&t, 0, chunk - 1), 1);
    cr_assert_eq(stp_seqtrack_mark(&t, 0, chunk), 1);
    cr_assert_eq(stp_seqtrack_mark(&t, 0, chunk), 0, "second time is a duplicate");
    cr_assert_eq(stp_seqtrack_mark(&t, 0, 5 * chunk + 3), 1);
    cr_assert(stp_seqtrack_seen(&t, 0, chunk - 1));
    cr_assert(!stp_seqtrack_seen(&t, 0, chunk + 1));
    cr_assert_eq(stp_seqtrack_missing(&t, 0, 6 * chunk), 6 * chunk - 3);
    cr_assert_eq(stp_seqtrack_missing(&t, 0, chunk + 1), chunk - 1);
    cr_assert_eq(stp_seqtrack_first_missing(&t, 0, 6 * chunk), 0);
    stp_seqtrack_free(&t);
}

Test(bench_seqtrack, out_of_range_is_invalid_not_a_crash)
{
    struct stp_seqtrack t;
    struct stp_seqorder o;
    struct stp_seqstats st = {0};
    cr_assert_eq(stp_seqtrack_init(&t, 2), 0);
    cr_assert_eq(stp_seqorder_init(&o, 2), 0);
    cr_assert_eq(stp_seqtrack_mark(&t, 2, 0), STP_EINVAL);
    cr_assert_eq(stp_seqtrack_mark(&t, 0, STP_SEQ_MAX), STP_EINVAL);
    stp_seq_receive(&t, &o, &st, 7, 1);
    stp_seq_receive(&t, &o, &st, 0, UINT64_MAX);
    cr_assert_eq(st.invalid, 2);
    cr_assert_eq(st.received, 0);
    cr_assert(!stp_seqtrack_seen(&t, 5, 0));
    stp_seqorder_free(&o);
    stp_seqtrack_free(&t);
}

struct racer {
    struct stp_seqtrack *t;
    uint64_t fresh, dup;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    for (uint64_t s = 0; s < 3000000; s++) {
        int rc = stp_seqtrack_mark(r->t, 0, s);
        if (rc == 1)
            r->fresh++;
        else if (rc == 0)
            r->dup++;
    }
    return NULL;
}

/* Two consumers on two threads marking the same messages: each message is
 * new exactly once (chunk creation races included). */
Test(bench_seqtrack, concurrent_marking_counts_each_message_once)
{
    struct stp_seqtrack t;
    cr_assert_eq(stp_seqtrack_init(&t, 1), 0);
    struct racer a = {&t, 0, 0}, b = {&t, 0, 0};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, race, &a);
    pthread_create(&tb, NULL, race, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    cr_assert_eq(a.fresh + b.fresh, 3000000);
    cr_assert_eq(a.dup + b.dup, 3000000);
    cr_assert_eq(stp_seqtrack_missing(&t, 0, 3000000), 0);
    stp_seqtrack_free(&t);
}

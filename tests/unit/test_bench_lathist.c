/* Unit tests of stampede-bench's log-linear latency histogram. */
#include "lathist.h"

#include <criterion/criterion.h>
#include <stdlib.h>

/* Relative width of one bucket above the exact range: 1 / 2^(SUB_BITS-1). */
#define PRECISION (1.0 / (1 << (STP_LATHIST_SUB_BITS - 1)))

static struct stp_lathist *new_hist(void)
{
    struct stp_lathist *h = malloc(sizeof(*h));
    cr_assert_not_null(h);
    stp_lathist_init(h);
    return h;
}

static void assert_near(uint64_t got, uint64_t want)
{
    double err = got > want ? (double)(got - want) : (double)(want - got);
    cr_assert(err <= PRECISION * (double)want + 1.0, "got %llu, want %llu (+-%.3f%%)",
              (unsigned long long)got, (unsigned long long)want, PRECISION * 100);
}

Test(bench_lathist, buckets_are_contiguous_and_narrow)
{
    for (unsigned i = 0; i + 1 < STP_LATHIST_BUCKETS; i++) {
        cr_assert_eq(stp_lathist_bucket_hi(i) + 1, stp_lathist_bucket_lo(i + 1), "bucket %u", i);
        uint64_t lo = stp_lathist_bucket_lo(i), hi = stp_lathist_bucket_hi(i);
        if (lo >= (1u << STP_LATHIST_SUB_BITS))
            cr_assert((double)(hi - lo + 1) / (double)lo <= PRECISION, "bucket %u too wide", i);
    }
    uint64_t values[] = {0, 1, 1023, 1024, 1025, 4097, 999999, 123456789, STP_LATHIST_MAX};
    for (size_t k = 0; k < sizeof(values) / sizeof(values[0]); k++) {
        unsigned i = stp_lathist_index(values[k]);
        cr_assert(stp_lathist_bucket_lo(i) <= values[k] && values[k] <= stp_lathist_bucket_hi(i));
    }
    cr_assert_eq(stp_lathist_index(UINT64_MAX), stp_lathist_index(STP_LATHIST_MAX));
}

Test(bench_lathist, small_values_are_exact)
{
    struct stp_lathist *h = new_hist();
    for (uint64_t v = 1; v <= 100; v++)
        stp_lathist_record(h, v);
    cr_assert_eq(stp_lathist_percentile(h, 50), 50);
    cr_assert_eq(stp_lathist_percentile(h, 99), 99);
    cr_assert_eq(stp_lathist_percentile(h, 100), 100);
    cr_assert_eq(stp_lathist_percentile(h, 0), 1);
    cr_assert_eq(h->min, 1);
    cr_assert_eq(h->max, 100);
    cr_assert_float_eq(stp_lathist_mean(h), 50.5, 1e-9);
    free(h);
}

Test(bench_lathist, uniform_distribution_percentiles)
{
    struct stp_lathist *h = new_hist();
    for (uint64_t v = 1; v <= 1000000; v++)
        stp_lathist_record(h, v * 1000); /* 1 us .. 1 s in ns */
    cr_assert_eq(h->total, 1000000);
    assert_near(stp_lathist_percentile(h, 50), 500000000);
    assert_near(stp_lathist_percentile(h, 90), 900000000);
    assert_near(stp_lathist_percentile(h, 99), 990000000);
    assert_near(stp_lathist_percentile(h, 99.9), 999000000);
    cr_assert_eq(stp_lathist_percentile(h, 100), 1000000000, "max is exact");
    cr_assert_eq(h->max, 1000000000);
    cr_assert_eq(h->min, 1000);
    free(h);
}

Test(bench_lathist, bimodal_tail_is_seen)
{
    struct stp_lathist *h = new_hist();
    for (int i = 0; i < 9990; i++)
        stp_lathist_record(h, 100000); /* 100 us */
    for (int i = 0; i < 10; i++)
        stp_lathist_record(h, 50000000); /* 50 ms */
    assert_near(stp_lathist_percentile(h, 50), 100000);
    assert_near(stp_lathist_percentile(h, 99.9), 100000);
    assert_near(stp_lathist_percentile(h, 99.91), 50000000);
    cr_assert_eq(h->max, 50000000);
    free(h);
}

Test(bench_lathist, merge_equals_recording_everything)
{
    struct stp_lathist *a = new_hist(), *b = new_hist(), *all = new_hist();
    srand(7);
    for (int i = 0; i < 100000; i++) {
        uint64_t v = (uint64_t)rand() % 5000000;
        stp_lathist_record(i % 2 ? a : b, v);
        stp_lathist_record(all, v);
    }
    stp_lathist_add(a, b);
    cr_assert_eq(a->total, all->total);
    cr_assert_eq(a->min, all->min);
    cr_assert_eq(a->max, all->max);
    double pcts[] = {1, 50, 90, 99, 99.9, 99.99};
    for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++)
        cr_assert_eq(stp_lathist_percentile(a, pcts[i]), stp_lathist_percentile(all, pcts[i]));
    free(a);
    free(b);
    free(all);
}

Test(bench_lathist, empty_and_clamped)
{
    struct stp_lathist *h = new_hist();
    cr_assert_eq(stp_lathist_percentile(h, 99), 0);
    cr_assert_float_eq(stp_lathist_mean(h), 0.0, 1e-12);
    stp_lathist_record(h, UINT64_MAX);
    cr_assert_eq(h->max, UINT64_MAX, "the exact maximum is kept");
    cr_assert(stp_lathist_percentile(h, 50) >=
              stp_lathist_bucket_lo(stp_lathist_index(STP_LATHIST_MAX)));
    free(h);
}

/* HdrHistogram's correction: one 100 ms sample taken by a sender that
 * should have sampled every 1 ms stands for the 99 it missed too. */
Test(bench_lathist, coordinated_omission_correction)
{
    struct stp_lathist *h = new_hist();
    const uint64_t ms = 1000000;
    for (int i = 0; i < 900; i++)
        stp_lathist_record_corrected(h, 1 * ms / 10, 1 * ms); /* fast: no extra samples */
    cr_assert_eq(h->total, 900);
    stp_lathist_record_corrected(h, 100 * ms, 1 * ms);
    cr_assert_eq(h->total, 1000, "the stall adds the 99 samples it hid");
    /* the 100 slowest are 1, 2, ..., 100 ms */
    assert_near(stp_lathist_percentile(h, 95), 50 * ms);
    assert_near(stp_lathist_percentile(h, 99), 90 * ms);
    assert_near(stp_lathist_percentile(h, 90.1), 1 * ms);
    cr_assert_eq(h->max, 100 * ms);
    /* without the correction the stall would be one sample in 901: p99 stays fast */
    struct stp_lathist *naive = new_hist();
    for (int i = 0; i < 900; i++)
        stp_lathist_record(naive, 1 * ms / 10);
    stp_lathist_record(naive, 100 * ms);
    assert_near(stp_lathist_percentile(naive, 99), 1 * ms / 10);
    free(naive);
    free(h);
}

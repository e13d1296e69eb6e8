/*
 * lathist.h - a log-linear latency histogram (HdrHistogram's bucket layout).
 *
 * Values are non-negative integers (the generator records nanoseconds). Values
 * below 2^STP_LATHIST_SUB_BITS are counted exactly; above that every power of
 * two is split into 2^(STP_LATHIST_SUB_BITS-1) equal sub-buckets, so a value is
 * known to within 1 part in 2^(STP_LATHIST_SUB_BITS-1) (0.2%). Values above
 * STP_LATHIST_MAX are clamped to it (and the exact maximum is kept aside).
 *
 * Not thread-safe: each generator thread records into its own histogram and
 * the main thread merges them with stp_lathist_add() once the threads stopped.
 */
#ifndef STAMPEDE_BENCH_LATHIST_H
#define STAMPEDE_BENCH_LATHIST_H

#include <stdint.h>

#define STP_LATHIST_SUB_BITS 10
#define STP_LATHIST_MAX_BITS 44 /* 2^44 ns is about 4.9 hours */
#define STP_LATHIST_MAX ((UINT64_C(1) << STP_LATHIST_MAX_BITS) - 1)
#define STP_LATHIST_BUCKETS                                                                        \
    ((STP_LATHIST_MAX_BITS - STP_LATHIST_SUB_BITS + 2) << (STP_LATHIST_SUB_BITS - 1))

struct stp_lathist {
    uint64_t total; /* values recorded */
    uint64_t min, max;
    double sum;
    uint64_t counts[STP_LATHIST_BUCKETS];
};

void stp_lathist_init(struct stp_lathist *h);
void stp_lathist_record(struct stp_lathist *h, uint64_t v);
/* HdrHistogram's correction for a closed-loop measurement: record v and, when
 * v is longer than the interval at which samples were expected, the samples
 * that a stalled sender failed to take (v - interval, v - 2*interval, ...). */
void stp_lathist_record_corrected(struct stp_lathist *h, uint64_t v, uint64_t expected_interval);
/* dst += src */
void stp_lathist_add(struct stp_lathist *dst, const struct stp_lathist *src);
/* Smallest recorded bucket value v such that at least `pct` percent of the
 * values are <= v, reported as the highest value of that bucket (capped at
 * the exact maximum). 0 when empty. */
uint64_t stp_lathist_percentile(const struct stp_lathist *h, double pct);
double stp_lathist_mean(const struct stp_lathist *h);

/* Bucket index of a value and the range [lo, hi] of values sharing it. */
unsigned stp_lathist_index(uint64_t v);
uint64_t stp_lathist_bucket_lo(unsigned idx);
uint64_t stp_lathist_bucket_hi(unsigned idx);

#endif

/*
 * lathist.c - log-linear latency histogram (see lathist.h). Owned by one
 * thread at a time; no locking.
 *
 * Layout: with S = STP_LATHIST_SUB_BITS and H = 2^(S-1), values v < 2^S go to
 * index v. A larger v with top bit e (e >= S) lies in bucket b = e - S + 1;
 * its sub-bucket is v >> b, which is in [H, 2H), and its index b * H + (v >> b).
 * The indexes are contiguous across buckets and each one covers 2^b values.
 */
#include "lathist.h"

#include <assert.h>
#include <string.h>

#define HALF (1u << (STP_LATHIST_SUB_BITS - 1))

void stp_lathist_init(struct stp_lathist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

static unsigned shift_of(uint64_t v)
{
    if (v < (UINT64_C(1) << STP_LATHIST_SUB_BITS))
        return 0;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    return e - STP_LATHIST_SUB_BITS + 1;
}

unsigned stp_lathist_index(uint64_t v)
{
    if (v > STP_LATHIST_MAX)
        v = STP_LATHIST_MAX;
    unsigned b = shift_of(v);
    unsigned idx = b * HALF + (unsigned)(v >> b);
    assert(idx < STP_LATHIST_BUCKETS);
    return idx;
}

uint64_t stp_lathist_bucket_lo(unsigned idx)
{
    if (idx < 2 * HALF)
        return idx;
    unsigned b = idx / HALF - 1;
    uint64_t sub = idx - b * HALF;
    return sub << b;
}

uint64_t stp_lathist_bucket_hi(unsigned idx)
{
    if (idx < 2 * HALF)
        return idx;
    unsigned b = idx / HALF - 1;
    return stp_lathist_bucket_lo(idx) + (UINT64_C(1) << b) - 1;
}

static void record_n(struct stp_lathist *h, uint64_t v, uint64_t n)
{
    h->counts[stp_lathist_index(v)] += n;
    h->total += n;
    h->sum += (double)v * (double)n;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void stp_lathist_record(struct stp_lathist *h, uint64_t v)
{
    record_n(h, v, 1);
}

void stp_lathist_record_corrected(struct stp_lathist *h, uint64_t v, uint64_t expected_interval)
{
    record_n(h, v, 1);
    if (expected_interval == 0)
        return;
    for (uint64_t missing = v - (v >= expected_interval ? expected_interval : v);
         missing >= expected_interval; missing -= expected_interval)
        record_n(h, missing, 1);
}

void stp_lathist_add(struct stp_lathist *dst, const struct stp_lathist *src)
{
    for (unsigned i = 0; i < STP_LATHIST_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    dst->total += src->total;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t stp_lathist_percentile(const struct stp_lathist *h, double pct)
{
    if (h->total == 0)
        return 0;
    if (pct > 100.0)
        pct = 100.0;
    /* rank: the number of values that must be <= the answer (at least 1) */
    double want = pct / 100.0 * (double)h->total;
    uint64_t rank = (uint64_t)want;
    /* ceil, forgiving the rounding of pct / 100 (99.9% of 10000 is 9990) */
    if (want - (double)rank > 1e-9 * want || rank == 0)
        rank++;
    uint64_t seen = 0;
    for (unsigned i = 0; i < STP_LATHIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t hi = stp_lathist_bucket_hi(i);
            return hi < h->max ? hi : h->max;
        }
    }
    return h->max;
}

double stp_lathist_mean(const struct stp_lathist *h)
{
    return h->total ? h->sum / (double)h->total : 0.0;
}

/*
 * pacer.c - open-loop rate pacing (see pacer.h). Owned by one producer's
 * thread. Integer arithmetic in 128 bits keeps the schedule exact for any
 * rate: no drift accumulates however long the run.
 */
#include "pacer.h"

#include <assert.h>

#define NS_PER_S UINT64_C(1000000000)

void stp_pacer_init(struct stp_pacer *p, uint64_t start_ns, uint64_t end_ns, uint64_t rate)
{
    p->start_ns = start_ns;
    p->end_ns = end_ns;
    p->rate = rate;
    p->next = 0;
}

uint64_t stp_pacer_intended(const struct stp_pacer *p, uint64_t i)
{
    assert(p->rate > 0);
    return p->start_ns + (uint64_t)((unsigned __int128)i * NS_PER_S / p->rate);
}

/* Number of messages whose intended time is <= t (and < end). */
static uint64_t scheduled_by(const struct stp_pacer *p, uint64_t t)
{
    if (t >= p->end_ns)
        t = p->end_ns - 1;
    if (p->end_ns == 0 || t < p->start_ns)
        return 0;
    /* i is due when floor(i * 1e9 / rate) <= d, that is when i * 1e9 / rate < d + 1 */
    unsigned __int128 d1 = (unsigned __int128)(t - p->start_ns) + 1;
    return (uint64_t)((d1 * p->rate + NS_PER_S - 1) / NS_PER_S);
}

uint64_t stp_pacer_offered(const struct stp_pacer *p, uint64_t now_ns)
{
    if (p->rate == 0)
        return p->next;
    return scheduled_by(p, now_ns);
}

uint64_t stp_pacer_due(const struct stp_pacer *p, uint64_t now_ns)
{
    if (p->rate == 0)
        return now_ns < p->end_ns && now_ns >= p->start_ns ? UINT64_MAX : 0;
    uint64_t n = scheduled_by(p, now_ns);
    return n > p->next ? n - p->next : 0;
}

uint64_t stp_pacer_take(struct stp_pacer *p, uint64_t now_ns)
{
    uint64_t i = p->next++;
    if (p->rate == 0)
        return now_ns;
    return stp_pacer_intended(p, i);
}

uint64_t stp_pacer_interval(const struct stp_pacer *p)
{
    return p->rate ? NS_PER_S / p->rate : 0;
}

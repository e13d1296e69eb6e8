/*
 * backoff.c - slowing down password guessing from one source address.
 *
 * Shared by every worker (a client reconnects to whichever worker the kernel
 * picks), so the table is atomics, no lock, touched only on CONNECT. A
 * stripe's window restarts when a failure comes a minute or more after the
 * window began; the restart is a compare-and-swap on the start time, and the
 * count is then reset. Two workers restarting the same window at once may
 * lose a failure or two: the delay is a deterrent, not an account, and it
 * errs by a failure, never by a minute.
 */
#include "auth.h"

#define WINDOW_MS 60000u
#define FIRST_DELAY_MS 250u

static struct stp_backoff_stripe *stripe_of(struct stp_backoff *b, uint32_t stripe)
{
    return &b->stripes[stripe % STP_BACKOFF_STRIPES];
}

/* The failures counted in s's window at now (0 when the window is over). */
static unsigned current_failures(struct stp_backoff_stripe *s, uint64_t now_ms)
{
    uint64_t start = atomic_load_explicit(&s->window_start_ms, memory_order_relaxed);
    if (start == 0 || now_ms - start >= WINDOW_MS)
        return 0;
    return atomic_load_explicit(&s->failures, memory_order_relaxed);
}

uint64_t stp_backoff_delay(struct stp_backoff *b, uint32_t stripe, uint64_t now_ms)
{
    unsigned f = current_failures(stripe_of(b, stripe), now_ms);
    if (f < STP_BACKOFF_FREE_FAILURES)
        return 0;
    unsigned doublings = f - STP_BACKOFF_FREE_FAILURES;
    if (doublings >= 5)
        return STP_BACKOFF_MAX_DELAY_MS;
    uint64_t d = (uint64_t)FIRST_DELAY_MS << doublings;
    return d < STP_BACKOFF_MAX_DELAY_MS ? d : STP_BACKOFF_MAX_DELAY_MS;
}

void stp_backoff_failed(struct stp_backoff *b, uint32_t stripe, uint64_t now_ms)
{
    struct stp_backoff_stripe *s = stripe_of(b, stripe);
    if (now_ms == 0)
        now_ms = 1; /* 0 means "no window yet" */
    uint64_t start = atomic_load_explicit(&s->window_start_ms, memory_order_relaxed);
    if (start == 0 || now_ms - start >= WINDOW_MS) {
        if (atomic_compare_exchange_strong_explicit(&s->window_start_ms, &start, now_ms,
                                                    memory_order_relaxed, memory_order_relaxed)) {
            atomic_store_explicit(&s->failures, 1, memory_order_relaxed);
            return;
        }
    }
    atomic_fetch_add_explicit(&s->failures, 1, memory_order_relaxed);
}

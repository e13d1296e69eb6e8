/*
 * clock.h - wall-clock time for message expiry.
 *
 * Expiry times are epoch milliseconds (ActiveMQ's expires header), so they
 * keep their meaning in a journal across restarts; the loop's monotonic
 * clock does not. Any thread.
 */
#ifndef STAMPEDE_CLOCK_H
#define STAMPEDE_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t stp_epoch_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif

/*
 * pacer.h - open-loop rate pacing for one producer.
 *
 * Message i of a producer paced at `rate` messages/s is due at
 * start + i * 1e9 / rate nanoseconds: its intended send time. The schedule
 * never moves: a sender that fell behind (full socket, slow broker, a late
 * timer) catches up by sending every overdue message with its original
 * intended time, so latency measured from that time includes the wait
 * (coordinated omission is not hidden). With rate 0 there is no schedule:
 * every message is due at once and its intended time is the time it is made.
 *
 * Owned by the producer's thread; not thread-safe.
 */
#ifndef STAMPEDE_BENCH_PACER_H
#define STAMPEDE_BENCH_PACER_H

#include <stdint.h>

struct stp_pacer {
    uint64_t start_ns; /* intended time of message 0 */
    uint64_t end_ns;   /* messages due at or after this are never sent */
    uint64_t rate;     /* messages per second; 0 = unpaced */
    uint64_t next;     /* index of the next message to send */
};

void stp_pacer_init(struct stp_pacer *p, uint64_t start_ns, uint64_t end_ns, uint64_t rate);
/* Intended send time of message i (rate > 0). */
uint64_t stp_pacer_intended(const struct stp_pacer *p, uint64_t i);
/* Messages due at `now` and not yet taken (UINT64_MAX when unpaced and
 * before the end; 0 once the end is reached and everything due was taken). */
uint64_t stp_pacer_due(const struct stp_pacer *p, uint64_t now_ns);
/* Take the next message: returns its intended send time (now_ns when
 * unpaced). Only call when stp_pacer_due() > 0. */
uint64_t stp_pacer_take(struct stp_pacer *p, uint64_t now_ns);
/* Messages the schedule offered up to `now` (capped at the end). */
uint64_t stp_pacer_offered(const struct stp_pacer *p, uint64_t now_ns);
/* Nanoseconds between messages, 0 when unpaced. */
uint64_t stp_pacer_interval(const struct stp_pacer *p);

#endif

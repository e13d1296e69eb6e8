/*
 * deadletter.h - building the dead letter of a queue message (issue 12).
 */
#ifndef STP_BROKER_DEADLETTER_H
#define STP_BROKER_DEADLETTER_H

#include <stdbool.h>
#include <stddef.h>

struct stp_msg;

/* Is name a dead-letter queue (/queue/DLQ.*)? Its own dead letters are
 * dropped, never moved again. */
bool stp_dead_letter_is_dlq(const char *name, size_t len);

/* A new message (one reference) for /queue/DLQ.<name of m's queue>, with
 * x-death-reason:why and x-original-destination, the original's headers
 * and body, persistent when m is, no expiry. NULL when the DLQ's name
 * would be longer than max_dest_len, or out of memory. */
struct stp_msg *stp_dead_letter_build(const struct stp_msg *m, const char *why,
                                      size_t max_dest_len);

#endif

/*
 * log.h - one-line log records on stderr.
 *
 * Format: `2026-11-26T01:02:03.456Z LEVEL [wN] message`. Thread-safe: each
 * record is formatted into a local buffer and written with one write(2).
 * Tests read the `listening on URL` lines to find ephemeral ports.
 */
#ifndef STAMPEDE_LOG_H
#define STAMPEDE_LOG_H

enum stp_log_level { STP_LOG_DEBUG, STP_LOG_INFO, STP_LOG_WARN, STP_LOG_ERROR };

void stp_log_set_level(enum stp_log_level lvl);
/* Worker index shown in records from this thread; -1 for the main thread. */
void stp_log_set_thread_worker(int worker);
void stp_log(enum stp_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define stp_debug(...) stp_log(STP_LOG_DEBUG, __VA_ARGS__)
#define stp_info(...) stp_log(STP_LOG_INFO, __VA_ARGS__)
#define stp_warn(...) stp_log(STP_LOG_WARN, __VA_ARGS__)
#define stp_error(...) stp_log(STP_LOG_ERROR, __VA_ARGS__)

#endif

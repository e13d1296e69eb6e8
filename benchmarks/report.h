/*
 * report.h - the outcome of one run: totals, rates, latency, per-subscription
 * and per-destination counts; printed for humans and written as JSON.
 * Built by the main thread after the workers were joined.
 */
#ifndef STAMPEDE_BENCH_REPORT_H
#define STAMPEDE_BENCH_REPORT_H

#include "lathist.h"
#include "options.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct stp_bench_sub_report {
    unsigned consumer, dest;
    uint64_t received, unique, duplicated, reordered, invalid, foreign;
    int64_t lost; /* topics: this subscription's loss; queues: -1 (see the destination) */
    int64_t first_lost_producer, first_lost_seq; /* -1 when nothing was lost */
};

struct stp_bench_dest_report {
    const char *name;
    unsigned producers, consumers;
    uint64_t sent, lost, delivered;
    int64_t first_lost_producer, first_lost_seq; /* queues; -1 when nothing was lost */
};

struct stp_bench_report {
    const struct stp_bench_config *cfg;
    unsigned threads;
    bool failed;
    bool started; /* the measured part began (every connection was ready) */
    char error[512];
    char timestamp[32];
    uint64_t sent;      /* SENDs written to the socket: what the broker was handed */
    uint64_t unwritten; /* SENDs still in the generator's buffers at the end */
    uint64_t sent_measured, expected, delivered, received, delivered_measured;
    uint64_t lost, duplicated, reordered, invalid, foreign;
    double offered_rate, sent_rate, delivered_rate, fanout;
    uint64_t backlog_at_end;
    double drain_ms;
    bool drained;
    bool producers_flushed; /* every producer wrote all it generated before the end */
    struct stp_lathist *lat, *rcpt_lat;
    uint64_t receipts;          /* RECEIPTs received for SENDs */
    uint64_t receipts_expected; /* SENDs that asked for one */
    unsigned idle_requested, idle_alive;
    uint64_t bytes_out, bytes_in;
    unsigned nsubs, ndests;
    struct stp_bench_sub_report *subs;
    struct stp_bench_dest_report *dests;
};

/* Whether the broker kept up: no loss/duplicates/reordering, everything
 * drained within 1 s of the end (every message and every receipt asked for
 * arrived), deliveries inside the window at least 90% of
 * sends times the fan-out (the backlog did not grow), and (when paced) at
 * least 95% of the offered rate was sent. The compare script's sweep relies
 * on it. */
bool stp_bench_report_sustained(const struct stp_bench_report *rep);
void stp_bench_report_print(const struct stp_bench_report *rep, FILE *out);
int stp_bench_report_write_json(const struct stp_bench_report *rep, FILE *out);

#endif

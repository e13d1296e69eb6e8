/*
 * run.h - one generator run from the main thread's side: build the threads
 * and connections, connect, start, print progress, stop the producers, drain,
 * stop, and fill the report. Main thread only.
 */
#ifndef STAMPEDE_BENCH_RUN_H
#define STAMPEDE_BENCH_RUN_H

#include "bench.h"
#include "report.h"

/* Runs the benchmark described by cfg. Returns 0 when the run completed (the
 * report says whether anything was lost) or STP_E* when it could not be set
 * up; a broker failure during the run is rep->failed with rep->error.
 * Call stp_bench_run_free() afterwards in every case. */
int stp_bench_run(struct stp_bench_run *r, const struct stp_bench_config *cfg,
                  struct stp_bench_report *rep);
void stp_bench_run_free(struct stp_bench_run *r, struct stp_bench_report *rep);
/* Ask a running stp_bench_run() to stop early (async-signal-safe). */
void stp_bench_run_interrupt(void);

#endif

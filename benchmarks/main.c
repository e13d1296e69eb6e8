/*
 * main.c - stampede-bench, the load generator of Stampede.
 *
 * Exit status: 0 the run completed with nothing lost, duplicated or reordered;
 * 1 the broker failed the run (refused connection, ERROR frame, closed
 * connection, timeout); 2 bad options; 3 the run completed but messages were
 * lost, duplicated or reordered.
 */
#include "run.h"

#include "stampede/error.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static void on_signal(int sig)
{
    (void)sig;
    stp_bench_run_interrupt();
}

static int write_json(const struct stp_bench_report *rep, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "stampede-bench: cannot write %s\n", path);
        return STP_EIO;
    }
    int rc = stp_bench_report_write_json(rep, f);
    if (fclose(f) != 0)
        rc = STP_EIO;
    return rc;
}

int main(int argc, char **argv)
{
    static struct stp_bench_config cfg;
    static struct stp_bench_run run;
    struct stp_bench_report rep;
    char err[4096];
    stp_bench_config_defaults(&cfg);
    int rc = stp_bench_parse_args(&cfg, argc, argv, err, sizeof(err));
    if (rc == 1) {
        fputs(err, stdout);
        return 0;
    }
    if (rc) {
        fprintf(stderr, "stampede-bench: %s\n", err);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    rc = stp_bench_run(&run, &cfg, &rep);
    if (rc) {
        fprintf(stderr, "stampede-bench: cannot set up the run: %s\n", stp_strerror(rc));
        stp_bench_run_free(&run, &rep);
        return 1;
    }
    if (rep.failed)
        fprintf(stderr, "stampede-bench: %s\n", rep.error);
    if (rep.lat && rep.started)
        stp_bench_report_print(&rep, stdout);
    int status = rep.failed ? 1 : (rep.lost || rep.duplicated || rep.reordered) ? 3 : 0;
    if (cfg.json_path[0] && rep.lat && write_json(&rep, cfg.json_path) != 0)
        status = status ? status : 1;
    stp_bench_run_free(&run, &rep);
    return status;
}

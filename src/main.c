/*
 * main.c - parse the configuration, start the workers, wait for SIGTERM or
 * SIGINT, stop gracefully and exit 0. The main thread owns no connection.
 */
#include "auth/auth.h"
#include "broker/broker.h"
#include "stampede/config.h"
#include "stampede/log.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>
#include <uv.h>

extern char **environ;

/*
 * Signals: SIGTERM, SIGINT and SIGHUP are blocked in every thread (the mask is
 * set before the first thread starts, and threads inherit it) and read from a
 * signalfd on the main loop. No signal handler ever runs, so a signal cannot
 * land on a worker busy elsewhere, nor be deferred and lost (ThreadSanitizer
 * defers a handler that interrupts a thread outside a blocking call: about
 * one SIGTERM in 500 was never handled by the uv_signal version). The kernel
 * keeps the signal pending until the main loop reads it.
 */
struct signals {
    uv_poll_t poll;
    int fd;
    struct stp_broker *broker;
};

static int block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    return pthread_sigmask(SIG_BLOCK, set, NULL) == 0 ? 0 : -1;
}

static void on_signals(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    struct signals *sg = p->data;
    struct signalfd_siginfo si;
    while (read(sg->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            stp_info("received SIGHUP, reloading TLS certificates");
            stp_broker_reload_tls(sg->broker);
            continue;
        }
        stp_info("received %s, shutting down", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
        uv_stop(p->loop);
        return;
    }
}

static int watch_signals(uv_loop_t *loop, struct signals *sg, const sigset_t *set)
{
    sg->fd = signalfd(-1, set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sg->fd < 0 || uv_poll_init(loop, &sg->poll, sg->fd) != 0) {
        stp_error("could not watch for signals: %s", strerror(errno));
        return -1;
    }
    sg->poll.data = sg;
    uv_poll_start(&sg->poll, UV_READABLE, on_signals);
    return 0;
}

static int run(const struct stp_config *cfg)
{
    struct stp_broker broker;
    /* Block the signals before any thread exists (the journal's and the
     * workers' inherit the mask): a supervisor may send SIGTERM as soon as
     * it sees the "listening on" line, and it then waits in the kernel. */
    sigset_t set;
    if (block_signals(&set) < 0)
        return 1;
    if (stp_broker_prepare(&broker, cfg) < 0)
        return 2;
    stp_info("stampede %s starting with %u workers", STP_VERSION, cfg->workers);
    uv_loop_t *loop = uv_default_loop();
    struct signals sg = {.broker = &broker};
    if (watch_signals(loop, &sg, &set) < 0)
        return 1;
    if (stp_broker_start(&broker) < 0) {
        stp_error("could not start the broker");
        return 1;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    stp_broker_stop(&broker);
    uv_close((uv_handle_t *)&sg.poll, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    close(sg.fd);
    uv_loop_close(loop);
    stp_info("stopped");
    return 0;
}

int main(int argc, char **argv)
{
    struct stp_config cfg;
    signal(SIGPIPE, SIG_IGN);
    if (argc >= 2 && strcmp(argv[1], "hash-password") == 0) {
        if (argc > 2) {
            fprintf(stderr, "stampede: hash-password takes no arguments: it reads the password "
                            "on stdin\n");
            return 2;
        }
        return stp_hash_password_main(stdin, stdout, stderr);
    }
    switch (stp_config_parse(&cfg, argc, argv, environ)) {
    case STP_CONFIG_EXIT:
        return 0;
    case STP_CONFIG_ERROR:
        return 2;
    case STP_CONFIG_RUN:
        break;
    }
    stp_log_set_level((enum stp_log_level)cfg.log_level);
    int rc = run(&cfg);
    stp_config_free(&cfg);
    return rc;
}

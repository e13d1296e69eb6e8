/*
 * main.c - parse the configuration, start the workers, wait for SIGTERM or
 * SIGINT, stop gracefully and exit 0. The main thread owns no connection.
 */
#include "auth/auth.h"
#include "broker/broker.h"
#include "stampede/config.h"
#include "stampede/log.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

extern char **environ;

static void on_signal(uv_signal_t *s, int signum)
{
    stp_info("received %s, shutting down", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    uv_stop(s->loop);
}

static void on_sighup(uv_signal_t *s, int signum)
{
    (void)signum;
    stp_info("received SIGHUP, reloading TLS certificates");
    stp_broker_reload_tls(s->data);
}

static int run(const struct stp_config *cfg)
{
    struct stp_broker broker;
    if (stp_broker_prepare(&broker, cfg) < 0)
        return 2;
    stp_info("stampede %s starting with %u workers", STP_VERSION, cfg->workers);
    /* Catch the signals before the listeners open: a supervisor may send
     * SIGTERM as soon as it sees the "listening on" line. */
    uv_loop_t *loop = uv_default_loop();
    uv_signal_t sigterm, sigint, sighup;
    uv_signal_init(loop, &sigterm);
    uv_signal_init(loop, &sigint);
    uv_signal_init(loop, &sighup);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_start(&sigint, on_signal, SIGINT);
    sighup.data = &broker;
    uv_signal_start(&sighup, on_sighup, SIGHUP);
    if (stp_broker_start(&broker) < 0) {
        stp_error("could not start the broker");
        return 1;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    stp_broker_stop(&broker);
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_close((uv_handle_t *)&sighup, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
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

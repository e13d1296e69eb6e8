/*
 * options.h - stampede-bench's command line: the configuration of one run,
 * the keyword table that parses it, the presets and the broker URL.
 *
 * Pure functions over caller memory; used by the main thread before any
 * worker thread exists, and by the unit tests.
 */
#ifndef STAMPEDE_BENCH_OPTIONS_H
#define STAMPEDE_BENCH_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct stp_bench_transport;

enum stp_bench_ack { STP_BENCH_ACK_AUTO, STP_BENCH_ACK_CLIENT, STP_BENCH_ACK_CLIENT_INDIVIDUAL };

struct stp_bench_url {
    const struct stp_bench_transport *transport;
    char host[256];
    uint16_t port;
    char vhost[128]; /* STOMP host header: the URL path without its '/', or "/" */
    char path[256];  /* ws:// and wss://: the HTTP path of the upgrade (default /ws) */
};

struct stp_bench_config {
    char url_text[512];
    struct stp_bench_url url;
    /* --sub-url: where consumers and pattern subscribers connect (another
     * node of a cluster); "" = the same broker as --url (then sub_url is
     * unset: use stp_bench_sub_url). Producers and idle connections use url. */
    char sub_url_text[512];
    struct stp_bench_url sub_url;
    const char *preset; /* NULL or the preset's name */
    unsigned producers, consumers, destinations;
    bool topic;
    size_t size;   /* body bytes */
    uint64_t rate; /* per producer, messages/s; 0 = as fast as possible */
    uint64_t duration_ns, warmup_ns, drain_ns, connect_timeout_ns;
    uint64_t tick_ns; /* pacing timer period; 0 = the producers' interval in [100 us, 1 ms] */
    enum stp_bench_ack ack;
    unsigned prefetch;   /* 0 = no prefetch-count header */
    unsigned receipts;   /* ask a RECEIPT for every Nth SEND; 0 = never */
    unsigned window;     /* unpaced: most messages per producer not yet delivered (and, with
                            receipts, not yet receipted); 0 = no limit */
    bool persistent;     /* SENDs carry persistent:true */
    unsigned dedup;      /* 0: no dedup-id; N: each dedup-id on N SENDs in a row (1: unique) */
    bool selector_split; /* queues: SENDs carry part:<seq mod consumers of the queue>, and
                            consumer k of a queue subscribes with selector "part = k" */
    unsigned threads;    /* 0 = the CPUs this process may use */
    char login[128], passcode[128];
    unsigned idle_connections;
    unsigned idle_patterns; /* pattern subscriptions on topics the load never touches */
    unsigned heartbeat_ms;  /* heart-beat of idle connections */
    char json_path[512];
    char accept_version[16]; /* CONNECT accept-version: "1.0,1.1,1.2" or one of them */
    char tls_ca[512];        /* stomp+ssl://, wss://: verify the broker against these CAs */
    char dest_prefix[64];    /* destinations are /topic/PREFIX-N or /queue/PREFIX-N */
    bool quiet;              /* no progress lines */
};

/* Defaults (no preset). */
void stp_bench_config_defaults(struct stp_bench_config *cfg);
/* Parse argv into cfg. Returns 0, or STP_EINVAL with a one-line message in
 * err (no trailing newline). "--help" returns 1 after writing usage in err. */
int stp_bench_parse_args(struct stp_bench_config *cfg, int argc, char **argv, char *err,
                         size_t errlen);
/* Parse "stomp://host:port[/vhost]" and the other schemes. */
int stp_bench_parse_url(struct stp_bench_url *u, const char *text, char *err, size_t errlen);
/* The URL subscribers dial: --sub-url when given, else --url. */
const struct stp_bench_url *stp_bench_sub_url(const struct stp_bench_config *cfg);
/* "10", "10s", "250ms", "2m" -> nanoseconds. 0 or STP_EINVAL. */
int stp_bench_parse_duration(const char *s, uint64_t *ns);
const char *stp_bench_ack_name(enum stp_bench_ack a);
/* Usage text. */
const char *stp_bench_usage(void);

#endif

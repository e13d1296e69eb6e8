/*
 * options.c - stampede-bench's command line (see options.h). A table of
 * keywords, each with its argument parser, and a table of presets applied
 * before the explicit options so that options override a preset.
 * Main thread only.
 */
#include "options.h"

#include "transport.h"

#include "stampede/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS UINT64_C(1000000)
#define SEC UINT64_C(1000000000)

struct preset {
    const char *name;
    const char *what;
    void (*apply)(struct stp_bench_config *cfg);
};

static void preset_fanout(struct stp_bench_config *c)
{
    c->producers = 1, c->consumers = 10, c->destinations = 1, c->topic = true;
}

static void preset_fanout100(struct stp_bench_config *c)
{
    c->producers = 1, c->consumers = 100, c->destinations = 1, c->topic = true;
}

static void preset_queue_pairs(struct stp_bench_config *c)
{
    c->producers = 10, c->consumers = 10, c->destinations = 10, c->topic = false;
    c->ack = STP_BENCH_ACK_AUTO;
}

static void preset_work_queue(struct stp_bench_config *c)
{
    c->producers = 4, c->consumers = 8, c->destinations = 1, c->topic = false;
    c->ack = STP_BENCH_ACK_CLIENT_INDIVIDUAL, c->prefetch = 10;
}

/* Durable work queues as RabbitMQ users run them: persistent messages, a
 * RECEIPT per SEND (the publisher's proof that this message is on disk: what a
 * publisher confirm is in AMQP; per message, so every message's wait is
 * measured and no broker-specific "a receipt covers what came before" is
 * assumed), and manual per-message acks with a prefetch in the range
 * RabbitMQ's documentation recommends for throughput (100-300): an auto-ack
 * consumer loses whatever it had been handed when it dies, which is what
 * durable queues are there to prevent. Unpaced, at most 200 messages per
 * producer await their receipt (2,000 in all): plenty for a group commit (one
 * fdatasync takes about 0.3 ms here), and a broker doing a few thousand
 * msg/s still drains it well within a second. */
static void preset_durable(struct stp_bench_config *c)
{
    c->producers = 10, c->consumers = 10, c->destinations = 10, c->topic = false;
    c->persistent = true, c->receipts = 1, c->window = 200;
    c->ack = STP_BENCH_ACK_CLIENT_INDIVIDUAL, c->prefetch = 100;
}

static void preset_latency(struct stp_bench_config *c)
{
    c->producers = 1, c->consumers = 1, c->destinations = 1, c->topic = true;
    c->rate = 5000;
}

static void preset_connections(struct stp_bench_config *c)
{
    c->producers = 10, c->consumers = 10, c->destinations = 10, c->topic = false;
    c->rate = 1000, c->idle_connections = 1000, c->heartbeat_ms = 5000;
}

static const struct preset presets[] = {
    {"fanout", "1 producer -> 1 topic -> 10 subscribers", preset_fanout},
    {"fanout-100", "1 producer -> 1 topic -> 100 subscribers", preset_fanout100},
    {"queue-pairs", "10 producers -> 10 queues -> 10 consumers, auto ack", preset_queue_pairs},
    {"work-queue", "4 producers -> 1 queue -> 8 consumers, client-individual, prefetch 10",
     preset_work_queue},
    {"durable",
     "10 producers -> 10 queues -> 10 consumers, persistent:true, a receipt per SEND, "
     "client-individual, prefetch 100, window 200",
     preset_durable},
    {"latency", "1 producer -> 1 topic -> 1 subscriber at 5000 msg/s", preset_latency},
    {"connections", "1000 idle connections (heart-beat 5 s) + 10 queue pairs at 1000 msg/s",
     preset_connections},
};

void stp_bench_config_defaults(struct stp_bench_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->url_text, sizeof(cfg->url_text), "stomp://127.0.0.1:61613");
    stp_bench_parse_url(&cfg->url, cfg->url_text, NULL, 0);
    cfg->producers = 1, cfg->consumers = 1, cfg->destinations = 1, cfg->topic = true;
    cfg->size = 100;
    cfg->duration_ns = 5 * SEC, cfg->warmup_ns = 1 * SEC, cfg->drain_ns = 5 * SEC;
    cfg->connect_timeout_ns = 10 * SEC;
    cfg->ack = STP_BENCH_ACK_AUTO;
    cfg->heartbeat_ms = 10000;
    cfg->window = 5000;
    snprintf(cfg->accept_version, sizeof(cfg->accept_version), "1.0,1.1,1.2");
    snprintf(cfg->dest_prefix, sizeof(cfg->dest_prefix), "bench");
}

static int errf(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int errf(char *err, size_t len, const char *fmt, ...)
{
    if (err && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, len, fmt, ap);
        va_end(ap);
    }
    return STP_EINVAL;
}

int stp_bench_parse_duration(const char *s, uint64_t *ns)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-' || *s == '+')
        return STP_EINVAL;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0 || v > 86400.0 * 7)
        return STP_EINVAL;
    double mult = 1e9;
    if (strcmp(end, "ms") == 0)
        mult = 1e6;
    else if (strcmp(end, "us") == 0)
        mult = 1e3;
    else if (strcmp(end, "m") == 0)
        mult = 60e9;
    else if (*end && strcmp(end, "s") != 0)
        return STP_EINVAL;
    *ns = (uint64_t)(v * mult);
    return 0;
}

/* stp_bench_parse_url for the option `opt` ("--url", "--sub-url"), which the
 * error messages name. */
static int parse_url_as(struct stp_bench_url *u, const char *opt, const char *text, char *err,
                        size_t errlen)
{
    const char *sep = strstr(text, "://");
    if (!sep)
        return errf(err, errlen, "%s: expected SCHEME://HOST:PORT, got '%s'", opt, text);
    u->transport = stp_bench_transport_find(text, (size_t)(sep - text));
    if (!u->transport)
        return errf(err, errlen, "%s: unknown scheme '%.*s' (stomp, stomp+ssl, ws, wss)", opt,
                    (int)(sep - text), text);
    const char *host = sep + 3, *path = strchr(host, '/');
    size_t hostport_len = path ? (size_t)(path - host) : strlen(host);
    const char *colon = memchr(host, ':', hostport_len);
    if (host[0] == '[')
        return errf(err, errlen, "%s: IPv6 literals are not supported yet", opt);
    size_t hlen = colon ? (size_t)(colon - host) : hostport_len;
    if (hlen == 0 || hlen >= sizeof(u->host))
        return errf(err, errlen, "%s: missing or too long host in '%s'", opt, text);
    memcpy(u->host, host, hlen);
    u->host[hlen] = '\0';
    u->port = u->transport->default_port;
    if (colon) {
        char *end;
        unsigned long port = strtoul(colon + 1, &end, 10);
        if (end != host + hostport_len || end == colon + 1 || port == 0 || port > 65535)
            return errf(err, errlen, "%s: bad port in '%s'", opt, text);
        u->port = (uint16_t)port;
    }
    /* WebSocket: the path is the HTTP path (default /ws) and the STOMP host
     * header is "/"; otherwise the path names the virtual host */
    const char *vh = path && path[1] ? path + 1 : "/";
    const char *wp = path && path[1] ? path : "/ws";
    if (strlen(vh) >= sizeof(u->vhost) || strlen(wp) >= sizeof(u->path))
        return errf(err, errlen, "%s: path too long", opt);
    snprintf(u->vhost, sizeof(u->vhost), "%s", u->transport->websocket ? "/" : vh);
    snprintf(u->path, sizeof(u->path), "%s", u->transport->websocket ? wp : "");
    return 0;
}

int stp_bench_parse_url(struct stp_bench_url *u, const char *text, char *err, size_t errlen)
{
    return parse_url_as(u, "--url", text, err, errlen);
}

const struct stp_bench_url *stp_bench_sub_url(const struct stp_bench_config *cfg)
{
    return cfg->sub_url_text[0] ? &cfg->sub_url : &cfg->url;
}

const char *stp_bench_ack_name(enum stp_bench_ack a)
{
    switch (a) {
    case STP_BENCH_ACK_CLIENT:
        return "client";
    case STP_BENCH_ACK_CLIENT_INDIVIDUAL:
        return "client-individual";
    default:
        return "auto";
    }
}

/* --- keyword parsers --- */

static int parse_uint(const char *opt, const char *arg, unsigned long long max,
                      unsigned long long *out, char *err, size_t errlen)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(arg, &end, 10);
    if (!*arg || *arg == '-' || *arg == '+' || *end || errno || v > max)
        return errf(err, errlen, "%s: expected an integer from 0 to %llu, got '%s'", opt, max, arg);
    *out = v;
    return 0;
}

#define UINT_SETTER(fname, field, max)                                                             \
    static int fname(struct stp_bench_config *c, const char *o, const char *a, char *e, size_t n)  \
    {                                                                                              \
        unsigned long long v = 0;                                                                  \
        int rc = parse_uint(o, a, (max), &v, e, n);                                                \
        if (rc == 0)                                                                               \
            c->field = v;                                                                          \
        return rc;                                                                                 \
    }

UINT_SETTER(set_producers, producers, 100000)
UINT_SETTER(set_consumers, consumers, 100000)
UINT_SETTER(set_destinations, destinations, 100000)
UINT_SETTER(set_size, size, 64 * 1024 * 1024)
UINT_SETTER(set_rate, rate, 1000000000)
UINT_SETTER(set_prefetch, prefetch, 1000000)
UINT_SETTER(set_threads, threads, 1024)
UINT_SETTER(set_idle, idle_connections, 1000000)
UINT_SETTER(set_idle_patterns, idle_patterns, 10000000)
UINT_SETTER(set_heartbeat, heartbeat_ms, 3600000)
UINT_SETTER(set_window, window, 100000000)

#define DURATION_SETTER(fname, field)                                                              \
    static int fname(struct stp_bench_config *c, const char *o, const char *a, char *e, size_t n)  \
    {                                                                                              \
        if (stp_bench_parse_duration(a, &c->field) != 0)                                           \
            return errf(e, n, "%s: expected a duration like 10, 10s, 500ms or 2m, got '%s'", o,    \
                        a);                                                                        \
        return 0;                                                                                  \
    }

DURATION_SETTER(set_duration, duration_ns)
DURATION_SETTER(set_warmup, warmup_ns)
DURATION_SETTER(set_drain, drain_ns)
DURATION_SETTER(set_connect_timeout, connect_timeout_ns)
DURATION_SETTER(set_tick, tick_ns)

#define STR_SETTER(fname, field)                                                                   \
    static int fname(struct stp_bench_config *c, const char *o, const char *a, char *e, size_t n)  \
    {                                                                                              \
        if (strlen(a) >= sizeof(c->field))                                                         \
            return errf(e, n, "%s: value too long", o);                                            \
        snprintf(c->field, sizeof(c->field), "%s", a);                                             \
        return 0;                                                                                  \
    }

STR_SETTER(set_login, login)
STR_SETTER(set_passcode, passcode)
STR_SETTER(set_json, json_path)
STR_SETTER(set_tls_ca, tls_ca)

static int set_prefix(struct stp_bench_config *c, const char *o, const char *a, char *e, size_t n)
{
    if (!*a || strlen(a) >= sizeof(c->dest_prefix) || strpbrk(a, "/:\\\n\r"))
        return errf(e, n, "%s: expected up to %zu characters without '/', ':', '\\' or EOLs", o,
                    sizeof(c->dest_prefix) - 1);
    snprintf(c->dest_prefix, sizeof(c->dest_prefix), "%s", a);
    return 0;
}

static int set_url(struct stp_bench_config *c, const char *o, const char *a, char *e, size_t n)
{
    if (strlen(a) >= sizeof(c->url_text))
        return errf(e, n, "%s: value too long", o);
    snprintf(c->url_text, sizeof(c->url_text), "%s", a);
    return parse_url_as(&c->url, o, a, e, n);
}

static int set_sub_url(struct stp_bench_config *c, const char *o, const char *a, char *e, size_t n)
{
    if (strlen(a) >= sizeof(c->sub_url_text))
        return errf(e, n, "%s: value too long", o);
    int rc = parse_url_as(&c->sub_url, o, a, e, n);
    /* the text only once the URL parsed: a refused --sub-url leaves none */
    if (rc == 0)
        snprintf(c->sub_url_text, sizeof(c->sub_url_text), "%s", a);
    return rc;
}

static int set_version(struct stp_bench_config *c, const char *o, const char *a, char *e, size_t n)
{
    if (strcmp(a, "1.0") != 0 && strcmp(a, "1.1") != 0 && strcmp(a, "1.2") != 0)
        return errf(e, n, "%s: expected 1.0, 1.1 or 1.2, got '%s'", o, a);
    snprintf(c->accept_version, sizeof(c->accept_version), "%s", a);
    return 0;
}

static int set_topic(struct stp_bench_config *c, const char *o, const char *a, char *e, size_t n)
{
    c->topic = true;
    return 0;
}

static int set_queue(struct stp_bench_config *c, const char *o, const char *a, char *e, size_t n)
{
    c->topic = false;
    return 0;
}

static int set_persistent(struct stp_bench_config *c, const char *o, const char *a, char *e,
                          size_t n)
{
    c->persistent = true;
    return 0;
}

static int set_selector_split(struct stp_bench_config *c, const char *o, const char *a, char *e,
                              size_t n)
{
    c->selector_split = true;
    return 0;
}

static int set_quiet(struct stp_bench_config *c, const char *o, const char *a, char *e, size_t n)
{
    c->quiet = true;
    return 0;
}

static int set_ack(struct stp_bench_config *c, const char *o, const char *a, char *e, size_t n)
{
    if (strcmp(a, "auto") == 0)
        c->ack = STP_BENCH_ACK_AUTO;
    else if (strcmp(a, "client") == 0)
        c->ack = STP_BENCH_ACK_CLIENT;
    else if (strcmp(a, "client-individual") == 0)
        c->ack = STP_BENCH_ACK_CLIENT_INDIVIDUAL;
    else
        return errf(e, n, "%s: expected auto, client or client-individual, got '%s'", o, a);
    return 0;
}

static int set_receipts(struct stp_bench_config *c, const char *o, const char *a, char *e, size_t n)
{
    if (!a) {
        c->receipts = 1;
        return 0;
    }
    unsigned long long v = 0;
    int rc = parse_uint(o, a, 1000000000, &v, e, n);
    if (rc == 0)
        c->receipts = (unsigned)v;
    return rc;
}

static int set_dedup(struct stp_bench_config *c, const char *o, const char *a, char *e, size_t n)
{
    if (!a) {
        c->dedup = 1;
        return 0;
    }
    unsigned long long v = 0;
    int rc = parse_uint(o, a, 1000000000, &v, e, n);
    if (rc == 0 && v == 0)
        return errf(e, n, "%s: N must be at least 1", o);
    if (rc == 0)
        c->dedup = (unsigned)v;
    return rc;
}

/* Presets are applied in a first pass; here the option is only validated. */
static int set_preset(struct stp_bench_config *c, const char *o, const char *a, char *e, size_t n)
{
    for (size_t i = 0; i < sizeof(presets) / sizeof(presets[0]); i++)
        if (strcmp(presets[i].name, a) == 0)
            return 0;
    return errf(e, n,
                "%s: unknown preset '%s' (fanout, fanout-100, queue-pairs, work-queue, "
                "durable, latency, connections)",
                o, a);
}

enum arg_kind { ARG_NONE, ARG_REQUIRED, ARG_OPTIONAL };

struct keyword {
    const char *name;
    enum arg_kind arg;
    int (*set)(struct stp_bench_config *c, const char *opt, const char *arg, char *err,
               size_t errlen);
    const char *help;
};

static const struct keyword keywords[] = {
    {"url", ARG_REQUIRED, set_url,
     "broker URL: stomp://HOST:PORT[/VHOST] (default "
     "stomp://127.0.0.1:61613)"},
    {"sub-url", ARG_REQUIRED, set_sub_url,
     "where consumers and pattern subscribers connect, e.g. another node of a cluster "
     "(default: --url); producers and idle connections use --url"},
    {"preset", ARG_REQUIRED, set_preset,
     "fanout|fanout-100|queue-pairs|work-queue|durable|latency|"
     "connections (options after it override)"},
    {"producers", ARG_REQUIRED, set_producers, "producer connections (default 1)"},
    {"consumers", ARG_REQUIRED, set_consumers,
     "consumer connections, one subscription each "
     "(default 1)"},
    {"destinations", ARG_REQUIRED, set_destinations,
     "destinations; producer/consumer i uses i "
     "mod N (default 1)"},
    {"topic", ARG_NONE, set_topic, "publish to /topic/bench-N (default)"},
    {"queue", ARG_NONE, set_queue, "publish to /queue/bench-N"},
    {"size", ARG_REQUIRED, set_size, "body bytes (default 100)"},
    {"rate", ARG_REQUIRED, set_rate,
     "messages/s per producer, open loop; 0 = as fast as "
     "possible (default 0)"},
    {"duration", ARG_REQUIRED, set_duration, "measured time (default 5s)"},
    {"warmup", ARG_REQUIRED, set_warmup, "time before measuring (default 1s)"},
    {"drain", ARG_REQUIRED, set_drain,
     "longest wait for in-flight messages after the "
     "producers stop (default 5s)"},
    {"connect-timeout", ARG_REQUIRED, set_connect_timeout,
     "limit for connecting, CONNECTED "
     "and SUBSCRIBE receipts (default 10s)"},
    {"ack", ARG_REQUIRED, set_ack, "auto|client|client-individual (default auto)"},
    {"prefetch", ARG_REQUIRED, set_prefetch, "prefetch-count of each subscription (0 = not sent)"},
    {"tick", ARG_REQUIRED, set_tick,
     "pacing timer period, e.g. 1ms: longer batches more SENDs per write (default: the "
     "producers' interval, between 100us and 1ms)"},
    {"window", ARG_REQUIRED, set_window,
     "with --rate 0: most messages per producer sent but not yet delivered to every subscriber "
     "(nor, with --receipts, receipted) (default 5000; 0 = no limit)"},
    {"receipts", ARG_OPTIONAL, set_receipts, "ask a RECEIPT for every SEND (=N: every Nth)"},
    {"persistent", ARG_NONE, set_persistent,
     "add persistent:true to every SEND (durable messages in RabbitMQ, and in Stampede with "
     "--data-dir)"},
    {"dedup-id", ARG_OPTIONAL, set_dedup,
     "a unique dedup-id on every SEND (=N: each id on N SENDs in a row, so the broker drops "
     "N-1 of every N; they count as lost)"},
    {"selector-split", ARG_NONE, set_selector_split,
     "queues: each SEND carries part:<its seq mod the queue's consumers> and consumer k of a "
     "queue subscribes with selector 'part = k', so selectors split the traffic"},
    {"threads", ARG_REQUIRED, set_threads,
     "generator threads, each with its own loop (default: "
     "usable CPUs)"},
    {"stomp-version", ARG_REQUIRED, set_version,
     "offer only this STOMP version: 1.0, 1.1 or 1.2 (default: all three)"},
    {"login", ARG_REQUIRED, set_login, "STOMP login"},
    {"passcode", ARG_REQUIRED, set_passcode, "STOMP passcode"},
    {"idle-connections", ARG_REQUIRED, set_idle,
     "extra connections that only exchange "
     "heart-beats"},
    {"idle-patterns", ARG_REQUIRED, set_idle_patterns,
     "topic pattern subscriptions no message matches (/topic/PREFIX-idle.N.* and .N.#), "
     "1000 per extra connection (default 0)"},
    {"heartbeat", ARG_REQUIRED, set_heartbeat,
     "heart-beat of idle connections in ms (default "
     "10000)"},
    {"dest-prefix", ARG_REQUIRED, set_prefix,
     "destination names: /topic/PREFIX-N or /queue/PREFIX-N (default bench)"},
    {"tls-ca", ARG_REQUIRED, set_tls_ca,
     "stomp+ssl:// and wss://: PEM CAs to verify the broker (default: no verification)"},
    {"json", ARG_REQUIRED, set_json, "also write the report as JSON to FILE"},
    {"quiet", ARG_NONE, set_quiet, "no progress lines"},
};

#define NKEYWORDS (sizeof(keywords) / sizeof(keywords[0]))

const char *stp_bench_usage(void)
{
    static char text[4096];
    if (text[0])
        return text;
    size_t off = (size_t)snprintf(text, sizeof(text), "usage: stampede-bench [options]\n");
    for (size_t i = 0; i < NKEYWORDS && off < sizeof(text); i++) {
        const char *a = keywords[i].arg == ARG_REQUIRED   ? " X"
                        : keywords[i].arg == ARG_OPTIONAL ? "[=N]"
                                                          : "";
        off += (size_t)snprintf(text + off, sizeof(text) - off, "  --%s%s\n      %s\n",
                                keywords[i].name, a, keywords[i].help);
    }
    return text;
}

static const struct keyword *find_keyword(const char *name, size_t len)
{
    for (size_t i = 0; i < NKEYWORDS; i++)
        if (strlen(keywords[i].name) == len && memcmp(keywords[i].name, name, len) == 0)
            return &keywords[i];
    return NULL;
}

/* Split argv[*i] ("--name", "--name=value", "--name value"); advances *i. */
static int next_option(int argc, char **argv, int *i, const struct keyword **kw, const char **arg,
                       char *err, size_t errlen)
{
    const char *s = argv[*i];
    if (strncmp(s, "--", 2) != 0)
        return errf(err, errlen, "unexpected argument '%s' (options start with --)", s);
    const char *name = s + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    *kw = find_keyword(name, len);
    if (!*kw)
        return errf(err, errlen, "unknown option '%.*s' (see --help)", (int)(len + 2), s);
    *arg = eq ? eq + 1 : NULL;
    (*i)++;
    if ((*kw)->arg == ARG_NONE && eq)
        return errf(err, errlen, "--%s takes no value", (*kw)->name);
    if ((*kw)->arg == ARG_REQUIRED && !eq) {
        if (*i >= argc)
            return errf(err, errlen, "--%s needs a value", (*kw)->name);
        *arg = argv[(*i)++];
    }
    return 0;
}

static void apply_preset(struct stp_bench_config *cfg, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *name = NULL;
        if (strncmp(a, "--preset=", 9) == 0)
            name = a + 9;
        else if (strcmp(a, "--preset") == 0 && i + 1 < argc)
            name = argv[i + 1];
        for (size_t k = 0; name && k < sizeof(presets) / sizeof(presets[0]); k++) {
            if (strcmp(presets[k].name, name) == 0) {
                presets[k].apply(cfg);
                cfg->preset = presets[k].name;
            }
        }
    }
}

static int check_config(const struct stp_bench_config *c, char *err, size_t errlen)
{
    if (c->producers + c->consumers + c->idle_connections == 0)
        return errf(err, errlen, "nothing to do: no producers, consumers or idle connections");
    if (c->destinations == 0)
        return errf(err, errlen, "--destinations: must be at least 1");
    if (c->duration_ns == 0)
        return errf(err, errlen, "--duration: must be more than 0");
    if (c->idle_connections && c->heartbeat_ms == 0)
        return errf(err, errlen, "--heartbeat: idle connections need a heart-beat above 0");
    if (!c->url.transport->ops)
        return errf(err, errlen,
                    "--url: the %s:// transport is not built into this "
                    "stampede-bench yet",
                    c->url.transport->scheme);
    if (!stp_bench_sub_url(c)->transport->ops)
        return errf(err, errlen,
                    "--sub-url: the %s:// transport is not built into this "
                    "stampede-bench yet",
                    c->sub_url.transport->scheme);
    if (c->tick_ns && (c->tick_ns < 10000 || c->tick_ns > 1000000000))
        return errf(err, errlen, "--tick: between 10us and 1s");
    if (c->tls_ca[0] && !c->url.transport->tls && !stp_bench_sub_url(c)->transport->tls)
        return errf(err, errlen, "--tls-ca: only for stomp+ssl:// and wss:// URLs");
    return 0;
}

int stp_bench_parse_args(struct stp_bench_config *cfg, int argc, char **argv, char *err,
                         size_t errlen)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            snprintf(err, errlen, "%s", stp_bench_usage());
            return 1;
        }
    }
    apply_preset(cfg, argc, argv);
    int i = 1;
    while (i < argc) {
        const struct keyword *kw = NULL;
        const char *arg = NULL;
        char opt[64];
        int rc = next_option(argc, argv, &i, &kw, &arg, err, errlen);
        if (rc)
            return rc;
        snprintf(opt, sizeof(opt), "--%s", kw->name);
        rc = kw->set(cfg, opt, arg, err, errlen);
        if (rc)
            return rc;
    }
    return check_config(cfg, err, errlen);
}

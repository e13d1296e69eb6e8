/*
 * config.c - the command line and its STAMPEDE_* environment twins.
 *
 * The configuration is one static const table of keywords (haproxy's bind_kws
 * style): each names its flag, its environment variable, its default (as text,
 * run through the same parser), its parser and its help. stp_config_parse()
 * checks the shape of argv first (unknown flags, missing values, --help,
 * --version), then applies the defaults, then the environment variables of
 * the keywords the command line does not name, then the command line in order,
 * then the checks that span several keywords. So a flag beats its variable,
 * and a repeatable flag given at all replaces its variable's whole list.
 *
 * Runs once on the main thread before any worker starts; keeps no state.
 */
#include "stampede/config.h"
#include "stampede/error.h"
#include "stampede/log.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#ifndef STP_VERSION
#define STP_VERSION "unknown"
#endif

#define KIB ((uint64_t)1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)
#define TIB (GIB * 1024)
#define MAX_WORKERS 1024
#define DAY_MS ((uint64_t)24 * 3600 * 1000)

struct kw;
/* A parser sets its field from text; on failure it writes the reason (what
 * follows "stampede: --flag: ") into err and returns a negative STP_E* code. */
typedef int kw_parse_fn(const struct kw *kw, struct stp_config *cfg, const char *val, char *err,
                        size_t n);

/* KW_SWITCH: a flag without a value that turns a setting on; its variable
 * takes yes/no (or true/false, on/off, 1/0). */
enum { KW_REPEAT = 1, KW_NOVALUE = 2, KW_SWITCH = 4 };

struct kw {
    const char *name;    /* the flag without its leading "--" */
    const char *env;     /* STAMPEDE_ + name in upper snake case; NULL for --help */
    const char *metavar; /* what the value looks like in --help */
    const char *def;     /* default as text for the parser (a comma-separated list for
                            repeatable keywords); NULL: none, or def_fn */
    unsigned (*def_fn)(void);
    const char *def_note; /* --help's words for a default that is not def */
    kw_parse_fn *parse;
    void (*reset)(struct stp_config *cfg); /* repeatable: drop the list so far */
    size_t off, width;                     /* the field generic parsers write */
    uint64_t min, max;
    const char *const *choices; /* NULL-terminated; the field gets the index */
    unsigned flags;
    const char *help; /* lines separated by '\n' */
};

/* ---- values ---- */

/* Copies v for an error message: at most ~60 bytes, control bytes as '?', so
 * the message stays one line whatever the environment holds. */
static const char *quote(const char *v, char *buf, size_t n)
{
    size_t i = 0;
    for (; v[i] && i + 4 < n && i < 60; i++)
        buf[i] = (unsigned char)v[i] < 0x20 || v[i] == 0x7f ? '?' : v[i];
    if (v[i] && i + 4 < n) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = '\0';
    return buf;
}

static void store(struct stp_config *cfg, const struct kw *kw, uint64_t v)
{
    char *p = (char *)cfg + kw->off;
    if (kw->width == sizeof(bool)) {
        bool b = v != 0;
        memcpy(p, &b, sizeof(b));
    } else if (kw->width == sizeof(uint32_t)) {
        assert(v <= UINT32_MAX);
        uint32_t x = (uint32_t)v;
        memcpy(p, &x, sizeof(x));
    } else {
        assert(kw->width == sizeof(uint64_t));
        memcpy(p, &v, sizeof(v));
    }
}

struct unit {
    const char *suffix;
    uint64_t mult;
};

static const struct unit size_units[] = {
    {"", 1},    {"B", 1},     {"K", KIB}, {"KiB", KIB}, {"M", MIB}, {"MiB", MIB},
    {"G", GIB}, {"GiB", GIB}, {"T", TIB}, {"TiB", TIB}, {NULL, 0},
};
static const struct unit duration_units[] = {
    {"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {NULL, 0},
};
static const struct unit count_units[] = {{"", 1}, {NULL, 0}};

/* "123", "4MiB", "4 MiB", "10s": digits, optional blanks, then a suffix from
 * units, case-insensitive (so "m" is minutes for a duration and MiB for a
 * size). 0 or STP_EINVAL (also on overflow). */
static int parse_scaled(const char *s, const struct unit *units, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = 0;
    if (s[0] < '0' || s[0] > '9')
        return STP_EINVAL;
    for (; s[i] >= '0' && s[i] <= '9'; i++) {
        if (v > (UINT64_MAX - 9) / 10)
            return STP_EINVAL;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    s += i + strspn(s + i, " ");
    for (const struct unit *u = units; u->suffix; u++) {
        if (strcasecmp(s, u->suffix) != 0)
            continue;
        if (v != 0 && u->mult > UINT64_MAX / v)
            return STP_EINVAL;
        *out = v * u->mult;
        return 0;
    }
    return STP_EINVAL;
}

/* Writes v with the largest unit that divides it ("4MiB", "100ms", "60s"); of
 * two units of one size the later in the table (KiB rather than K). */
static const char *format_scaled(uint64_t v, const struct unit *units, char *buf, size_t n)
{
    const struct unit *best = units;
    for (const struct unit *u = units; u->suffix; u++)
        if (u->mult >= best->mult && (v == 0 ? u->mult == 1 : v % u->mult == 0))
            best = u;
    snprintf(buf, n, "%" PRIu64 "%s", v / best->mult, best->suffix);
    return buf;
}

static int parse_number(const struct kw *kw, struct stp_config *cfg, const char *val, char *err,
                        size_t n, const struct unit *units, const char *what, const char *hint)
{
    char q[80], lo[32], hi[32];
    uint64_t v;
    if (parse_scaled(val, units, &v) != 0 || v < kw->min || v > kw->max) {
        snprintf(err, n, "'%s' is not %s between %s and %s%s", quote(val, q, sizeof(q)), what,
                 format_scaled(kw->min, units, lo, sizeof(lo)),
                 format_scaled(kw->max, units, hi, sizeof(hi)), hint);
        return STP_EINVAL;
    }
    store(cfg, kw, v);
    return 0;
}

static int parse_count(const struct kw *kw, struct stp_config *cfg, const char *val, char *err,
                       size_t n)
{
    return parse_number(kw, cfg, val, err, n, count_units, "a number", "");
}

static int parse_size(const struct kw *kw, struct stp_config *cfg, const char *val, char *err,
                      size_t n)
{
    return parse_number(kw, cfg, val, err, n, size_units, "a size",
                        " (bytes, or with a K, KiB, M, MiB, G, GiB, T or TiB suffix)");
}

static int parse_duration(const struct kw *kw, struct stp_config *cfg, const char *val, char *err,
                          size_t n)
{
    return parse_number(kw, cfg, val, err, n, duration_units, "a duration",
                        " (milliseconds, or with a ms, s, m or h suffix)");
}

static int parse_choice(const struct kw *kw, struct stp_config *cfg, const char *val, char *err,
                        size_t n)
{
    char q[80];
    for (size_t i = 0; kw->choices[i]; i++) {
        if (strcmp(val, kw->choices[i]) == 0) {
            store(cfg, kw, i);
            return 0;
        }
    }
    snprintf(err, n, "'%s' is not one of %s", quote(val, q, sizeof(q)), kw->metavar);
    return STP_EINVAL;
}

static int parse_switch(const struct kw *kw, struct stp_config *cfg, const char *val, char *err,
                        size_t n)
{
    static const char *const on[] = {"yes", "true", "on", "1"}, *const off[] = {"no", "false",
                                                                                "off", "0"};
    char q[80];
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(val, on[i]) == 0 || strcmp(val, off[i]) == 0) {
            *(bool *)(void *)((char *)cfg + kw->off) = strcmp(val, on[i]) == 0;
            return 0;
        }
    }
    snprintf(err, n, "'%s' is not yes or no", quote(val, q, sizeof(q)));
    return STP_EINVAL;
}

static int set_string(struct stp_config *cfg, const struct kw *kw, const char *val, char *err,
                      size_t n)
{
    char **field = (char **)(void *)((char *)cfg + kw->off);
    char *copy = strdup(val);
    if (!copy) {
        snprintf(err, n, "out of memory");
        return STP_ENOMEM;
    }
    free(*field);
    *field = copy;
    return 0;
}

static int parse_text(const struct kw *kw, struct stp_config *cfg, const char *val, char *err,
                      size_t n)
{
    if (val[0] == '\0') {
        snprintf(err, n, "the value is empty");
        return STP_EINVAL;
    }
    return set_string(cfg, kw, val, err, n);
}

/* A file the broker reads later (certificates, keys): it must be readable now,
 * so a typo is reported at start and not at the first TLS handshake. */
static int parse_file(const struct kw *kw, struct stp_config *cfg, const char *val, char *err,
                      size_t n)
{
    char q[80];
    if (val[0] == '\0') {
        snprintf(err, n, "the file name is empty");
        return STP_EINVAL;
    }
    if (access(val, R_OK) != 0) {
        snprintf(err, n, "cannot read '%s': %s", quote(val, q, sizeof(q)), strerror(errno));
        return STP_EINVAL;
    }
    return set_string(cfg, kw, val, err, n);
}

static void reset_listen(struct stp_config *cfg)
{
    cfg->nlisten = 0;
}

static int parse_listen(const struct kw *kw, struct stp_config *cfg, const char *val, char *err,
                        size_t n)
{
    char q[80];
    if (cfg->nlisten == STP_MAX_LISTENERS) {
        snprintf(err, n, "more than %d listeners", STP_MAX_LISTENERS);
        return STP_EINVAL;
    }
    const char *why = stp_listen_url_check(val, &cfg->listen[cfg->nlisten]);
    if (why) {
        snprintf(err, n, "'%s' is not a listen URL: %s", quote(val, q, sizeof(q)), why);
        return STP_EINVAL;
    }
    cfg->nlisten++;
    return 0;
}

/* ---- users and origins ---- */

static void reset_users(struct stp_config *cfg)
{
    for (size_t i = 0; i < cfg->nusers; i++) {
        free(cfg->users[i].login);
        free(cfg->users[i].passcode);
    }
    free(cfg->users);
    cfg->users = NULL;
    cfg->nusers = 0;
}

static int parse_user(const struct kw *kw, struct stp_config *cfg, const char *val, char *err,
                      size_t n)
{
    char q[80];
    const char *colon = strchr(val, ':');
    if (!colon) {
        snprintf(err, n, "'%s' is not LOGIN:PASSCODE", quote(val, q, sizeof(q)));
        return STP_EINVAL;
    }
    if (colon == val) {
        snprintf(err, n, "the login before ':' is empty");
        return STP_EINVAL;
    }
    size_t llen = (size_t)(colon - val);
    for (size_t i = 0; i < cfg->nusers; i++) {
        if (strlen(cfg->users[i].login) == llen && memcmp(cfg->users[i].login, val, llen) == 0) {
            snprintf(err, n, "login '%s' is given twice", quote(cfg->users[i].login, q, sizeof(q)));
            return STP_EINVAL;
        }
    }
    struct stp_user *users = realloc(cfg->users, (cfg->nusers + 1) * sizeof(*users));
    if (!users)
        goto nomem;
    cfg->users = users;
    struct stp_user *u = &users[cfg->nusers];
    u->login = strndup(val, llen);
    u->passcode = strdup(colon + 1);
    if (!u->login || !u->passcode) {
        free(u->login);
        free(u->passcode);
        goto nomem;
    }
    cfg->nusers++;
    return 0;
nomem:
    snprintf(err, n, "out of memory");
    return STP_ENOMEM;
}

static void reset_origins(struct stp_config *cfg)
{
    for (size_t i = 0; i < cfg->nws_allowed_origins; i++)
        free(cfg->ws_allowed_origins[i]);
    free(cfg->ws_allowed_origins);
    cfg->ws_allowed_origins = NULL;
    cfg->nws_allowed_origins = 0;
}

static int parse_origin(const struct kw *kw, struct stp_config *cfg, const char *val, char *err,
                        size_t n)
{
    if (val[0] == '\0') {
        snprintf(err, n, "the origin is empty");
        return STP_EINVAL;
    }
    size_t k = cfg->nws_allowed_origins;
    char **list = realloc(cfg->ws_allowed_origins, (k + 1) * sizeof(*list));
    if (!list)
        goto nomem;
    cfg->ws_allowed_origins = list;
    list[k] = strdup(val);
    if (!list[k])
        goto nomem;
    cfg->nws_allowed_origins = k + 1;
    return 0;
nomem:
    snprintf(err, n, "out of memory");
    return STP_ENOMEM;
}

static void reset_cluster(struct stp_config *cfg)
{
    for (size_t i = 0; i < cfg->ncluster_urls; i++)
        free(cfg->cluster_urls[i]);
    free(cfg->cluster_urls);
    cfg->cluster_urls = NULL;
    cfg->ncluster_urls = 0;
}

/* A NATS URL as libnats takes it: nats:// or tls://, then [USER[:PASS]@]HOST[:PORT].
 * Only the shape is checked here (libnats parses the rest when it connects);
 * bytes that could break a log line or the comma-separated list are refused. */
static int parse_cluster(const struct kw *kw, struct stp_config *cfg, const char *val, char *err,
                         size_t n)
{
    (void)kw;
    char q[64];
    size_t len = strlen(val);
    if (strncmp(val, "nats://", 7) != 0 && strncmp(val, "tls://", 6) != 0) {
        snprintf(err, n, "'%s' is not a nats:// or tls:// URL", quote(val, q, sizeof(q)));
        return STP_EINVAL;
    }
    const char *host = strchr(val, '/') + 2;
    if (*host == '\0' || *host == '/' || len > 1024) {
        snprintf(err, n, "'%s' has no host or is longer than 1024 bytes", quote(val, q, sizeof(q)));
        return STP_EINVAL;
    }
    for (const char *p = val; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == ',' || (unsigned char)*p >= 0x7f) {
            snprintf(err, n, "'%s' contains a space, a comma or a control byte",
                     quote(val, q, sizeof(q)));
            return STP_EINVAL;
        }
    }
    if (cfg->ncluster_urls >= STP_MAX_LISTENERS) {
        snprintf(err, n, "at most %d NATS URLs", STP_MAX_LISTENERS);
        return STP_EINVAL;
    }
    char **list = realloc(cfg->cluster_urls, (cfg->ncluster_urls + 1) * sizeof(*list));
    if (!list)
        goto nomem;
    cfg->cluster_urls = list;
    list[cfg->ncluster_urls] = strdup(val);
    if (!list[cfg->ncluster_urls])
        goto nomem;
    cfg->ncluster_urls++;
    return 0;
nomem:
    snprintf(err, n, "out of memory");
    return STP_ENOMEM;
}

/* 1-64 bytes of [A-Za-z0-9_-] and '.': it names the node in logs, /metrics
 * labels and the NATS connection, so nothing that needs quoting. */
static int parse_node_name(const struct kw *kw, struct stp_config *cfg, const char *val, char *err,
                           size_t n)
{
    (void)kw;
    char q[64];
    size_t len = strlen(val);
    bool ok = len >= 1 && len <= 64;
    for (size_t i = 0; ok && i < len; i++)
        ok = isalnum((unsigned char)val[i]) || val[i] == '_' || val[i] == '-' || val[i] == '.';
    if (!ok) {
        snprintf(err, n, "'%s' is not 1-64 letters, digits, '_', '-' or '.'",
                 quote(val, q, sizeof(q)));
        return STP_EINVAL;
    }
    char *copy = strdup(val);
    if (!copy) {
        snprintf(err, n, "out of memory");
        return STP_ENOMEM;
    }
    free(cfg->node_name);
    cfg->node_name = copy;
    return 0;
}

/* ---- the table ---- */

static unsigned default_workers(void)
{
    unsigned n = stp_available_cpus();
    return n > MAX_WORKERS ? MAX_WORKERS : n;
}

static const char *const ws_frames[] = {"text", "binary", NULL};
static const char *const verify_modes[] = {"none", "optional", "required", NULL};
static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
_Static_assert(STP_LOG_DEBUG == 0 && STP_LOG_INFO == 1 && STP_LOG_WARN == 2 && STP_LOG_ERROR == 3,
               "log_levels follows enum stp_log_level");

#define FIELD(f) .off = offsetof(struct stp_config, f), .width = sizeof(((struct stp_config *)0)->f)
#define SIZE_KW(flag, ENV, field, dflt, lo, hi, text)                                              \
    {                                                                                              \
        .name = flag, .env = ENV, .metavar = "SIZE", .def = dflt, .parse = parse_size,             \
        FIELD(field), .min = lo, .max = hi, .help = text                                           \
    }
#define DURATION_KW(flag, ENV, field, dflt, lo, hi, text)                                          \
    {                                                                                              \
        .name = flag, .env = ENV, .metavar = "MS", .def = dflt, .parse = parse_duration,           \
        FIELD(field), .min = lo, .max = hi, .help = text                                           \
    }
#define COUNT_KW(flag, ENV, field, dflt, lo, hi, text)                                             \
    {                                                                                              \
        .name = flag, .env = ENV, .metavar = "N", .def = dflt, .parse = parse_count, FIELD(field), \
        .min = lo, .max = hi, .help = text                                                         \
    }
#define FILE_KW(flag, ENV, field, text)                                                            \
    {                                                                                              \
        .name = flag, .env = ENV, .metavar = "FILE", .parse = parse_file, FIELD(field),            \
        .help = text                                                                               \
    }

/* One keyword per paragraph reads better than one field per line. */
/* clang-format off */
static const struct kw keywords[] = {
    {.name = "listen", .env = "STAMPEDE_LISTEN", .metavar = "URL",
     .def = "stomp://0.0.0.0:61613,ws://0.0.0.0:15674/ws", .parse = parse_listen, .reset = reset_listen,
     .flags = KW_REPEAT,
     .help = "Accept clients at URL: stomp://HOST:PORT, stomp+ssl://HOST:PORT,\n"
             "ws://HOST:PORT/PATH or wss://HOST:PORT/PATH (PATH defaults to /ws).\n"
             "IPv6 in brackets: stomp://[::1]:61613. Port 0 binds a free port.\n"
             "Repeatable, up to 16; the variable takes a comma-separated list."},
    {.name = "workers", .env = "STAMPEDE_WORKERS", .metavar = "N", .def_fn = default_workers,
     .def_note = "the CPUs this process may use", .parse = parse_count, FIELD(workers),
     .min = 1, .max = MAX_WORKERS,
     .help = "Worker threads, each with its own event loop (1-1024)."},
    {.name = "user", .env = "STAMPEDE_USER", .metavar = "LOGIN:PASSCODE",
     .def_note = "none (no users: only loopback clients may connect)", .parse = parse_user,
     .reset = reset_users,
     .flags = KW_REPEAT,
     .help = "Plain-text users for development (see --users-file): CONNECT must\n"
             "match one; the passcode may contain ':'. Repeatable; the variable\n"
             "takes a comma-separated list."},
    SIZE_KW("max-frame-size", "STAMPEDE_MAX_FRAME_SIZE", max_frame_size, "4MiB", 1, GIB,
            "Largest frame (headers and body) a client may send, in bytes."),
    {.name = "max-headers", .env = "STAMPEDE_MAX_HEADERS", .metavar = "N", .def = "1000",
     .parse = parse_count, FIELD(max_headers), .min = 1, .max = 1000000,
     .help = "Most headers in one frame."},
    SIZE_KW("max-header-length", "STAMPEDE_MAX_HEADER_LENGTH", max_header_length, "64KiB", 1,
            GIB, "Longest header line, in bytes."),
    DURATION_KW("login-timeout", "STAMPEDE_LOGIN_TIMEOUT", login_timeout_ms, "10s", 1, DAY_MS,
                "Close a connection that has not sent CONNECT by then, in ms."),
    DURATION_KW("heartbeat-min", "STAMPEDE_HEARTBEAT_MIN", heartbeat_min_ms, "100ms", 0, DAY_MS,
                "Shortest heart-beat interval granted, in ms (0 stays 0)."),
    DURATION_KW("heartbeat-max", "STAMPEDE_HEARTBEAT_MAX", heartbeat_max_ms, "60s", 1, DAY_MS,
                "Longest heart-beat interval granted, in ms."),
    {.name = "queue-max-messages", .env = "STAMPEDE_QUEUE_MAX_MESSAGES", .metavar = "N",
     .def = "1000000", .parse = parse_count, FIELD(queue_max_messages), .min = 1,
     .max = 1000000000,
     .help = "Most messages one queue holds; publishers wait when it is full."},
    SIZE_KW("queue-max-bytes", "STAMPEDE_QUEUE_MAX_BYTES", queue_max_bytes, "1GiB", 1, TIB,
            "Most message bytes one queue holds; publishers wait when it is full."),
    SIZE_KW("max-pending-output", "STAMPEDE_MAX_PENDING_OUTPUT", max_pending_output, "16MiB", 1,
            TIB,
            "Bytes queued for one connection before it counts as a slow consumer\n"
            "(topics: ERROR and close; queues: no more dispatches)."),
    DURATION_KW("slow-consumer-grace", "STAMPEDE_SLOW_CONSUMER_GRACE", slow_consumer_grace_ms,
                "5s", 0, 10 * 60 * 1000,
                "How long output may stay over --max-pending-output before the\n"
                "connection is a slow consumer (at 4x --max-pending-output it is at once)."),
    {.name = "max-connections", .env = "STAMPEDE_MAX_CONNECTIONS", .metavar = "N",
     .def = "100000", .parse = parse_count, FIELD(max_connections), .min = 1, .max = 100000000,
     .help = "Most client connections at once (all listeners, /metrics too); more are\n"
             "closed at accept with a log line."},
    {.name = "max-connections-per-ip", .env = "STAMPEDE_MAX_CONNECTIONS_PER_IP", .metavar = "N",
     .def = "10000", .parse = parse_count, FIELD(max_connections_per_ip), .min = 1,
     .max = 100000000,
     .help = "Most connections at once from one source address (IPv6: one /64);\n"
             "more are closed at accept with a log line."},
    SIZE_KW("memory-budget", "STAMPEDE_MEMORY_BUDGET", memory_budget, "4GiB", 1, TIB,
            "Message bytes the whole broker holds before publishers wait."),
    COUNT_KW("max-subscriptions", "STAMPEDE_MAX_SUBSCRIPTIONS", max_subscriptions, "1000",
             1, 10000000, "Most subscriptions one connection holds at once."),
    COUNT_KW("max-transactions", "STAMPEDE_MAX_TRANSACTIONS", max_transactions, "100", 1,
             1000000, "Most transactions one connection has open at once."),
    COUNT_KW("max-transaction-frames", "STAMPEDE_MAX_TRANSACTION_FRAMES",
             max_transaction_frames, "10000", 1, 100000000,
             "Most SEND, ACK and NACK frames one transaction holds until COMMIT."),
    SIZE_KW("max-transaction-bytes", "STAMPEDE_MAX_TRANSACTION_BYTES", max_transaction_bytes,
            "64MiB", 1, TIB,
            "Most message bytes one transaction holds until COMMIT (they also count\n"
            "toward --memory-budget while held)."),
    COUNT_KW("max-unacked", "STAMPEDE_MAX_UNACKED", max_unacked, "10000", 1, 100000000,
             "Most unacknowledged messages of one client-ack queue subscription: the\n"
             "prefetch-count when none is given, and the most one may ask for."),
    SIZE_KW("max-destination-length", "STAMPEDE_MAX_DESTINATION_LENGTH",
            max_destination_length, "1KiB", 8, 64 * KIB, "Longest destination name, in bytes."),
    COUNT_KW("max-destinations", "STAMPEDE_MAX_DESTINATIONS", max_destinations, "100000", 1,
             100000000,
             "Most queues and topics (with subscribers) the broker holds at once; a\n"
             "frame that would make one more gets an ERROR."),
    {.name = "ws-allowed-origin", .env = "STAMPEDE_WS_ALLOWED_ORIGIN", .metavar = "ORIGIN",
     .def_note = "none: any Origin is accepted", .parse = parse_origin, .reset = reset_origins,
     .flags = KW_REPEAT,
     .help = "Accept WebSocket upgrades only from this Origin (e.g.\n"
             "https://example.com); others get 403. Repeatable; the variable takes a\n"
             "comma-separated list."},
    {.name = "ws-frame", .env = "STAMPEDE_WS_FRAME", .metavar = "text|binary", .def = "text",
     .parse = parse_choice, .choices = ws_frames, FIELD(ws_frame_binary),
     .help = "WebSocket frame type for server messages: text (binary when a body\n"
             "is not UTF-8) or always binary."},
    FILE_KW("tls-cert", "STAMPEDE_TLS_CERT", tls_cert,
            "PEM certificate chain for stomp+ssl:// and wss:// listeners."),
    FILE_KW("tls-key", "STAMPEDE_TLS_KEY", tls_key,
            "PEM private key (RSA or ECDSA) of --tls-cert."),
    FILE_KW("tls-key-password-file", "STAMPEDE_TLS_KEY_PASSWORD_FILE", tls_key_password_file,
            "File whose first line is the passphrase of --tls-key."),
    FILE_KW("tls-ca", "STAMPEDE_TLS_CA", tls_ca,
            "PEM CA certificates that client certificates must chain to."),
    {.name = "tls-verify-client", .env = "STAMPEDE_TLS_VERIFY_CLIENT",
     .metavar = "none|optional|required", .def = "none", .parse = parse_choice,
     .choices = verify_modes, FIELD(tls_verify_client),
     .help = "Ask TLS clients for a certificate (optional or required needs --tls-ca)."},
    {.name = "tls-ciphers", .env = "STAMPEDE_TLS_CIPHERS", .metavar = "LIST", .parse = parse_text,
     FIELD(tls_ciphers),
     .def_note = "ECDHE with AES-GCM and ChaCha20-Poly1305 (AES-GCM first with AES-NI)",
     .help = "Narrow (and order) the TLS 1.2 cipher suites: names separated by ':'\n"
             "or ',', in OpenSSL, IANA or mbedTLS form (ECDHE-RSA-AES128-GCM-SHA256)."},
    FILE_KW("users-file", "STAMPEDE_USERS_FILE", users_file,
            "Accept CONNECT only from the users in FILE: LOGIN:HASH lines, the hash\n"
            "from `stampede hash-password` (argon2id). Not with --user."),
    FILE_KW("acl-file", "STAMPEDE_ACL_FILE", acl_file,
            "Per-destination permissions: LOGIN read|write|readwrite PATTERN lines\n"
            "(LOGIN * is any user; in PATTERN * matches within one /-segment, **\n"
            "anything, {login} the user's login). What no line allows is refused.\n"
            "Needs --users-file or --user."),
    {.name = "anonymous-user", .env = "STAMPEDE_ANONYMOUS_USER", .metavar = "LOGIN",
     .parse = parse_text, FIELD(anonymous_user),
     .def_note = "none: a CONNECT without login is refused when users are configured",
     .help = "A CONNECT without login and passcode is this user (who must exist),\n"
             "with its permissions."},
    {.name = "tls-cert-login", .env = "STAMPEDE_TLS_CERT_LOGIN", .metavar = NULL,
     .def = "no", .parse = parse_switch, FIELD(tls_cert_login), .flags = KW_SWITCH,
     .help = "On TLS with a verified client certificate, a CONNECT without passcode\n"
             "is the user named by the certificate's subject CN (who must exist).\n"
             "Needs --tls-verify-client optional or required."},
    {.name = "metrics-auth", .env = "STAMPEDE_METRICS_AUTH", .metavar = "LOGIN",
     .parse = parse_text, FIELD(metrics_auth), .def_note = "none: /metrics is open",
     .help = "GET /metrics needs HTTP Basic authentication as this user (who must\n"
             "exist); /healthz stays open."},
    {.name = "allow-remote-unauthenticated", .env = "STAMPEDE_ALLOW_REMOTE_UNAUTHENTICATED",
     .def = "no", .parse = parse_switch, FIELD(allow_remote_unauthenticated),
     .flags = KW_SWITCH,
     .help = "With no users configured, also accept clients from other hosts (by\n"
             "default only loopback clients may connect without a users file, like\n"
             "RabbitMQ's guest user)."},
    {.name = "data-dir", .env = "STAMPEDE_DATA_DIR", .metavar = "DIR", .parse = parse_text,
     FIELD(data_dir), .def_note = "none: messages are kept in memory only",
     .help = "Keep persistent:true queue messages in a journal in DIR (made when\n"
             "missing): they survive a restart or crash, and their RECEIPT is sent\n"
             "once they are on disk. One broker per DIR."},
    COUNT_KW("max-redeliveries", "STAMPEDE_MAX_REDELIVERIES", max_redeliveries, "0", 0,
             1000000,
             "A queue message delivered and NACKed or returned by a disconnect more\n"
             "than N times is rejected: dead-lettered or dropped; a topic message\n"
             "NACKed more than N times by one subscription is dropped (0: never)."),
    {.name = "dead-letter", .env = "STAMPEDE_DEAD_LETTER", .metavar = "yes|no", .def = "yes",
     .parse = parse_switch, FIELD(dead_letter),
     .help = "Queue messages that expire or are rejected (NACK requeue:false,\n"
             "--max-redeliveries) move to /queue/DLQ.<queue name> with x-death-reason\n"
             "and x-original-destination headers (no: they are dropped)."},
    COUNT_KW("max-durable-subscriptions-per-login", "STAMPEDE_MAX_DURABLE_SUBSCRIPTIONS_PER_LOGIN",
             max_dsubs_per_login, "1000", 1, 100000000,
             "Most durable topic subscriptions one login holds (logins share 4096\n"
             "counters: a rare pair may share one); past it SUBSCRIBE gets an ERROR."),
    DURATION_KW("dedup-window", "STAMPEDE_DEDUP_WINDOW", dedup_window_ms, "2m", 0,
                DAY_MS,
                "A SEND whose dedup-id header was already seen on its destination this\n"
                "long ago or less is receipted but not delivered again (0: off)."),
    COUNT_KW("dedup-max-ids", "STAMPEDE_DEDUP_MAX_IDS", dedup_max_ids, "100000", 1, 100000000,
             "Most dedup-ids one destination remembers; past it the oldest is\n"
             "forgotten early (counted in /metrics)."),
    SIZE_KW("dedup-max-memory", "STAMPEDE_DEDUP_MAX_MEMORY", dedup_max_memory, "256MiB", 1, TIB,
            "Bytes all de-duplication windows may hold; past it a destination\n"
            "forgets its oldest ids early (counted in /metrics)."),
    {.name = "cluster", .env = "STAMPEDE_CLUSTER", .metavar = "URL", .parse = parse_cluster,
     .reset = reset_cluster, .flags = KW_REPEAT,
     .def_note = "none: a single node (nothing of NATS is loaded)",
     .help = "Join the nodes that share this NATS server (nats://[USER:PASS@]HOST:PORT\n"
             "or tls://...): topics and queues span every node. Repeatable (servers\n"
             "of one NATS cluster); the variable takes a comma-separated list."},
    FILE_KW("cluster-tls-ca", "STAMPEDE_CLUSTER_TLS_CA", cluster_tls_ca,
            "PEM CA certificates a tls:// --cluster server's certificate must chain\n"
            "to (default: the system's); with one --cluster URL the certificate must\n"
            "also name its host."),
    DURATION_KW("cluster-ack-wait", "STAMPEDE_CLUSTER_ACK_WAIT", cluster_ack_wait_ms, "30s", 1000,
                3600 * 1000,
                "With --cluster: how long JetStream waits for a node to settle a queue\n"
                "message it leased before another node gets it (a killed node's unacked\n"
                "messages come back after this; live leases are renewed)."),
    {.name = "node-name", .env = "STAMPEDE_NODE_NAME", .metavar = "NAME",
     .parse = parse_node_name, .def_note = "the host name",
     .help = "This node's name in the cluster (logs, /metrics, the NATS connection):\n"
             "1-64 letters, digits, '_', '-' or '.'."},
    {.name = "log-level", .env = "STAMPEDE_LOG_LEVEL", .metavar = "debug|info|warn|error",
     .def = "info", .parse = parse_choice, .choices = log_levels, FIELD(log_level),
     .help = "Least severe log records written to stderr."},
    {.name = "help", .flags = KW_NOVALUE, .help = "Print this help and exit."},
    {.name = "version", .flags = KW_NOVALUE, .help = "Print the version and exit."},
};
/* clang-format on */

#define NKW (sizeof(keywords) / sizeof(keywords[0]))

/* ---- --help and --version ---- */

static void print_kw_help(FILE *out, const struct kw *kw)
{
    fprintf(out, "  --%s%s%s\n", kw->name, kw->metavar ? " " : "", kw->metavar ? kw->metavar : "");
    for (const char *line = kw->help; *line;) {
        size_t len = strcspn(line, "\n");
        fprintf(out, "      %.*s\n", (int)len, line);
        line += len + (line[len] == '\n');
    }
    if (!kw->env)
        return;
    fprintf(out, "      env %s; default: ", kw->env);
    if (kw->def_fn)
        fprintf(out, "%u (%s)\n", kw->def_fn(), kw->def_note);
    else
        fprintf(out, "%s\n", kw->def ? kw->def : kw->def_note ? kw->def_note : "none");
}

static void print_help(FILE *out)
{
    fputs("Usage: stampede [OPTION]...\n"
          "Stampede " STP_VERSION ", a multi-threaded STOMP 1.0/1.1/1.2 message broker.\n"
          "\n"
          "Options take --name VALUE or --name=VALUE. Each one also reads the\n"
          "environment variable shown; a flag beats its variable, and a repeatable\n"
          "flag given at all replaces its variable's whole list. Sizes are bytes or\n"
          "take a K, KiB, M, MiB, G, GiB, T or TiB suffix (all binary); durations\n"
          "are milliseconds or take a ms, s, m or h suffix.\n"
          "\n",
          out);
    for (size_t i = 0; i < NKW; i++)
        print_kw_help(out, &keywords[i]);
}

/* ---- applying argv and the environment ---- */

static const struct kw *find_kw(const char *name, size_t len)
{
    for (size_t i = 0; i < NKW; i++)
        if (strlen(keywords[i].name) == len && strncmp(keywords[i].name, name, len) == 0)
            return &keywords[i];
    return NULL;
}

static int fail(const char *name, const char *why)
{
    fprintf(stderr, "stampede: %s: %s\n", name, why);
    return -1;
}

/* Splits the option at argv[*i] into its keyword and value, advancing *i past
 * them. 0, or -1 after printing why. */
static int split_arg(int argc, char **argv, int *i, const struct kw **kw, const char **val)
{
    const char *a = argv[(*i)++];
    char q[80], name[64];
    if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
        fprintf(stderr, "stampede: %s '%s' (see --help)\n",
                a[0] == '-' && a[1] != '\0' ? "unknown option" : "unexpected argument",
                quote(a, q, sizeof(q)));
        return -1;
    }
    const char *eq = strchr(a, '=');
    size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
    *kw = find_kw(a + 2, len);
    if (!*kw) {
        snprintf(name, sizeof(name), "%.*s", (int)(len + 2), a);
        fprintf(stderr, "stampede: unknown option '%s' (see --help)\n", quote(name, q, sizeof(q)));
        return -1;
    }
    snprintf(name, sizeof(name), "--%s", (*kw)->name);
    if ((*kw)->flags & (KW_NOVALUE | KW_SWITCH)) {
        *val = (*kw)->flags & KW_SWITCH ? "yes" : NULL;
        return eq ? fail(name, "takes no value") : 0;
    }
    if (eq) {
        *val = eq + 1;
        return 0;
    }
    if (*i >= argc || strncmp(argv[*i], "--", 2) == 0)
        return fail(name, "missing value");
    *val = argv[(*i)++];
    return 0;
}

/* First pass: the shape of the command line, --help and --version. */
static enum stp_config_result scan_argv(int argc, char **argv, bool *on_cmdline)
{
    for (int i = 1; i < argc;) {
        const struct kw *kw;
        const char *val;
        if (split_arg(argc, argv, &i, &kw, &val) != 0)
            return STP_CONFIG_ERROR;
        if (strcmp(kw->name, "help") == 0) {
            print_help(stdout);
            return STP_CONFIG_EXIT;
        }
        if (strcmp(kw->name, "version") == 0) {
            fputs("stampede " STP_VERSION "\n", stdout);
            return STP_CONFIG_EXIT;
        }
        on_cmdline[kw - keywords] = true;
    }
    return STP_CONFIG_RUN;
}

static int apply(const struct kw *kw, struct stp_config *cfg, const char *name, const char *val)
{
    char err[256];
    if (kw->parse(kw, cfg, val, err, sizeof(err)) != 0)
        return fail(name, err);
    return 0;
}

static const char *env_get(char **envp, const char *name)
{
    size_t len = strlen(name);
    for (; envp && *envp; envp++)
        if (strncmp(*envp, name, len) == 0 && (*envp)[len] == '=')
            return *envp + len + 1;
    return NULL;
}

/* A comma-separated list (a repeatable keyword's variable or default) replaces
 * the keyword's list: each item, trimmed of blanks, is added in order. */
static int apply_list(const struct kw *kw, struct stp_config *cfg, const char *name,
                      const char *val)
{
    char *copy = strdup(val), *p = copy;
    int rc = 0, items = 0;
    if (!copy)
        return fail(name, "out of memory");
    kw->reset(cfg);
    while (rc == 0 && p) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        p += strspn(p, " \t");
        size_t len = strlen(p);
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            p[--len] = '\0';
        if (len > 0) {
            rc = apply(kw, cfg, name, p);
            items++;
        }
        p = comma ? comma + 1 : NULL;
    }
    if (rc == 0 && items == 0)
        rc = fail(name, "the list is empty");
    free(copy);
    return rc;
}

static int apply_defaults(struct stp_config *cfg)
{
    cfg->max_pre_connect = 64 * KIB;
    for (size_t i = 0; i < NKW; i++) {
        const struct kw *kw = &keywords[i];
        int rc = 0;
        if (kw->def_fn)
            store(cfg, kw, kw->def_fn());
        else if (kw->def)
            rc = kw->flags & KW_REPEAT ? apply_list(kw, cfg, kw->name, kw->def)
                                       : apply(kw, cfg, kw->name, kw->def);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* Variables of the keywords the command line does not name. An empty variable
 * counts as unset. */
static int apply_env(struct stp_config *cfg, char **envp, const bool *on_cmdline)
{
    for (size_t i = 0; i < NKW; i++) {
        const struct kw *kw = &keywords[i];
        const char *val = kw->env ? env_get(envp, kw->env) : NULL;
        if (on_cmdline[i] || !val || val[0] == '\0')
            continue;
        int rc = kw->flags & KW_REPEAT ? apply_list(kw, cfg, kw->env, val)
                                       : apply(kw, cfg, kw->env, val);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int apply_argv(struct stp_config *cfg, int argc, char **argv)
{
    bool started[NKW] = {false};
    char name[64];
    for (int i = 1; i < argc;) {
        const struct kw *kw;
        const char *val;
        int rc = split_arg(argc, argv, &i, &kw, &val);
        assert(rc == 0 && val); /* scan_argv checked the shape */
        (void)rc;
        if ((kw->flags & KW_REPEAT) && !started[kw - keywords]) {
            kw->reset(cfg);
            started[kw - keywords] = true;
        }
        snprintf(name, sizeof(name), "--%s", kw->name);
        if (apply(kw, cfg, name, val) != 0)
            return -1;
    }
    return 0;
}

/* The access-control flags that need others (whether a named user exists is
 * checked when the users file is loaded, src/broker/broker.c). */
static int check_access(const struct stp_config *cfg)
{
    bool users = cfg->users_file || cfg->nusers > 0;
    const char *needs_users = NULL;
    if (cfg->users_file && cfg->nusers > 0) {
        fprintf(stderr, "stampede: --users-file and --user: use one of them\n");
        return -1;
    }
    if (cfg->acl_file && !users)
        needs_users = "--acl-file";
    else if (cfg->anonymous_user && !users)
        needs_users = "--anonymous-user";
    else if (cfg->metrics_auth && !users)
        needs_users = "--metrics-auth";
    else if (cfg->tls_cert_login && !users)
        needs_users = "--tls-cert-login";
    if (needs_users) {
        fprintf(stderr, "stampede: %s needs --users-file or --user\n", needs_users);
        return -1;
    }
    if (cfg->tls_cert_login && cfg->tls_verify_client == 0) {
        fprintf(stderr, "stampede: --tls-cert-login needs --tls-verify-client optional or "
                        "required\n");
        return -1;
    }
    return 0;
}

/* Checks that span several keywords. */
/* --node-name's default: the host name, with bytes a node name may not hold
 * made '-' and cut at 64 ("stampede" when there is none). */
static int default_node_name(struct stp_config *cfg)
{
    if (cfg->node_name)
        return 0;
    char host[256] = "";
    if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
        strcpy(host, "stampede");
    host[64] = '\0';
    for (char *p = host; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != '.')
            *p = '-';
    cfg->node_name = strdup(host);
    return cfg->node_name ? 0 : -1;
}

static int check(const struct stp_config *cfg)
{
    char a[32], b[32], url[600];
    if (cfg->heartbeat_min_ms > cfg->heartbeat_max_ms) {
        fprintf(stderr, "stampede: --heartbeat-min (%s) is above --heartbeat-max (%s)\n",
                format_scaled(cfg->heartbeat_min_ms, duration_units, a, sizeof(a)),
                format_scaled(cfg->heartbeat_max_ms, duration_units, b, sizeof(b)));
        return -1;
    }
    for (size_t i = 0; i < cfg->nlisten; i++) {
        const struct stp_listen_url *u = &cfg->listen[i];
        bool tls = u->scheme == STP_SCHEME_STOMP_SSL || u->scheme == STP_SCHEME_WSS;
        if (tls && (!cfg->tls_cert || !cfg->tls_key)) {
            stp_listen_url_format(u, u->port, url, sizeof(url));
            fprintf(stderr,
                    "stampede: --listen %s: a TLS listener needs --tls-cert and --tls-key\n", url);
            return -1;
        }
    }
    if (cfg->tls_verify_client != 0 && !cfg->tls_ca) {
        fprintf(stderr, "stampede: --tls-verify-client %s needs --tls-ca\n",
                verify_modes[cfg->tls_verify_client]);
        return -1;
    }
    return check_access(cfg);
}

enum stp_config_result stp_config_parse(struct stp_config *cfg, int argc, char **argv, char **envp)
{
    bool on_cmdline[NKW] = {false};
    memset(cfg, 0, sizeof(*cfg));
    enum stp_config_result r = scan_argv(argc, argv, on_cmdline);
    if (r != STP_CONFIG_RUN)
        return r;
    if (apply_defaults(cfg) != 0 || apply_env(cfg, envp, on_cmdline) != 0 ||
        apply_argv(cfg, argc, argv) != 0 || check(cfg) != 0 || default_node_name(cfg) != 0) {
        stp_config_free(cfg);
        return STP_CONFIG_ERROR;
    }
    return STP_CONFIG_RUN;
}

void stp_config_free(struct stp_config *cfg)
{
    reset_users(cfg);
    reset_origins(cfg);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    free(cfg->tls_key_password_file);
    free(cfg->tls_ca);
    free(cfg->tls_ciphers);
    free(cfg->users_file);
    free(cfg->acl_file);
    free(cfg->anonymous_user);
    free(cfg->metrics_auth);
    free(cfg->data_dir);
    reset_cluster(cfg);
    free(cfg->node_name);
    free(cfg->cluster_tls_ca);
    memset(cfg, 0, sizeof(*cfg));
}

/*
 * config.h - the broker's configuration: a table of keywords, each with its
 * command-line flag, STAMPEDE_* environment twin, default and parser
 * (haproxy's bind_kws style). A flag beats its environment variable.
 *
 * Filled once on the main thread before the workers start; read-only after.
 */
#ifndef STAMPEDE_CONFIG_H
#define STAMPEDE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum stp_scheme {
    STP_SCHEME_STOMP,     /* stomp://HOST:PORT */
    STP_SCHEME_STOMP_SSL, /* stomp+ssl://HOST:PORT */
    STP_SCHEME_WS,        /* ws://HOST:PORT/PATH */
    STP_SCHEME_WSS,       /* wss://HOST:PORT/PATH */
};

struct stp_listen_url {
    enum stp_scheme scheme;
    char host[256]; /* literal IPv4/IPv6 address or a name; IPv6 without brackets */
    uint16_t port;  /* 0 = any free port */
    char path[256]; /* ws/wss only; "/ws" when the URL has none */
};

struct stp_user {
    char *login;
    char *passcode;
};

#define STP_MAX_LISTENERS 16

struct stp_config {
    struct stp_listen_url listen[STP_MAX_LISTENERS];
    size_t nlisten;
    unsigned workers; /* >= 1 */
    struct stp_user *users;
    size_t nusers;
    /* limits */
    size_t max_frame_size;           /* default 4 MiB */
    size_t max_pre_connect;          /* bytes accepted before CONNECTED; 64 KiB */
    size_t max_headers;              /* default 1000 */
    size_t max_header_length;        /* default 64 KiB */
    uint64_t login_timeout_ms;       /* default 10000 */
    uint64_t heartbeat_min_ms;       /* default 100 */
    uint64_t heartbeat_max_ms;       /* default 60000 */
    size_t queue_max_messages;       /* per queue; default 1,000,000 */
    size_t queue_max_bytes;          /* per queue; default 1 GiB */
    size_t max_pending_output;       /* per connection, bytes; default 16 MiB */
    uint64_t slow_consumer_grace_ms; /* over max_pending_output this long: slow; 5 s */
    size_t max_connections;          /* all clients at once; default 100,000 */
    size_t max_connections_per_ip;   /* from one address (IPv6: one /64); default 10,000 */
    size_t memory_budget;            /* all message bytes in the broker; default 4 GiB */
    /* per-client bounds (issue 9): each is an ERROR, then close, when exceeded */
    size_t max_subscriptions;      /* per connection; default 1000 */
    size_t max_transactions;       /* open at once per connection; default 100 */
    size_t max_transaction_frames; /* SEND/ACK/NACK held by one transaction; 10,000 */
    size_t max_transaction_bytes;  /* message bytes held by one transaction; 64 MiB */
    size_t max_unacked;            /* per client-ack queue subscription; 10,000 */
    size_t max_destination_length; /* bytes; default 1 KiB */
    size_t max_destinations;       /* queues + topics in the broker; default 100,000 */
    /* WebSocket (issue 4) and TLS (issue 5) settings are added by those modules. */
    char **ws_allowed_origins;
    size_t nws_allowed_origins;
    bool ws_frame_binary;
    char *tls_cert, *tls_key, *tls_key_password_file, *tls_ca, *tls_ciphers;
    int tls_verify_client; /* 0 none, 1 optional, 2 required */
    int log_level;         /* enum stp_log_level */
    /* Access control (issue 11). */
    char *users_file;                  /* LOGIN:HASH lines (src/auth) */
    char *acl_file;                    /* LOGIN read|write|readwrite PATTERN lines */
    char *anonymous_user;              /* a CONNECT without login/passcode is this user */
    char *metrics_auth;                /* /metrics needs HTTP Basic auth as this user */
    bool tls_cert_login;               /* no passcode on verified TLS: the certificate's CN */
    bool allow_remote_unauthenticated; /* no users: accept other hosts too */
    /* Durable queues (issue 12). */
    char *data_dir;          /* journal directory; NULL: messages in memory only */
    size_t max_redeliveries; /* dead-letter after this many redeliveries; 0: off */
    bool dead_letter;        /* expired/rejected queue messages go to DLQ.<name> */
    /* Publish de-duplication (issue 13): SENDs with a dedup-id seen on the
     * same destination within the window are dropped (still receipted). */
    uint64_t dedup_window_ms;   /* 0: off; default 2 min */
    size_t max_dsubs_per_login; /* durable topic subscriptions one login holds; 1000 */
    size_t dedup_max_ids;       /* ids remembered per destination; default 100,000 */
    size_t dedup_max_memory;    /* bytes of every window in the broker; default 256 MiB */
    /* Clustering on NATS (issue 14): the NATS servers to join, as NATS URLs
     * (nats://[USER:PASS@]HOST:PORT, tls://...); none: a single node, and
     * nothing of NATS is loaded. */
    char **cluster_urls;
    size_t ncluster_urls;
    uint64_t cluster_ack_wait_ms; /* JetStream AckWait of cluster queues; default 30 s */
    char *node_name;              /* this node's name in the cluster; default: the host name */
    char *cluster_tls_ca;         /* CAs a tls:// NATS server's certificate must chain to */
};

enum stp_config_result {
    STP_CONFIG_RUN = 0,  /* start the broker */
    STP_CONFIG_EXIT = 1, /* --help or --version was printed: exit 0 */
    STP_CONFIG_ERROR = 2 /* a one-line error was printed to stderr: exit 2 */
};

/* Parse argv and the environment (envp, NULL-terminated "NAME=value"
 * strings) into cfg, starting from the defaults. Prints --help/--version to
 * stdout and one-line errors ("stampede: --workers: 'x' is not a number") to
 * stderr. Only RUN leaves anything to free in cfg (stp_config_free is safe
 * after every result, and twice). An empty STAMPEDE_* variable counts as unset;
 * the repeatable ones (LISTEN, USER, WS_ALLOWED_ORIGIN) take comma-separated
 * lists. */
enum stp_config_result stp_config_parse(struct stp_config *cfg, int argc, char **argv, char **envp);
void stp_config_free(struct stp_config *cfg);

/* "stomp://0.0.0.0:61613" etc. 0 or STP_EINVAL. */
int stp_listen_url_parse(const char *text, struct stp_listen_url *out);
/* The same, returning NULL or why the text is not a listen URL. */
const char *stp_listen_url_check(const char *text, struct stp_listen_url *out);
/* Format a URL (with the given port) into buf, e.g. for the "listening on" log. */
void stp_listen_url_format(const struct stp_listen_url *u, uint16_t port, char *buf, size_t n);

/* CPUs this process may use: its affinity mask, capped by the cgroup (v2
 * cpu.max, v1 cfs quota) CPU quota rounded up; at least 1. */
unsigned stp_available_cpus(void);

/* The pieces of stp_available_cpus, exposed for tests (src/cpus.c). */
/* Text of a cgroup v2 cpu.max ("max 100000", "150000 100000"): *cpus = the quota
 * in CPUs rounded up (>= 1), or 0 when unlimited. 0 or STP_EINVAL. */
int stp_cpus_parse_cpu_max(const char *text, unsigned *cpus);
/* Texts of cgroup v1 cpu.cfs_quota_us and cpu.cfs_period_us (quota -1 =
 * unlimited): same result as above. 0 or STP_EINVAL. */
int stp_cpus_parse_cfs(const char *quota, const char *period, unsigned *cpus);
/* The CPU limit of this process's cgroup and its ancestors, rounded up; 0 when
 * there is none or nothing could be read. root is the cgroup mount point
 * ("/sys/fs/cgroup"); self_cgroup the text of /proc/self/cgroup (NULL: read it).
 * Looks at ROOT/PATH/cpu.max (v2) and ROOT/cpu[,cpuacct]/PATH/cpu.cfs_* (v1),
 * walking PATH up to ROOT and keeping the smallest limit. */
unsigned stp_cpus_cgroup_limit(const char *root, const char *self_cgroup);

#endif

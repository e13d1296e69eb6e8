/*
 * broker.c - start and stop the workers; open the listening sockets.
 *
 * Main thread only. Each listener gets one socket per worker with
 * SO_REUSEPORT, all bound to the same address: the kernel spreads incoming
 * connections over the workers and no thread hands sockets to another. With
 * port 0 the first socket picks the port and the others bind to it.
 */
#include "broker/broker.h"

#include "broker/cluster.h"
#include "broker/login_cache.h"

#include "broker/cmd.h"
#include "broker/worker.h"
#include "stampede/error.h"
#include "stampede/log.h"
#include "stampede/mailbox.h"
#include "stampede/msg.h"
#include "stampede/tls.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RING_CAPACITY 16384
#define STOP_DRAIN_MS 4000

static int bind_one(const struct addrinfo *ai, uint16_t port)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    struct sockaddr_storage ss;
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
    if (bind(fd, (struct sockaddr *)&ss, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

static uint16_t bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int open_listener(struct stp_broker *b, unsigned l)
{
    const struct stp_listen_url *u = &b->cfg->listen[l];
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE},
                    *ai = NULL;
    int rc = getaddrinfo(u->host, NULL, &hints, &ai);
    if (rc != 0) {
        stp_error("cannot resolve listen address '%s': %s", u->host, gai_strerror(rc));
        return STP_EINVAL;
    }
    uint16_t port = u->port;
    for (unsigned i = 0; i < b->nworkers; i++) {
        int fd = bind_one(ai, port);
        if (fd < 0) {
            stp_error("cannot listen on %s:%u: %s", u->host, port, strerror(-fd));
            freeaddrinfo(ai);
            return STP_EIO;
        }
        b->fds[l * b->nworkers + i] = fd;
        if (i == 0)
            port = bound_port(fd);
    }
    freeaddrinfo(ai);
    b->ports[l] = port;
    char url[600];
    stp_listen_url_format(u, port, url, sizeof(url));
    stp_info("listening on %s", url);
    return 0;
}

static bool is_tls(enum stp_scheme s)
{
    return s == STP_SCHEME_STOMP_SSL || s == STP_SCHEME_WSS;
}

static bool is_ws(enum stp_scheme s)
{
    return s == STP_SCHEME_WS || s == STP_SCHEME_WSS;
}

/* The per-listener settings of the TLS and WebSocket layers. */
static int prepare_listeners(struct stp_broker *b)
{
    const struct stp_config *cfg = b->cfg;
    for (size_t l = 0; l < cfg->nlisten; l++) {
        enum stp_scheme s = cfg->listen[l].scheme;
        if (is_ws(s)) {
            b->ws_cfg[l] = (struct stp_ws_config){.path = cfg->listen[l].path,
                                                  .allowed_origins = cfg->ws_allowed_origins,
                                                  .nallowed_origins = cfg->nws_allowed_origins,
                                                  .max_message = cfg->max_frame_size};
        }
        if (!is_tls(s))
            continue;
        struct stp_tls_server_opts o = {.cert_path = cfg->tls_cert,
                                        .key_path = cfg->tls_key,
                                        .key_password_path = cfg->tls_key_password_file,
                                        .ca_path = cfg->tls_ca,
                                        .verify = (enum stp_tls_verify)cfg->tls_verify_client,
                                        .ciphers = cfg->tls_ciphers};
        char err[256] = "", url[600];
        if (stp_tls_server_config_new(&b->tls_cfg[l], &o, err, sizeof(err)) < 0) {
            stp_listen_url_format(&cfg->listen[l], cfg->listen[l].port, url, sizeof(url));
            fprintf(stderr, "stampede: --listen %s: %s\n", url, err);
            return STP_EINVAL;
        }
    }
    return 0;
}

void stp_broker_reload_tls(struct stp_broker *b)
{
    for (size_t l = 0; l < b->cfg->nlisten; l++) {
        if (!b->tls_cfg[l])
            continue;
        char err[256] = "";
        if (stp_tls_config_reload(&b->tls_cfg[l], err, sizeof(err)) < 0) {
            stp_warn("SIGHUP: keeping the old certificate: %s", err);
            continue;
        }
        for (unsigned i = 0; i < b->nworkers; i++)
            stp_worker_reload_tls(&b->workers[i], (unsigned)l, stp_tls_config_ref(b->tls_cfg[l]));
        stp_info("SIGHUP: reloaded the certificate and key of listener %zu", l);
    }
}

/* A user a flag names must exist. */
static int check_user_flag(const struct stp_broker *b, const char *flag, const char *login)
{
    const struct stp_config *cfg = b->cfg;
    if (!login)
        return 0;
    if (b->users && stp_users_hash(b->users, login, strlen(login)))
        return 0;
    for (size_t i = 0; i < cfg->nusers; i++)
        if (strcmp(cfg->users[i].login, login) == 0)
            return 0;
    fprintf(stderr, "stampede: %s %s: no such user in %s\n", flag, login,
            cfg->users_file ? "--users-file" : "--user");
    return STP_EINVAL;
}

/* The users and ACL files, and what the log says about access. */
static int prepare_access(struct stp_broker *b)
{
    const struct stp_config *cfg = b->cfg;
    char err[512] = "";
    if (cfg->users_file && stp_users_load(&b->users, cfg->users_file, err, sizeof(err)) < 0) {
        fprintf(stderr, "stampede: --users-file: %s\n", err);
        return STP_EINVAL;
    }
    if (b->users && stp_login_cache_new(&b->login_cache) < 0) {
        fprintf(stderr, "stampede: --users-file: could not set up the login cache\n");
        return STP_EINVAL;
    }
    if (cfg->acl_file && stp_acl_load(&b->acl, cfg->acl_file, err, sizeof(err)) < 0) {
        fprintf(stderr, "stampede: --acl-file: %s\n", err);
        return STP_EINVAL;
    }
    if (check_user_flag(b, "--anonymous-user", cfg->anonymous_user) < 0 ||
        check_user_flag(b, "--metrics-auth", cfg->metrics_auth) < 0)
        return STP_EINVAL;
    if (b->users)
        stp_info("%zu users from %s", stp_users_count(b->users), cfg->users_file);
    else if (cfg->nusers > 0)
        stp_warn("--user passcodes are plain text (visible in ps and the environment); "
                 "use --users-file for hashed ones");
    else if (cfg->allow_remote_unauthenticated)
        stp_warn("authentication is off: no users configured and "
                 "--allow-remote-unauthenticated: any client may connect with any login");
    else
        stp_info("authentication is off: no users configured, so only loopback clients may "
                 "connect (with any login); see --users-file");
    if (b->acl)
        stp_info("%zu ACL rules from %s", stp_acl_count(b->acl), cfg->acl_file);
    return 0;
}

void stp_broker_release(struct stp_broker *b)
{
    stp_users_free(&b->users);
    stp_acl_free(&b->acl);
    stp_login_cache_free(&b->login_cache);
    stp_recover_release(b);
    for (size_t l = 0; l < STP_MAX_LISTENERS; l++)
        stp_tls_config_unref(&b->tls_cfg[l]);
}

int stp_broker_prepare(struct stp_broker *b, const struct stp_config *cfg)
{
    memset(b, 0, sizeof(*b));
    b->cfg = cfg;
    b->nworkers = cfg->workers;
    b->recovery.lock_fd = -1;
    int rc = prepare_access(b);
    if (rc == 0)
        rc = prepare_listeners(b);
    if (rc == 0)
        rc = stp_recover(b);
    if (rc == 0 && !cfg->data_dir)
        stp_info("no --data-dir: persistent messages are kept in memory only and will not "
                 "survive a restart");
    if (rc < 0)
        stp_broker_release(b);
    return rc;
}

int stp_broker_start(struct stp_broker *b)
{
    const struct stp_config *cfg = b->cfg;
    int rc;
    b->started_ms = uv_hrtime() / 1000000;
    stp_admit_init(&b->admit, cfg->max_connections, cfg->max_connections_per_ip, 0);
    b->fds = malloc(cfg->nlisten * b->nworkers * sizeof(int));
    b->workers = calloc(b->nworkers, sizeof(*b->workers));
    if (!b->fds || !b->workers)
        return STP_ENOMEM;
    for (size_t i = 0; i < cfg->nlisten * b->nworkers; i++)
        b->fds[i] = -1;
    /* --cluster adds the cluster thread's and NATS delivery thread's
     * endpoints after the workers' (cluster.h). */
    unsigned endpoints = b->nworkers + (cfg->ncluster_urls ? STP_CLUSTER_ENDPOINTS : 0);
    rc = stp_mailboxes_init(&b->mb, endpoints, RING_CAPACITY, sizeof(struct stp_post));
    if (rc < 0)
        return rc;
    if (cfg->ncluster_urls && (rc = stp_cluster_start(b)) < 0)
        return rc;
    for (unsigned l = 0; l < cfg->nlisten; l++) {
        if ((rc = open_listener(b, l)) < 0)
            return rc;
    }
    for (unsigned i = 0; i < b->nworkers; i++) {
        struct stp_worker *w = &b->workers[i];
        w->id = i;
        w->broker_workers = b->nworkers;
        w->broker = b;
        w->mb = b->mb;
        w->cfg = cfg;
        w->net.ws_cfg = b->ws_cfg;
        w->net.admit = &b->admit;
        for (unsigned l = 0; l < cfg->nlisten; l++)
            w->net.tls_cfg[l] = b->tls_cfg[l] ? stp_tls_config_ref(b->tls_cfg[l]) : NULL;
        stp_recover_hand_over(b, w);
        if ((rc = stp_worker_start(w)) < 0)
            return rc;
    }
    return 0;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void stp_broker_stop(struct stp_broker *b)
{
    stp_cluster_closing(b); /* nothing more from other nodes */
    for (unsigned i = 0; i < b->nworkers; i++)
        stp_worker_request_stop(&b->workers[i], 1);
    for (unsigned waited = 0; waited < STOP_DRAIN_MS; waited += 10) {
        if (atomic_load_explicit(&b->drained, memory_order_acquire) == b->nworkers)
            break;
        sleep_ms(10);
    }
    for (unsigned i = 0; i < b->nworkers; i++)
        stp_worker_request_stop(&b->workers[i], 2);
    for (unsigned i = 0; i < b->nworkers; i++)
        uv_thread_join(&b->workers[i].thread);
    stp_cluster_stop(b); /* after the workers: they may still tell it of interest */
    stp_mailboxes_drain(b->mb, stp_post_drop, NULL);
    stp_mailboxes_free(b->mb);
    free(b->workers);
    free(b->fds);
    stp_broker_release(b);
}

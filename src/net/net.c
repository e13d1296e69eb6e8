/*
 * net.c - the net layer's per-thread context: listeners, the flush point,
 * TLS config reloads, and what is left to free when the loop ends.
 *
 * Everything runs on the loop's thread except stp_net_reload_tls (any
 * thread). The connection table itself is in conn.c.
 */
#include "net.h"

#include "conn.h"
#include "stampede/error.h"
#include "stampede/log.h"
#include "stampede/tls.h"

#include <stdlib.h>

static void on_connection(uv_stream_t *server, int status)
{
    struct stp_net *n = server->data;
    if (status < 0) {
        stp_warn("accept failed: %s", uv_strerror(status));
        return;
    }
    stp_conn_accept(n, server, (unsigned)((uv_tcp_t *)server - n->listeners));
}

/* SIGHUP: another thread left a new TLS config (one reference for us) in
 * tls_reload[l]; new handshakes use it, open connections keep theirs. */
static void on_reload(uv_async_t *a)
{
    struct stp_net *n = a->data;
    for (unsigned l = 0; l < STP_MAX_LISTENERS; l++) {
        struct stp_tls_config *cfg =
            atomic_exchange_explicit(&n->tls_reload[l], NULL, memory_order_acquire);
        if (cfg)
            stp_tls_config_set(&n->tls_cfg[l], cfg);
    }
}

int stp_net_init(struct stp_net *n, uv_loop_t *loop, const struct stp_config *cfg,
                 const struct stp_conn_ops *ops)
{
    n->loop = loop;
    n->cfg = cfg;
    n->ops = ops;
    int rc = uv_async_init(loop, &n->reload_async, on_reload);
    if (rc < 0)
        return stp_err_from_uv(rc);
    n->reload_async.data = n;
    if (stp_tls_rng_new(&n->tls_rng) < 0)
        return STP_ETLS;
    return 0;
}

int stp_net_listen(struct stp_net *n, unsigned l, int fd)
{
    uv_tcp_t *t = &n->listeners[l];
    uv_tcp_init(n->loop, t);
    t->data = n;
    if (l >= n->nlisteners)
        n->nlisteners = l + 1;
    int rc = uv_tcp_open(t, fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)t, 1024, on_connection);
    if (rc < 0) {
        stp_error("listen failed: %s", uv_strerror(rc));
        return stp_err_from_uv(rc);
    }
    return 0;
}

void stp_net_stop_listening(struct stp_net *n)
{
    n->stopping = true;
    for (unsigned i = 0; i < n->nlisteners; i++)
        if (!uv_is_closing((uv_handle_t *)&n->listeners[i]))
            uv_close((uv_handle_t *)&n->listeners[i], NULL);
}

void stp_net_close_handles(struct stp_net *n)
{
    stp_net_close_all(n, STP_CLOSE_NOW);
    uv_close((uv_handle_t *)&n->reload_async, NULL);
}

void stp_net_free(struct stp_net *n)
{
    free(n->slots);
    free(n->free_slots);
    n->slots = NULL;
    n->free_slots = NULL;
    n->nslots = n->nfree = 0;
    for (unsigned l = 0; l < STP_MAX_LISTENERS; l++) {
        struct stp_tls_config *cfg = atomic_exchange(&n->tls_reload[l], NULL);
        stp_tls_config_unref(&cfg);
        stp_tls_config_unref(&n->tls_cfg[l]);
    }
    stp_tls_rng_free(&n->tls_rng);
}

void stp_net_reload_tls(struct stp_net *n, unsigned l, struct stp_tls_config *cfg)
{
    struct stp_tls_config *old =
        atomic_exchange_explicit(&n->tls_reload[l], cfg, memory_order_release);
    stp_tls_config_unref(&old);
    uv_async_send(&n->reload_async);
}

void stp_net_flush(struct stp_net *n)
{
    stp_conn_input_run(n);
    stp_conn_reap(n);
    stp_conn_flush_dirty(n);
    stp_conn_reap(n);
}

bool stp_net_idle(const struct stp_net *n)
{
    return n->nconns == 0 && !n->reap;
}

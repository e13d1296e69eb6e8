/*
 * nats_module.c - stampede-nats.so: the broker's one NATS connection,
 * through libnats in its threaded mode (see nats_api.h for the contract).
 *
 * Options, and why:
 *   - no echo: a node never gets back what it published (it delivered
 *     those itself);
 *   - reconnect forever, 250 ms apart plus jitter, also when the first
 *     connect fails (the broker serves its local clients meanwhile);
 *   - 8 MiB reconnect buffer: what is published while NATS is away waits
 *     there, and a publish past it fails (the broker counts the drop);
 *   - one global delivery thread: every subscription's messages reach
 *     on_msg from the same thread, in the order they arrived;
 *   - pings every 5 s, 2 unanswered = dead: a server that vanished without
 *     closing the socket is noticed in about 10 s, not minutes;
 *   - each subscription holds at most 16,384 messages / 8 MiB not yet
 *     handed to the broker (libnats's default is 64 MiB): a node that falls
 *     behind drops (a slow consumer, as NATS itself does) rather than grow.
 */
#include "cluster/nats_api.h"

#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECONNECT_WAIT_MS 250
#define RECONNECT_BUF_BYTES (8 * 1024 * 1024)
#define PING_INTERVAL_MS 5000
#define CLOSE_WAIT_MS 5000
#define PENDING_MSGS 16384
#define PENDING_BYTES (8 * 1024 * 1024)
#define MAX_ACK_PENDING 10000000
#define STREAM_ATTEMPTS 3
#define CONSUMER_IDLE_S 3600
#define STREAM_RETRY_MS 50

struct stp_nats {
    natsConnection *nc;
    natsOptions *opts;
    struct stp_nats_hooks hooks;
};

/* url without "user:pass@" (what may be logged). */
static void url_for_log(char *out, size_t n, const char *url)
{
    const char *scheme_end = strstr(url, "://");
    const char *host = scheme_end ? scheme_end + 3 : url;
    const char *at = strrchr(host, '@');
    if (!at) {
        snprintf(out, n, "%s", url);
        return;
    }
    snprintf(out, n, "%.*s%s", (int)(host - url), url, at + 1);
}

static void tell_state(natsConnection *nc, struct stp_nats *n, enum stp_nats_state s)
{
    char url[512] = "", shown[512];
    int64_t max_payload = 0;
    if (nc) {
        natsConnection_GetConnectedUrl(nc, url, sizeof(url));
        if (s != STP_NATS_DISCONNECTED)
            max_payload = natsConnection_GetMaxPayload(nc);
    }
    url_for_log(shown, sizeof(shown), url);
    n->hooks.on_state(n->hooks.ctx, s, shown, max_payload);
}

static void on_connected(natsConnection *nc, void *closure)
{
    tell_state(nc, closure, STP_NATS_CONNECTED);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    tell_state(nc, closure, STP_NATS_DISCONNECTED);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    tell_state(nc, closure, STP_NATS_RECONNECTED);
}

static void on_closed(natsConnection *nc, void *closure)
{
    (void)nc;
    tell_state(NULL, closure, STP_NATS_CLOSED);
}

static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    (void)nc;
    (void)sub;
    struct stp_nats *n = closure;
    n->hooks.on_error(n->hooks.ctx, natsStatus_GetText(err));
}

/* A status message's code ("Status" header: libnats files the status line
 * "NATS/1.0 408 Request Timeout" there), 0 for a plain message. */
static int msg_status(natsMsg *msg)
{
    const char *v = NULL;
    if (natsMsgHeader_Get(msg, "Status", &v) != NATS_OK || !v)
        return 0;
    int code = atoi(v);
    return code > 0 ? code : 0;
}

static long msg_pending(natsMsg *msg)
{
    const char *v = NULL;
    if (natsMsgHeader_Get(msg, "Nats-Pending-Messages", &v) != NATS_OK || !v)
        return -1;
    char *end;
    long p = strtol(v, &end, 10);
    return end != v && p >= 0 ? p : -1;
}

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    struct stp_nats *n = closure;
    struct stp_nats_msg m = {.subject = natsMsg_GetSubject(msg),
                             .reply = natsMsg_GetReply(msg),
                             .data = natsMsg_GetData(msg),
                             .len = (size_t)natsMsg_GetDataLength(msg),
                             .status = msg_status(msg),
                             .pending = -1};
    if (m.status)
        m.pending = msg_pending(msg);
    n->hooks.on_msg(n->hooks.ctx, &m);
    natsMsg_Destroy(msg);
}

static natsStatus set_options(struct stp_nats *n, const char *const *urls, size_t count,
                              const char *name)
{
    natsOptions *o = n->opts;
    natsStatus s = natsOptions_SetServers(o, (const char **)urls, (int)count);
    if (s == NATS_OK)
        s = natsOptions_SetName(o, name);
    if (s == NATS_OK)
        s = natsOptions_SetNoEcho(o, true);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(o, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(o, RECONNECT_WAIT_MS);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectJitter(o, 100, 1000);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectBufSize(o, RECONNECT_BUF_BYTES);
    if (s == NATS_OK)
        s = natsOptions_SetPingInterval(o, PING_INTERVAL_MS);
    if (s == NATS_OK)
        s = natsOptions_SetMaxPingsOut(o, 2);
    if (s == NATS_OK)
        s = natsOptions_UseGlobalMessageDelivery(o, true);
    if (s == NATS_OK)
        s = natsOptions_SetRetryOnFailedConnect(o, true, on_connected, n);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(o, on_disconnected, n);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(o, on_reconnected, n);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(o, on_closed, n);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(o, on_error, n);
    return s;
}

/* The host of a NATS URL ("tls://user:pass@host:port" -> "host") into out. */
static void url_host(char *out, size_t n, const char *url)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    const char *at = strrchr(p, '@');
    if (at)
        p = at + 1;
    size_t len = p[0] == '[' ? strcspn(p + 1, "]") : strcspn(p, ":/");
    if (p[0] == '[')
        p++;
    snprintf(out, n, "%.*s", (int)len, p);
}

/* --cluster-tls-ca: verify tls:// servers against these CAs; with one URL
 * the certificate must also name its host (libnats checks the name only
 * when told which). */
static natsStatus set_tls(natsOptions *o, const char *ca, const char *const *urls, size_t count)
{
    natsStatus s = natsOptions_LoadCATrustedCertificates(o, ca);
    if (s == NATS_OK && count == 1) {
        char host[256];
        url_host(host, sizeof(host), urls[0]);
        s = natsOptions_SetExpectedHostname(o, host);
    }
    return s;
}

static int nats_open(struct stp_nats **out, const char *const *urls, size_t count, const char *name,
                     const char *tls_ca, const struct stp_nats_hooks *hooks, char *err,
                     size_t errlen)
{
    *out = NULL;
    natsStatus s = nats_Open(-1);
    if (s == NATS_OK)
        s = nats_SetMessageDeliveryPoolSize(1);
    struct stp_nats *n = s == NATS_OK ? calloc(1, sizeof(*n)) : NULL;
    if (!n) {
        snprintf(err, errlen, "could not start the NATS library: %s",
                 s == NATS_OK ? "out of memory" : natsStatus_GetText(s));
        return -1;
    }
    n->hooks = *hooks;
    s = natsOptions_Create(&n->opts);
    if (s == NATS_OK)
        s = set_options(n, urls, count, name);
    if (s == NATS_OK && tls_ca)
        s = set_tls(n->opts, tls_ca, urls, count);
    if (s == NATS_OK) {
        s = natsConnection_Connect(&n->nc, n->opts);
        if (s == NATS_OK)
            on_connected(n->nc, n); /* the callback is only for a late connect */
        else if (s == NATS_NOT_YET_CONNECTED)
            s = NATS_OK;
    }
    if (s != NATS_OK) {
        snprintf(err, errlen, "%s", natsStatus_GetText(s));
        natsOptions_Destroy(n->opts);
        free(n);
        return -1;
    }
    *out = n;
    return 0;
}

static int publish_plain(struct stp_nats *n, const char *subject, const void *data, size_t len)
{
    if (len > (size_t)INT32_MAX)
        return -1;
    return natsConnection_Publish(n->nc, subject, data, (int)len) == NATS_OK ? 0 : -1;
}

static int nats_publish(struct stp_nats *n, const char *subject, const char *reply,
                        const char *msg_id, const void *data, size_t len)
{
    if (len > (size_t)INT32_MAX)
        return -1;
    if (!msg_id && !reply)
        return publish_plain(n, subject, data, len);
    if (!msg_id)
        return natsConnection_PublishRequest(n->nc, subject, reply, data, (int)len) == NATS_OK ? 0
                                                                                               : -1;
    natsMsg *m = NULL;
    natsStatus s = natsMsg_Create(&m, subject, reply, data, (int)len);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, "Nats-Msg-Id", msg_id);
    if (s == NATS_OK)
        s = natsConnection_PublishMsg(n->nc, m);
    natsMsg_Destroy(m);
    return s == NATS_OK ? 0 : -1;
}

/* err from a failed JetStream call: libnats's last error text. */
static void js_err(char *err, size_t errlen, const char *what, natsStatus s, jsErrCode code)
{
    const char *text = nats_GetLastError(NULL);
    snprintf(err, errlen, "%s: %s (JetStream error %d)", what,
             text && *text ? text : natsStatus_GetText(s), (int)code);
}

static natsStatus js_stream(jsCtx *js, const struct stp_nats_js *q, char *err, size_t errlen)
{
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    const char *subjects[1] = {q->subjects};
    sc.Name = q->stream;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Retention = js_WorkQueuePolicy;
    sc.Storage = js_FileStorage;
    sc.MaxMsgsPerSubject = q->max_per_subject;
    sc.MaxMsgSize = q->max_msg_size;
    sc.Discard = js_DiscardNew;
    sc.DiscardNewPerSubject = q->max_per_subject > 0;
    sc.Duplicates = q->dup_window_ms > 0 ? q->dup_window_ms * 1000000 : 0;
    natsStatus s = NATS_OK;
    jsErrCode code = 0;
    /* Another node may be making the same stream at this moment (then
     * JetStream answers "name in use" or, mid-creation, "subjects
     * overlap"): update it to this configuration instead, a few times. */
    for (int attempt = 0; attempt < STREAM_ATTEMPTS; attempt++) {
        jsStreamInfo *si = NULL;
        code = 0;
        s = js_AddStream(&si, js, &sc, NULL, &code);
        jsStreamInfo_Destroy(si);
        if (s == NATS_OK || (code != JSStreamNameExistErr && code != JSStreamSubjectOverlapErr))
            break;
        si = NULL;
        code = 0;
        s = js_UpdateStream(&si, js, &sc, NULL, &code);
        jsStreamInfo_Destroy(si);
        if (s == NATS_OK)
            break;
        nats_Sleep(STREAM_RETRY_MS);
    }
    if (s != NATS_OK)
        js_err(err, errlen, "stream", s, code);
    return s;
}

static natsStatus js_consumer(jsCtx *js, const struct stp_nats_js *q, char *err, size_t errlen)
{
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = q->consumer;
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = q->ack_wait_ms * 1000000;
    cc.MaxDeliver = -1; /* --max-redeliveries is the broker's, at NACK */
    /* Each node leases only what its consumers have room for; JetStream's
     * own bound must not stop them first (libnats 3.4 does not send -1,
     * so the server's default of 1,000 would apply). */
    cc.MaxAckPending = MAX_ACK_PENDING;
    /* A queue nobody has pulled from for an hour gives its consumer back
     * (its messages stay in the stream; the next subscriber makes it again):
     * queue names used once do not pile up consumers in JetStream. */
    cc.InactiveThreshold = (int64_t)CONSUMER_IDLE_S * 1000000000;
    cc.FilterSubject = q->filter;
    jsConsumerInfo *ci = NULL;
    jsErrCode code = 0;
    natsStatus s = js_AddConsumer(&ci, js, q->stream, &cc, NULL, &code);
    if (s != NATS_OK && code != 0 && code != JSStreamNotFoundErr) {
        jsConsumerInfo_Destroy(ci);
        ci = NULL;
        s = js_UpdateConsumer(&ci, js, q->stream, &cc, NULL, &code); /* e.g. another ack wait */
    }
    if (s != NATS_OK)
        js_err(err, errlen, "consumer", s, code);
    jsConsumerInfo_Destroy(ci);
    return s;
}

static int nats_js_setup(struct stp_nats *n, const struct stp_nats_js *q, int timeout_ms, char *err,
                         size_t errlen)
{
    if (natsConnection_Status(n->nc) != NATS_CONN_STATUS_CONNECTED) {
        snprintf(err, errlen, "not connected to NATS");
        return -1;
    }
    jsOptions o;
    jsOptions_Init(&o);
    o.Wait = timeout_ms;
    jsCtx *js = NULL;
    natsStatus s = natsConnection_JetStream(&js, n->nc, &o);
    if (s != NATS_OK) {
        snprintf(err, errlen, "JetStream: %s", natsStatus_GetText(s));
        return -1;
    }
    s = js_stream(js, q, err, errlen);
    if (s == NATS_OK && q->consumer)
        s = js_consumer(js, q, err, errlen);
    jsCtx_Destroy(js);
    return s == NATS_OK ? 0 : -1;
}

static int nats_subscribe(struct stp_nats *n, const char *subject, void **sub)
{
    natsSubscription *s = NULL;
    if (natsConnection_Subscribe(&s, n->nc, subject, on_msg, n) != NATS_OK)
        return -1;
    /* What waits for the delivery thread (while the owners' rings are
     * full) is bounded per subscription; past it libnats drops and
     * reports a slow consumer (counted by the broker). */
    natsSubscription_SetPendingLimits(s, PENDING_MSGS, PENDING_BYTES);
    *sub = s;
    return 0;
}

static void nats_unsubscribe(struct stp_nats *n, void *sub)
{
    (void)n;
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
}

static int nats_flush(struct stp_nats *n, int timeout_ms)
{
    if (natsConnection_Status(n->nc) != NATS_CONN_STATUS_CONNECTED)
        return -1;
    return natsConnection_FlushTimeout(n->nc, timeout_ms) == NATS_OK ? 0 : -1;
}

static void nats_counts(struct stp_nats *n, struct stp_nats_counts *out)
{
    memset(out, 0, sizeof(*out));
    natsStatistics *st = NULL;
    if (natsStatistics_Create(&st) != NATS_OK)
        return;
    if (natsConnection_GetStats(n->nc, st) == NATS_OK)
        natsStatistics_GetCounts(st, &out->in_msgs, &out->in_bytes, &out->out_msgs, &out->out_bytes,
                                 &out->reconnects);
    natsStatistics_Destroy(st);
}

static int64_t nats_max_payload(struct stp_nats *n)
{
    return natsConnection_Status(n->nc) == NATS_CONN_STATUS_CONNECTED
               ? natsConnection_GetMaxPayload(n->nc)
               : 0;
}

static void nats_close(struct stp_nats *n)
{
    natsConnection_Close(n->nc);
    natsConnection_Destroy(n->nc);
    natsOptions_Destroy(n->opts);
    /* Waits for the library's threads (delivery included): no hook runs
     * after this returns. */
    nats_CloseAndWait(CLOSE_WAIT_MS);
    free(n);
}

__attribute__((visibility("default"))) const struct stp_nats_api stp_nats_api_v4 = {
    .version = STP_NATS_API_VERSION,
    .open = nats_open,
    .publish = nats_publish,
    .js_setup = nats_js_setup,
    .subscribe = nats_subscribe,
    .unsubscribe = nats_unsubscribe,
    .flush = nats_flush,
    .counts = nats_counts,
    .max_payload = nats_max_payload,
    .close = nats_close,
};

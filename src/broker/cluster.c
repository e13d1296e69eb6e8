/*
 * cluster.c - the cluster thread: loads the NATS module, publishes what
 * topic owners hand it, and keeps the node's NATS subscriptions equal to
 * its local interest (see cluster.h for the design and the threads).
 */
#include "broker/cluster_int.h"

#include "broker/broker.h"
#include "broker/cmd.h"
#include "broker/dest.h"
#include "broker/worker.h"
#include "cluster/subject.h"
#include "cluster/wire.h"
#include "stampede/array.h"
#include "stampede/error.h"
#include "stampede/log.h"
#include "stampede/mailbox.h"
#include "stampede/msg.h"

#include <dlfcn.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

/* Longest wait for NATS's answer to a flush (a held receipt waits that long
 * at most, and the cluster thread with it). */
#define FLUSH_TIMEOUT_MS 1000

#ifndef STP_MODULE_DIR
#define STP_MODULE_DIR "/usr/local/lib/stampede"
#endif

/* One interest: the NATS subscriptions behind a topic name or pattern (a
 * pattern with `#` needs two, see subjects_of). */
struct stp_cluster_sub {
    char *name;
    size_t len;
    int count;
    unsigned nsubs;
    void *subs[2];
};

/* ---- loading the module ---- */

/* The module beside the binary, in the build tree (build/src/cluster), or
 * in the installed module directory: the first that exists is loaded. */
static const struct stp_nats_api *load_module(void)
{
    char exe[PATH_MAX], path[PATH_MAX + 64];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[k > 0 ? k : 0] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    const char *dirs[] = {exe, NULL, STP_MODULE_DIR};
    char tree[PATH_MAX + 16];
    snprintf(tree, sizeof(tree), "%s/src/cluster", exe);
    dirs[1] = tree;
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dirs[i], STP_NATS_MODULE);
        if (access(path, R_OK) != 0)
            continue;
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            stp_error("--cluster: cannot load %s: %s", path, dlerror());
            return NULL;
        }
        const struct stp_nats_api *api = dlsym(h, STP_NATS_API_SYMBOL);
        if (!api || api->version != STP_NATS_API_VERSION) {
            stp_error("--cluster: %s is not this version's NATS module", path);
            return NULL;
        }
        return api; /* never unloaded: libnats's threads may outlive a dlclose */
    }
    stp_error("--cluster: %s not found beside %s/stampede, in %s/src/cluster or in %s",
              STP_NATS_MODULE, exe, exe, STP_MODULE_DIR);
    return NULL;
}

/* ---- hooks (libnats's threads) ---- */

/* A server that takes smaller messages than clients may send here: say so
 * once (such queue SENDs get ERROR, such topic messages stay local). */
static void warn_max_payload(struct stp_cluster *c, int64_t max)
{
    size_t frame = c->b->cfg->max_frame_size;
    if (max > 0 && (uint64_t)max < frame + 64)
        stp_warn("cluster: the NATS server takes messages up to %" PRId64 " bytes (its "
                 "max_payload) but --max-frame-size is %zu: larger queue SENDs get ERROR and "
                 "larger topic messages reach local subscribers only; raise max_payload",
                 max, frame);
}

static void on_state(void *ctx, enum stp_nats_state state, const char *url, int64_t max_payload)
{
    struct stp_cluster *c = ctx;
    const char *name = c->b->cfg->node_name;
    switch (state) {
    case STP_NATS_CONNECTED:
        stp_info("cluster: connected to NATS at %s as node %s", url, name);
        warn_max_payload(c, max_payload);
        break;
    case STP_NATS_RECONNECTED:
        stp_info("cluster: reconnected to NATS at %s as node %s", url, name);
        break;
    case STP_NATS_DISCONNECTED:
        if (atomic_load_explicit(&c->closing, memory_order_relaxed))
            break; /* our own close at shutdown */
        atomic_fetch_add_explicit(&c->disconnects, 1, memory_order_relaxed);
        stp_warn("cluster: lost the NATS connection; serving local clients and reconnecting");
        break;
    case STP_NATS_CLOSED:
        break;
    }
    atomic_store_explicit(&c->state, (int)state, memory_order_relaxed);
}

static void on_error(void *ctx, const char *text)
{
    struct stp_cluster *c = ctx;
    /* Once per power of two: a slow-consumer storm is one line, not many. */
    uint64_t n = atomic_fetch_add_explicit(&c->nats_errors, 1, memory_order_relaxed) + 1;
    if ((n & (n - 1)) == 0)
        stp_warn("cluster: NATS reported: %s (%" PRIu64 " such errors so far)", text, n);
}

/* ---- publishing (cluster thread) ---- */

static const char *subject_z(struct stp_cluster *c)
{
    if (stp_buf_append(&c->subject, "", 1) < 0)
        return NULL;
    return (const char *)c->subject.data;
}

struct stp_wire_msg stp_cluster_wire_of(struct stp_cluster *c, const struct stp_msg *m)
{
    return (struct stp_wire_msg){.origin = c->origin,
                                 .seq = ++c->seq,
                                 .expires_ms = m->expires_ms,
                                 .persistent = m->persistent,
                                 .tail = m->tail,
                                 .tail_len = m->tail_len};
}

static void publish(struct stp_cluster *c, const struct stp_msg *m)
{
    stp_buf_reset(&c->subject);
    stp_buf_reset(&c->payload);
    struct stp_wire_msg wm = stp_cluster_wire_of(c, m);
    const char *subject = NULL;
    if (stp_subject_of(&c->subject, STP_CLUSTER_PREFIX, m->dest, m->dest_len) == 0)
        subject = subject_z(c);
    if (!subject || stp_wire_encode(&c->payload, &wm) < 0 ||
        c->api->publish(c->nats, subject, NULL, NULL, c->payload.data, c->payload.len) < 0) {
        atomic_fetch_add_explicit(&c->publish_dropped, 1, memory_order_relaxed);
        return;
    }
    atomic_fetch_add_explicit(&c->published, 1, memory_order_relaxed);
}

/* ---- interest (cluster thread) ---- */

/* The NATS subjects that cover a topic name or pattern into c->subject, each
 * NUL-terminated; returns how many (0: none, logged). A pattern whose first
 * `#` word comes after words W (which may be `*`) matches only topics that
 * are W or start with W: both W's subject and W.> are asked for (or every
 * topic, `>`, when `#` is the first word); the owner's pattern trie does the
 * exact matching. */
static unsigned subjects_of(struct stp_cluster *c, const char *name, size_t len)
{
    stp_buf_reset(&c->subject);
    size_t words;
    if (!stp_topic_is_pattern(name, len, &words)) {
        if (stp_subject_of(&c->subject, STP_CLUSTER_PREFIX, name, len) < 0)
            return 0;
        return subject_z(c) ? 1 : 0;
    }
    const size_t pfx = strlen("/topic/");
    size_t cut = len; /* where the first `#` word starts (len: none) */
    for (size_t at = pfx; at <= len;) {
        const char *dot = memchr(name + at, '.', len - at);
        size_t end = dot ? (size_t)(dot - name) : len;
        if (end - at == 1 && name[at] == '#') {
            cut = at;
            break;
        }
        at = end + 1;
    }
    bool exact;
    if (cut == len) {
        if (stp_subject_of_pattern(&c->subject, STP_CLUSTER_PREFIX, name, len, &exact) < 0)
            return 0;
        return subject_z(c) ? 1 : 0;
    }
    if (cut == pfx) {
        stp_buf_append_str(&c->subject, STP_CLUSTER_PREFIX ".t.>");
        return subject_z(c) ? 1 : 0;
    }
    /* W is name[0, cut - 1): without the '.' before the `#`. Its subject is
     * made twice (appending a copy of the buffer to itself could read
     * freed memory when the append grows it). */
    if (stp_subject_of_pattern(&c->subject, STP_CLUSTER_PREFIX, name, cut - 1, &exact) < 0 ||
        !subject_z(c))
        return 0;
    if (stp_subject_of_pattern(&c->subject, STP_CLUSTER_PREFIX, name, cut - 1, &exact) < 0 ||
        stp_buf_append_str(&c->subject, ".>") < 0 || !subject_z(c))
        return 0;
    return 2;
}

static void subscribe(struct stp_cluster *c, struct stp_cluster_sub *s)
{
    unsigned n = subjects_of(c, s->name, s->len);
    const char *subject = (const char *)c->subject.data;
    for (unsigned i = 0; i < n; i++) {
        if (c->api->subscribe(c->nats, subject, &s->subs[s->nsubs]) == 0)
            s->nsubs++;
        else
            stp_error("cluster: could not subscribe to %s in NATS: %s misses remote messages",
                      subject, s->name);
        subject += strlen(subject) + 1;
    }
    if (n == 0)
        stp_error("cluster: %s has no NATS subject; it gets no remote messages", s->name);
    atomic_fetch_add_explicit(&c->subscriptions, s->nsubs, memory_order_relaxed);
}

static void sub_free(struct stp_cluster *c, struct stp_cluster_sub *s)
{
    for (unsigned i = 0; i < s->nsubs; i++)
        c->api->unsubscribe(c->nats, s->subs[i]);
    atomic_fetch_sub_explicit(&c->subscriptions, s->nsubs, memory_order_relaxed);
    free(s->name);
    free(s);
}

static void interest(struct stp_cluster *c, char *name, int delta)
{
    size_t len = strlen(name);
    struct stp_cluster_sub *s = stp_map_get(&c->subs, name, len);
    if (!s && delta > 0) {
        s = calloc(1, sizeof(*s));
        if (!s || stp_map_put(&c->subs, name, len, s) < 0) {
            stp_error("cluster: out of memory: %s gets no remote messages", name);
            free(s);
            free(name);
            return;
        }
        s->name = name;
        s->len = len;
        name = NULL;
        subscribe(c, s);
    }
    free(name);
    if (!s)
        return;
    s->count += delta > 0 ? 1 : -1;
    if (s->count <= 0) {
        stp_map_del(&c->subs, s->name, s->len);
        sub_free(c, s);
    }
}

void stp_cluster_handle(void *ctx, unsigned from, const void *p)
{
    struct stp_cluster *c = ctx;
    struct stp_post cmd;
    (void)from;
    memcpy(&cmd, p, sizeof(cmd));
    switch (cmd.type) {
    case STP_WCMD_CLUSTER_PUBLISH:
        publish(c, cmd.u.route.msg);
        stp_msg_unref(&cmd.u.route.msg);
        break;
    case STP_WCMD_CLUSTER_INTEREST:
        interest(c, cmd.u.interest.topic, cmd.u.interest.delta);
        break;
    case STP_WCMD_CLUSTER_FLUSH: {
        /* The subscriptions before this command are in the connection; one
         * round trip makes sure the server has processed them. Not while
         * NATS is away (the answer comes at once: nothing to wait for). */
        if (!stp_cluster_degraded(c->b) && c->api->flush(c->nats, FLUSH_TIMEOUT_MS) < 0)
            stp_warn("cluster: NATS did not answer a flush within %d ms", FLUSH_TIMEOUT_MS);
        struct stp_post done = {.type = STP_WCMD_CLUSTER_FLUSHED, .worker = STP_NO_CONN};
        if (stp_mailbox_post(c->b->mb, c->self, from, &done) < 0)
            stp_error("cluster: out of memory: receipts of worker %u wait", from);
        break;
    }
    default:
        if (!stp_cluster_js_handle(c, from, &cmd))
            stp_post_release(&cmd);
        break;
    }
}

/* ---- owners' side (their threads) ---- */

void stp_cluster_publish(struct stp_worker *w, struct stp_msg *m)
{
    struct stp_cluster *c = w->broker->cluster;
    struct stp_post cmd = {
        .type = STP_WCMD_CLUSTER_PUBLISH, .worker = STP_NO_CONN, .u.route = {stp_msg_ref(m)}};
    stp_worker_post(w, c->self, &cmd);
}

void stp_cluster_interest(struct stp_worker *w, const char *name, size_t len, int delta)
{
    struct stp_cluster *c = w->broker->cluster;
    w->cluster_unflushed = true;
    char *copy = malloc(len + 1);
    if (!copy) {
        stp_error("cluster: out of memory: %.*s's interest not told to NATS", (int)len, name);
        return;
    }
    memcpy(copy, name, len);
    copy[len] = '\0';
    struct stp_post cmd = {
        .type = STP_WCMD_CLUSTER_INTEREST, .worker = STP_NO_CONN, .u.interest = {copy, delta}};
    stp_worker_post(w, c->self, &cmd);
}

bool stp_cluster_hold_fence(struct stp_worker *w, const struct stp_post *fence)
{
    if (!w->cluster_unflushed && w->nheld_fences == 0)
        return false;
    if (STP_ARRAY_RESERVE(w->held_fences, w->cap_held_fences, w->nheld_fences + 1) < 0)
        return false; /* out of memory: answered now, a weaker receipt */
    w->held_fences[w->nheld_fences++] = *fence;
    if (w->cluster_unflushed) {
        w->cluster_unflushed = false;
        w->cluster_flushes++;
        struct stp_post flush = {.type = STP_WCMD_CLUSTER_FLUSH, .worker = STP_NO_CONN};
        stp_worker_post(w, w->broker->cluster->self, &flush);
    }
    return true;
}

void stp_cluster_flushed(struct stp_worker *w)
{
    if (w->cluster_flushes == 0 || --w->cluster_flushes > 0)
        return; /* a later flush covers the fences held since */
    size_t n = w->nheld_fences;
    w->nheld_fences = 0;
    for (size_t i = 0; i < n; i++)
        stp_worker_answer_fence(w, &w->held_fences[i]);
}

/* ---- the thread, start and stop (main thread) ---- */

static void on_unblocked(void *ctx)
{
    (void)ctx; /* FLUSHED answers wait in its overflow at worst; nothing to resume */
}

static void on_stop(uv_async_t *a)
{
    struct stp_cluster *c = a->data;
    stp_mailbox_detach(c->b->mb, c->self);
    uv_close((uv_handle_t *)a, NULL);
}

static void cluster_main(void *arg)
{
    struct stp_cluster *c = arg;
    if (stp_mailbox_attach(c->b->mb, c->self, &c->loop, stp_cluster_handle, on_unblocked, c) < 0)
        stp_error("cluster: could not attach the cluster thread's mailbox");
    uv_run(&c->loop, UV_RUN_DEFAULT);
}

static int connect_nats(struct stp_cluster *c)
{
    const struct stp_config *cfg = c->b->cfg;
    struct stp_nats_hooks hooks = {
        .ctx = c, .on_msg = stp_cluster_on_msg, .on_state = on_state, .on_error = on_error};
    char err[256], name[96];
    snprintf(name, sizeof(name), "stampede %s", cfg->node_name);
    if (c->api->open(&c->nats, (const char *const *)cfg->cluster_urls, cfg->ncluster_urls, name,
                     cfg->cluster_tls_ca, &hooks, err, sizeof(err)) < 0) {
        stp_error("--cluster: %s", err);
        return -1;
    }
    if (atomic_load_explicit(&c->state, memory_order_relaxed) == 0)
        stp_warn("cluster: NATS is not reachable yet; serving local clients and retrying");
    return 0;
}

int stp_cluster_start(struct stp_broker *b)
{
    struct stp_cluster *c = calloc(1, sizeof(*c));
    if (!c)
        return STP_ENOMEM;
    c->b = b;
    c->self = b->nworkers;
    c->ingress = b->nworkers + 1;
    if (getrandom(&c->origin, sizeof(c->origin), 0) != (ssize_t)sizeof(c->origin))
        c->origin = uv_hrtime() ^ ((uint64_t)getpid() << 32);
    b->cluster = c;
    if (!(c->api = load_module()) || stp_cluster_in_init(&c->in, b->cfg) < 0)
        return -1;
    if (uv_loop_init(&c->loop) != 0)
        return -1;
    if (uv_async_init(&c->loop, &c->stop_async, on_stop) != 0) {
        uv_loop_close(&c->loop);
        return -1;
    }
    c->loop_ready = true;
    c->stop_async.data = c;
    if (connect_nats(c) < 0)
        return -1;
    /* JetStream's answers to this node (cluster queues) come here. */
    c->inbox_len = (size_t)snprintf(c->inbox, sizeof(c->inbox), "_STP.%016" PRIx64, c->origin);
    char inbox_all[48];
    snprintf(inbox_all, sizeof(inbox_all), "%s.>", c->inbox);
    if (c->api->subscribe(c->nats, inbox_all, &c->inbox_sub) < 0)
        stp_error("cluster: could not subscribe to this node's inbox: queues across nodes wait");
    if (uv_thread_create(&c->thread, cluster_main, c) != 0) {
        stp_error("cluster: could not start the cluster thread");
        c->api->close(c->nats);
        c->nats = NULL;
        return -1;
    }
    stp_info("cluster: node %s joins through %zu NATS URL%s", b->cfg->node_name,
             b->cfg->ncluster_urls, b->cfg->ncluster_urls == 1 ? "" : "s");
    return 0;
}

void stp_cluster_closing(struct stp_broker *b)
{
    if (b->cluster)
        atomic_store_explicit(&b->cluster->closing, true, memory_order_relaxed);
}

void stp_cluster_stop(struct stp_broker *b)
{
    struct stp_cluster *c = b->cluster;
    if (!c)
        return;
    atomic_store_explicit(&c->closing, true, memory_order_relaxed);
    if (c->nats) {
        uv_async_send(&c->stop_async);
        uv_thread_join(&c->thread);
        for (size_t i = 0; i < c->subs.cap; i++)
            if (c->subs.slots[i].hash)
                sub_free(c, c->subs.slots[i].value);
        if (c->inbox_sub)
            c->api->unsubscribe(c->nats, c->inbox_sub);
        c->api->close(c->nats); /* no hook runs after this */
    } else if (c->loop_ready) {
        uv_close((uv_handle_t *)&c->stop_async, NULL); /* the thread never ran */
    }
    stp_map_free(&c->subs);
    if (c->loop_ready) {
        uv_run(&c->loop, UV_RUN_DEFAULT);
        uv_loop_close(&c->loop);
    }
    stp_cluster_in_free(&c->in);
    stp_buf_free(&c->subject);
    stp_buf_free(&c->payload);
    stp_buf_free(&c->js_reply);
    stp_buf_free(&c->js_body);
    free(c);
    b->cluster = NULL;
}

/* ---- /healthz and /metrics ---- */

bool stp_cluster_degraded(const struct stp_broker *b)
{
    const struct stp_cluster *c = b->cluster;
    if (!c)
        return false;
    int s = atomic_load_explicit(&c->state, memory_order_relaxed);
    return s != STP_NATS_CONNECTED && s != STP_NATS_RECONNECTED;
}

static int metric(struct stp_buf *o, const char *name, const char *type, const char *help,
                  uint64_t v)
{
    char line[512];
    int n = snprintf(line, sizeof(line), "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help,
                     name, type, name, v);
    return n > 0 && (size_t)n < sizeof(line) ? stp_buf_append(o, line, (size_t)n) : -1;
}

#define LOAD(field) atomic_load_explicit(&c->field, memory_order_relaxed)

int stp_cluster_metrics(const struct stp_broker *b, struct stp_buf *o)
{
    struct stp_cluster *c = b->cluster;
    if (!c)
        return 0;
    struct stp_nats_counts n = {0};
    if (c->nats)
        c->api->counts(c->nats, &n);
    int rc = stp_buf_append_str(o, "# HELP stampede_cluster_node This node's name in the "
                                   "cluster.\n# TYPE stampede_cluster_node gauge\n"
                                   "stampede_cluster_node{node=\"");
    rc |= stp_buf_append_str(o, b->cfg->node_name); /* [A-Za-z0-9_.-] only: no escaping */
    rc |= stp_buf_append_str(o, "\"} 1\n");
    rc |= metric(o, "stampede_cluster_connected", "gauge", "1 while connected to NATS.",
                 !stp_cluster_degraded(b));
    rc |= metric(o, "stampede_cluster_disconnects_total", "counter",
                 "Times the NATS connection was lost.", LOAD(disconnects));
    rc |= metric(o, "stampede_cluster_reconnects_total", "counter",
                 "Times the NATS connection was made again.", n.reconnects);
    rc |= metric(o, "stampede_cluster_subscriptions", "gauge",
                 "NATS subscriptions for this node's local interest.", LOAD(subscriptions));
    rc |= metric(o, "stampede_cluster_messages_out_total", "counter",
                 "Topic messages published to the other nodes.", LOAD(published));
    rc |= metric(o, "stampede_cluster_messages_out_dropped_total", "counter",
                 "Topic messages not published (NATS away and its buffer full).",
                 LOAD(publish_dropped));
    rc |= metric(o, "stampede_cluster_messages_in_total", "counter",
                 "Messages from other nodes routed to local subscribers.", LOAD(delivered_in));
    rc |= metric(o, "stampede_cluster_duplicates_total", "counter",
                 "Second copies NATS delivered for overlapping subscriptions, dropped.",
                 LOAD(duplicates));
    rc |= metric(o, "stampede_cluster_messages_rejected_total", "counter",
                 "Messages from NATS that were not a valid Stampede message, dropped.",
                 LOAD(rejected));
    rc |= metric(o, "stampede_cluster_nats_errors_total", "counter",
                 "Asynchronous NATS errors (e.g. slow consumer: messages NATS dropped).",
                 LOAD(nats_errors));
    rc |= metric(o, "stampede_cluster_queue_messages_out_total", "counter",
                 "Queue messages this node stored in JetStream.", LOAD(cq_stored));
    rc |= metric(o, "stampede_cluster_queue_messages_refused_total", "counter",
                 "Queue messages JetStream did not store (full queue, NATS away): their "
                 "publishers got ERROR.",
                 LOAD(cq_refused));
    rc |= metric(o, "stampede_cluster_queue_messages_in_total", "counter",
                 "Queue messages JetStream leased to this node's consumers.", LOAD(cq_leased));
    rc |= metric(o, "stampede_cluster_bytes_in_total", "counter", "Bytes received from NATS.",
                 n.in_bytes);
    rc |= metric(o, "stampede_cluster_bytes_out_total", "counter", "Bytes sent to NATS.",
                 n.out_bytes);
    return rc ? -1 : 0;
}

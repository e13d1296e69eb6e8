/* broker_harness.c - see broker_harness.h. */
#include "broker_harness.h"

#include "broker/session.h"
#include "stampede/config.h"
#include "stampede/error.h"
#include "stampede/mailbox.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct stp_config cfg;
static struct stp_broker broker;
static struct stp_worker workers[TH_MAX_WORKERS];
static unsigned nworkers;
static struct th_conn conns[TH_MAX_CONNS];
static unsigned nconns;

/* --- the memory stream --- */

static struct th_conn *find(const struct stp_conn *c)
{
    for (unsigned i = 0; i < nconns; i++)
        if (conns[i].c == c)
            return &conns[i];
    return NULL;
}

static void mem_alloc(struct stp_conn *c, uv_buf_t *buf)
{
    (void)c;
    *buf = uv_buf_init(NULL, 0); /* never read: bytes come through th_send */
}

static void mem_on_read(struct stp_conn *c, size_t n)
{
    (void)c;
    (void)n;
}

/* What stream_tcp.c does, with the bytes appended to `out` instead of
 * handed to uv_write; the write completes when the harness says so. */
static int mem_flush(struct stp_conn *c)
{
    struct th_conn *t = find(c);
    size_t n;
    int rc = stp_conn_build_iov(c, &n);
    if (rc < 0)
        return rc;
    stp_conn_writing(c);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(stp_buf_append(&t->out, c->iov[i].base, c->iov[i].len), 0);
    c->fill = !c->fill;
    c->writing = true;
    t->writes++;
    return 0;
}

static void mem_written(struct stp_conn *c)
{
    stp_outq_reset(&c->out[!c->fill]);
}

static size_t mem_pending(const struct stp_conn *c)
{
    (void)c;
    return 0;
}

/* Called from the connection's last close callback: its memory goes next. */
static void mem_free(struct stp_conn *c)
{
    struct th_conn *t = find(c);
    if (t)
        t->c = NULL;
}

static const struct stp_stream_ops mem_stream = {
    .name = "memory",
    .alloc = mem_alloc,
    .on_read = mem_on_read,
    .flush = mem_flush,
    .written = mem_written,
    .pending = mem_pending,
    .free = mem_free,
};

/* --- the ops table: the session's, teardown recorded --- */

static struct stp_conn_ops ops;

static void th_on_teardown(struct stp_conn *c)
{
    struct th_conn *t = find(c);
    if (t)
        t->torn_down = true;
    stp_session_ops.teardown(c);
}

/* --- set-up --- */

void th_setup(unsigned n, const char *const *flags)
{
    char *argv[64] = {"stampede"};
    int argc = 1;
    for (; flags && flags[argc - 1]; argc++) {
        cr_assert_lt(argc, 63);
        argv[argc] = (char *)flags[argc - 1];
    }
    char *envp[] = {NULL};
    cr_assert_eq(stp_config_parse(&cfg, argc, argv, envp), STP_CONFIG_RUN, "flags refused");
    cr_assert(n >= 1 && n <= TH_MAX_WORKERS);
    nworkers = n;
    nconns = 0;
    memset(conns, 0, sizeof(conns));
    memset(workers, 0, sizeof(workers));
    cfg.workers = n;
    /* The real preparation: users and ACL files, TLS and WebSocket settings. */
    cr_assert_eq(stp_broker_prepare(&broker, &cfg), 0, "stp_broker_prepare failed");
    broker.workers = workers;
    cr_assert_eq(stp_mailboxes_init(&broker.mb, n, 1024, sizeof(struct stp_post)), 0);
    ops = stp_session_ops;
    ops.teardown = th_on_teardown;
    for (unsigned i = 0; i < n; i++) {
        struct stp_worker *w = &workers[i];
        w->id = i;
        w->broker_workers = n;
        w->broker = &broker;
        w->mb = broker.mb;
        w->cfg = &cfg;
        stp_recover_hand_over(&broker, w); /* --data-dir: its journal and messages */
        cr_assert_eq(stp_worker_init(w), 0);
        w->net.ops = &ops;
    }
}

void th_teardown(void)
{
    for (unsigned i = 0; i < nworkers; i++)
        stp_worker_close(&workers[i]);
    for (unsigned i = 0; i < nworkers; i++)
        cr_assert_eq(uv_run(&workers[i].loop, UV_RUN_DEFAULT), 0);
    for (unsigned i = 0; i < nworkers; i++)
        stp_worker_fini(&workers[i]);
    stp_mailboxes_drain(broker.mb, stp_post_drop, NULL);
    stp_mailboxes_free(broker.mb);
    stp_broker_release(&broker);
    for (unsigned i = 0; i < nconns; i++) {
        cr_assert_null(conns[i].c, "connection %u not freed", i);
        stp_buf_free(&conns[i].out);
        stp_parser_free(&conns[i].parser);
    }
    stp_config_free(&cfg);
}

struct stp_worker *th_worker(unsigned i)
{
    return &workers[i];
}

const char *th_owned_by(unsigned owner, const char *prefix, unsigned slot)
{
    static char names[8][64];
    cr_assert_lt(slot, 8);
    for (int i = 0; i < 1000; i++) {
        snprintf(names[slot], sizeof(names[slot]), "%s%d", prefix, i);
        if (stp_owner_of(&workers[0], names[slot], strlen(names[slot])) == owner)
            return names[slot];
    }
    cr_assert_fail("no name owned by worker %u", owner);
    return NULL;
}

struct stp_broker *th_broker(void)
{
    return &broker;
}

/* --- connections --- */

struct th_conn *th_open(unsigned worker)
{
    cr_assert_lt(nconns, TH_MAX_CONNS);
    cr_assert_lt(worker, nworkers);
    struct th_conn *t = &conns[nconns++];
    char peer[32];
    snprintf(peer, sizeof(peer), "memory:%u", nconns);
    struct stp_limits lim = {64u << 20, 10000, 1u << 20};
    cr_assert_eq(stp_parser_init(&t->parser, &lim), 0);
    t->parser.version = STP_V12;
    t->worker = worker;
    t->c = stp_conn_open_detached(&workers[worker].net, 0, &mem_stream, peer);
    cr_assert_not_null(t->c);
    return t;
}

struct th_conn *th_connect(unsigned worker)
{
    struct th_conn *t = th_open(worker);
    th_send(t, "CONNECT\naccept-version:1.2\nhost:test\n\n");
    th_pump();
    th_expect(t, STP_CMD_CONNECTED);
    return t;
}

void th_send_body(struct th_conn *t, const char *headers, const void *body, size_t len)
{
    cr_assert_not_null(t->c, "sending on a freed connection");
    struct stp_buf b = STP_BUF_INIT;
    cr_assert_eq(stp_buf_append(&b, headers, strlen(headers)), 0);
    cr_assert_eq(stp_buf_append(&b, body, len), 0);
    cr_assert_eq(stp_buf_append(&b, "", 1), 0);
    /* The raw framing's input is where a socket's plaintext goes. */
    t->c->framing->input(t->c, b.data, b.len);
    stp_buf_free(&b);
}

void th_send(struct th_conn *t, const char *frame)
{
    th_send_body(t, frame, "", 0);
}

void th_sendf(struct th_conn *t, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    cr_assert(n >= 0 && (size_t)n < sizeof(buf));
    th_send(t, buf);
}

/* --- running the loops --- */

void th_turn(unsigned i)
{
    uv_run(&workers[i].loop, UV_RUN_NOWAIT);
}

static bool complete_writes(void)
{
    bool any = false;
    for (unsigned i = 0; i < nconns; i++) {
        struct th_conn *t = &conns[i];
        if (t->c && t->c->writing && !t->hold_writes) {
            stp_conn_write_done(t->c, 0);
            any = true;
        }
    }
    return any;
}

static size_t output_total(void)
{
    size_t n = 0;
    for (unsigned i = 0; i < nconns; i++)
        n += conns[i].out.len;
    return n;
}

static bool mailboxes_empty(void)
{
    for (unsigned i = 0; i < nworkers; i++)
        if (stp_mailbox_depth(broker.mb, i) > 0)
            return false;
    return true;
}

void th_pump(void)
{
    unsigned quiet = 0;
    for (unsigned round = 0; round < 10000 && quiet < 3; round++) {
        size_t before = output_total();
        for (unsigned i = 0; i < nworkers; i++)
            th_turn(i);
        bool moved = complete_writes();
        for (unsigned i = 0; i < nworkers; i++)
            moved |= workers[i].nqwork > 0; /* a queue's dispatch resumes next turn */
        if (moved || output_total() != before || !mailboxes_empty())
            quiet = 0;
        else
            quiet++;
    }
    cr_assert_eq(quiet, 3, "the workers never settled");
}

bool th_await(struct th_conn *t, unsigned timeout_ms)
{
    uint64_t end = uv_hrtime() + (uint64_t)timeout_ms * 1000000;
    for (;;) {
        th_pump();
        if (th_pending_frames(t) > 0)
            return true;
        if (uv_hrtime() >= end)
            return false;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

void th_hold_writes(struct th_conn *t, bool hold)
{
    t->hold_writes = hold;
}

/* --- reading what the broker sent --- */

bool th_frame(struct th_conn *t, struct stp_frame *f)
{
    for (;;) {
        if (t->parsed == t->out.len)
            return false; /* nothing more (and out.data may be NULL) */
        ssize_t n = stp_parse(&t->parser, t->out.data + t->parsed, t->out.len - t->parsed, f);
        cr_assert_geq(n, 0, "the broker sent a malformed frame: %s",
                      t->parser.err_text ? t->parser.err_text : "?");
        if (n == 0)
            return false;
        t->parsed += (size_t)n;
        if (f->cmd != STP_CMD_HEARTBEAT)
            return true;
    }
}

size_t th_pending_frames(struct th_conn *t)
{
    if (t->parsed == t->out.len)
        return 0;
    /* Parse a copy, so nothing is consumed. */
    struct stp_parser p;
    struct stp_limits lim = {64u << 20, 10000, 1u << 20};
    cr_assert_eq(stp_parser_init(&p, &lim), 0);
    p.version = STP_V12;
    struct stp_buf copy = STP_BUF_INIT;
    cr_assert_eq(stp_buf_append(&copy, t->out.data + t->parsed, t->out.len - t->parsed), 0);
    size_t off = 0, frames = 0;
    struct stp_frame f;
    for (;;) {
        ssize_t n = stp_parse(&p, copy.data + off, copy.len - off, &f);
        if (n <= 0)
            break;
        off += (size_t)n;
        frames += f.cmd != STP_CMD_HEARTBEAT;
    }
    stp_buf_free(&copy);
    stp_parser_free(&p);
    return frames;
}

const char *th_header(const struct stp_frame *f, const char *name)
{
    static char value[1024];
    const struct stp_slice *s = stp_frame_header(f, name);
    if (!s)
        return NULL;
    cr_assert_lt(s->len, sizeof(value));
    memcpy(value, s->p, s->len);
    value[s->len] = '\0';
    return value;
}

const char *th_body(const struct stp_frame *f)
{
    static char body[65536];
    cr_assert_lt(f->body.len, sizeof(body));
    memcpy(body, f->body.p, f->body.len);
    body[f->body.len] = '\0';
    return body;
}

struct stp_frame th_expect(struct th_conn *t, enum stp_cmd cmd)
{
    struct stp_frame f;
    cr_assert(th_frame(t, &f), "expected %s, got nothing", stp_cmd_name(cmd));
    if (f.cmd != cmd && f.cmd == STP_CMD_ERROR)
        cr_assert_fail("expected %s, got ERROR: %s", stp_cmd_name(cmd), th_header(&f, "message"));
    cr_assert_eq(f.cmd, cmd, "expected %s, got %s", stp_cmd_name(cmd), stp_cmd_name(f.cmd));
    return f;
}

void th_expect_none(struct th_conn *t)
{
    struct stp_frame f;
    if (th_frame(t, &f))
        cr_assert_fail("expected no frame, got %s", stp_cmd_name(f.cmd));
}

/*
 * fuzz_session.c - libFuzzer target for the broker as a whole: sequences of
 * STOMP frames from up to three clients against a real in-process broker
 * (src/broker, src/net, src/stomp, src/core: the same code as `stampede`)
 * with one worker and small limits, so that throttling, the memory budget,
 * slow consumers, transactions and acks all run.
 *
 * Each input starts its own broker (stp_broker_prepare/stp_broker_start with
 * `--workers 1 --listen stomp://127.0.0.1:0` and one of four sets of limits),
 * talks to it over loopback sockets, then stops it (stp_broker_stop), so no
 * state carries over from one input to the next and a crash replays from its
 * input alone (timing aside: the worker is a thread of its own).
 *
 * Input: byte 0 picks the limits, the rest is a list of operations, each an
 * opcode byte and a few argument bytes (see the OP_ enum). Frames are staged
 * per connection and written with FLUSH (everything, one send) or PARTIAL
 * (a prefix cut anywhere, the rest stays staged), so the broker sees several
 * frames in one read, a frame cut in two, or a partial frame pending in the
 * connection's own read buffer. A receipt the harness asks for ("r<n>") is
 * waited for after a flush; ACK/NACK use the ack ids and message ids of
 * MESSAGE frames the broker actually sent (to this client or another one).
 * Waiting is bounded: 60 ms of waiting per input in all.
 *
 * Checked on every input, besides ASan/UBSan inside the broker:
 * - every byte the broker sends parses as STOMP frames of the connection's
 *   version (so no header can smuggle a frame into another client);
 * - after the broker stops, no message bytes are alive (stp_msg_bytes_in_use)
 *   and no file descriptor is left open.
 */
#include "broker/broker.h"
#include "broker/worker.h"
#include "stampede/buf.h"
#include "stampede/config.h"
#include "stampede/log.h"
#include "stampede/msg.h"
#include "stampede/stomp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_session: invariant failed: %s (line %d)\n", #c, __LINE__);       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define NCONF 4
#define NCONN 3
#define MAX_OPS 128
#define MAX_ACKS 64
#define MAX_RECEIPTS 32
#define ID_MAX 80
#define WAIT_BUDGET_NS (60 * 1000000ull) /* all the waiting of one input */
#define FLUSH_WAIT_NS (20 * 1000000ull)  /* longest wait for the receipts of one flush */
#define QUIET_NS (300 * 1000ull)         /* no byte for this long: the broker is done */

/* ---- the broker's configurations ---- */

#define BASE "stampede", "--workers", "1", "--listen", "stomp://127.0.0.1:0"
/* Per-client limits of issue 9, and anything after them in a list: used when
 * this build of the broker knows them. */
#define CLIENT_LIMITS                                                                              \
    "--max-subscriptions", "6", "--max-transactions", "3", "--max-transaction-frames", "12",       \
        "--max-transaction-bytes", "8KiB", "--max-unacked", "8", "--max-destinations", "12",       \
        "--max-destination-length", "64"

static const char *const conf_args[NCONF][40] = {
    /* tight queues: throttling */
    {BASE, "--queue-max-bytes", "4KiB", "--queue-max-messages", "4", "--memory-budget", "256KiB",
     "--max-pending-output", "16KiB", CLIENT_LIMITS, NULL},
    /* everything tiny, frame limits too */
    {BASE, "--queue-max-bytes", "1KiB", "--queue-max-messages", "2", "--memory-budget", "8KiB",
     "--max-pending-output", "2KiB", "--max-frame-size", "16KiB", "--max-headers", "16",
     "--max-header-length", "512", CLIENT_LIMITS, "--max-connections-per-ip", "2", NULL},
    /* the memory budget, slow consumers, heart-beats */
    {BASE, "--queue-max-bytes", "64KiB", "--queue-max-messages", "64", "--memory-budget", "16KiB",
     "--max-pending-output", "4KiB", "--heartbeat-min", "1ms", NULL},
    /* roomier */
    {BASE, "--queue-max-bytes", "128KiB", "--queue-max-messages", "32", "--memory-budget", "1MiB",
     "--max-pending-output", "256KiB", NULL},
};

static struct stp_config configs[NCONF];

static int argc_of(const char *const *a)
{
    int n = 0;
    while (a[n])
        n++;
    return n;
}

static void parse_config(unsigned k)
{
    char *envp[] = {NULL};
    int argc = argc_of(conf_args[k]);
    /* Without the per-client limits when this broker has no such flags. */
    for (int pass = 0; pass < 2; pass++) {
        char *argv[40];
        int n = 0;
        for (int i = 0; i < argc; i++) {
            if (pass == 1 && strcmp(conf_args[k][i], "--max-subscriptions") == 0)
                break;
            argv[n++] = (char *)conf_args[k][i];
        }
        argv[n] = NULL;
        if (stp_config_parse(&configs[k], n, argv, envp) == STP_CONFIG_RUN)
            return;
        stp_config_free(&configs[k]);
    }
    fprintf(stderr, "fuzz_session: configuration %u does not parse\n", k);
    abort();
}

/* ---- the input ---- */

struct in {
    const uint8_t *p;
    size_t n;
};

static uint8_t u8(struct in *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

static size_t take(struct in *in, size_t want, const uint8_t **out)
{
    size_t n = want < in->n ? want : in->n;
    *out = in->p;
    in->p += n;
    in->n -= n;
    return n;
}

/* ---- clients ---- */

struct ack {
    unsigned conn;
    char ack[ID_MAX], mid[ID_MAX], sub[ID_MAX]; /* as sent, escaped for conn's version */
};

struct client {
    int fd;               /* -1: not connected */
    struct stp_buf stage; /* frames not released yet */
    struct stp_buf wq;    /* released, not yet accepted by the socket */
    struct stp_buf in;    /* received, not yet parsed */
    struct stp_parser parser;
    enum stp_version version;        /* from CONNECTED; 1.2 rules before it */
    bool stalled;                    /* its receipts did not come in time (paused) */
    unsigned receipts[MAX_RECEIPTS]; /* outstanding receipts, by number */
    unsigned nreceipts;
};

static struct {
    struct stp_broker broker;
    uint16_t port;
    struct client cl[NCONN];
    unsigned cur;
    struct ack acks[MAX_ACKS];
    unsigned nacks;
    unsigned receipt_seq;
    uint64_t wait_left_ns;
} F;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void put(struct stp_buf *b, const char *s)
{
    CHECK(stp_buf_append_str(b, s) == 0);
}

static void putn(struct stp_buf *b, const void *p, size_t n)
{
    CHECK(stp_buf_append(b, p, n) == 0);
}

static void client_reset(struct client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    stp_buf_reset(&c->stage);
    stp_buf_reset(&c->wq);
    stp_buf_reset(&c->in);
    stp_parser_reset(&c->parser);
    c->parser.version = STP_V12;
    c->version = STP_V12;
    c->stalled = false;
    c->nreceipts = 0;
}

static void client_open(struct client *c)
{
    client_reset(c);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    CHECK(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(F.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* Non-blocking, so that libFuzzer's SIGALRM cannot interrupt it. */
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    if (rc < 0 && (errno == EINPROGRESS || errno == EINTR)) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        while ((rc = poll(&p, 1, 5000)) < 0 && errno == EINTR)
            ;
        int err = 0;
        socklen_t len = sizeof(err);
        if (rc == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
            rc = 0;
        } else {
            errno = rc == 0 ? ETIMEDOUT : err ? err : errno;
            rc = -1;
        }
    }
    if (rc < 0) {
        fprintf(stderr, "fuzz_session: connect: %s\n", strerror(errno));
        abort();
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->fd = fd;
}

/* The client whose turn it is, connected on demand. */
static struct client *cur_client(void)
{
    struct client *c = &F.cl[F.cur];
    if (c->fd < 0)
        client_open(c);
    return c;
}

/* ---- what the broker sends ---- */

static void copy_id(char *dst, const struct stp_slice *s)
{
    size_t n = s && s->len < ID_MAX ? s->len : 0;
    if (n)
        memcpy(dst, s->p, n);
    dst[n] = '\0';
}

static void drop_receipt(struct client *c, const struct stp_slice *id)
{
    if (!id || id->len < 2 || id->p[0] != 'r')
        return;
    unsigned n = 0;
    for (size_t i = 1; i < id->len; i++) {
        if (id->p[i] < '0' || id->p[i] > '9' || n > 100000000)
            return;
        n = n * 10 + (unsigned)(id->p[i] - '0');
    }
    for (unsigned i = 0; i < c->nreceipts; i++) {
        if (c->receipts[i] == n) {
            c->receipts[i] = c->receipts[--c->nreceipts];
            return;
        }
    }
}

static bool trace; /* FUZZ_SESSION_TRACE=1: what each client writes and gets */

static void trace_bytes(const char *what, unsigned idx, const char *p, size_t n)
{
    fprintf(stderr, "[%u %s %zu] ", idx, what, n);
    for (size_t i = 0; i < n && i < 300; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '\n')
            fputs("\\n", stderr);
        else if (ch == '\\')
            fputs("\\\\", stderr);
        else if (ch < 0x20 || ch >= 0x7f)
            fprintf(stderr, "\\x%02x", ch);
        else
            fputc(ch, stderr);
    }
    fputs(n > 300 ? "...\n" : "\n", stderr);
}

static void on_frame(unsigned idx, const struct stp_frame *f)
{
    struct client *c = &F.cl[idx];
    if (trace && f->cmd != STP_CMD_HEARTBEAT) {
        fprintf(stderr, "[%u <- %s]", idx, stp_cmd_name(f->cmd));
        for (size_t i = 0; i < f->nheaders; i++)
            fprintf(stderr, " %.*s:%.*s", (int)f->headers[i].name.len, f->headers[i].name.p,
                    (int)(f->headers[i].value.len < 60 ? f->headers[i].value.len : 60),
                    f->headers[i].value.p);
        fprintf(stderr, " (body %zu)\n", f->body.len);
    }
    switch (f->cmd) {
    case STP_CMD_CONNECTED: {
        const struct stp_slice *v = stp_frame_header(f, "version");
        c->version = !v                        ? STP_V10
                     : stp_slice_eq(*v, "1.1") ? STP_V11
                     : stp_slice_eq(*v, "1.2") ? STP_V12
                                               : STP_V10;
        c->parser.version = c->version;
        break;
    }
    case STP_CMD_MESSAGE: {
        struct ack *a = &F.acks[F.nacks++ % MAX_ACKS];
        a->conn = idx;
        copy_id(a->ack, stp_frame_header(f, "ack"));
        copy_id(a->mid, stp_frame_header(f, "message-id"));
        copy_id(a->sub, stp_frame_header(f, "subscription"));
        break;
    }
    case STP_CMD_RECEIPT:
        drop_receipt(c, stp_frame_header(f, "receipt-id"));
        break;
    case STP_CMD_ERROR:
        c->nreceipts = 0; /* the broker closes after an ERROR */
        break;
    case STP_CMD_HEARTBEAT:
        break;
    default:
        fprintf(stderr, "fuzz_session: the broker sent a %s frame\n", stp_cmd_name(f->cmd));
        abort();
    }
}

/* Every byte the broker writes must parse as frames of the client's version. */
static void parse_input(unsigned idx)
{
    struct client *c = &F.cl[idx];
    size_t off = 0;
    for (;;) {
        struct stp_frame f;
        ssize_t n = stp_parse(&c->parser, c->in.data + off, c->in.len - off, &f);
        if (n == 0)
            break;
        if (n < 0) {
            fprintf(stderr,
                    "fuzz_session: client %u (STOMP %d) cannot parse the broker's output:"
                    " %s (at byte %zu of the frame)\n",
                    idx, (int)c->version, c->parser.err_text ? c->parser.err_text : "?",
                    c->parser.err_offset);
            abort();
        }
        off += (size_t)n;
        on_frame(idx, &f);
    }
    stp_buf_consume(&c->in, off);
}

static void client_gone(struct client *c)
{
    /* Keep the buffers; the next operation on this client reconnects. */
    close(c->fd);
    c->fd = -1;
}

static bool do_read(unsigned idx)
{
    struct client *c = &F.cl[idx];
    bool got = false;
    for (;;) {
        CHECK(stp_buf_reserve(&c->in, 65536) == 0);
        ssize_t n = recv(c->fd, c->in.data + c->in.len, 65536, 0);
        if (n > 0) {
            c->in.len += (size_t)n;
            got = true;
            c->stalled = false;
            parse_input(idx);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return got;
        if (n < 0 && errno == EINTR)
            continue;
        if (trace)
            fprintf(stderr, "[%u closed by the broker]\n", idx);
        client_gone(c); /* EOF or reset */
        return true;
    }
}

static void do_write(struct client *c)
{
    while (c->wq.len) {
        ssize_t n = send(c->fd, c->wq.data, c->wq.len, MSG_NOSIGNAL);
        if (n > 0) {
            stp_buf_consume(&c->wq, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        stp_buf_reset(&c->wq); /* the broker closed: it reads no more */
        return;
    }
}

/* Read and write until the receipts the broker owes are in (or it is
 * stalled), then until nothing has arrived for `quiet` ns; at most max_ns,
 * taken from the input's waiting budget. */
static void pump(uint64_t max_ns, uint64_t quiet)
{
    if (max_ns > F.wait_left_ns)
        max_ns = F.wait_left_ns;
    uint64_t start = now_ns(), last = start;
    for (;;) {
        struct pollfd pfd[NCONN];
        unsigned who[NCONN], k = 0;
        bool owed = false, unwritten = false;
        for (unsigned i = 0; i < NCONN; i++) {
            struct client *c = &F.cl[i];
            if (c->fd < 0)
                continue;
            owed |= c->nreceipts > 0 && !c->stalled;
            unwritten |= c->wq.len > 0;
            pfd[k] = (struct pollfd){.fd = c->fd, .events = POLLIN | (c->wq.len ? POLLOUT : 0)};
            who[k++] = i;
        }
        uint64_t t = now_ns();
        if (k == 0 || t - start >= max_ns) {
            for (unsigned i = 0; i < NCONN; i++)
                F.cl[i].stalled |= F.cl[i].nreceipts > 0;
            break;
        }
        if (!owed && !unwritten && t - last >= quiet)
            break;
        uint64_t left = max_ns - (t - start);
        uint64_t wait = owed || unwritten ? left : quiet - (t - last);
        if (wait > left)
            wait = left;
        struct timespec ts = {(time_t)(wait / 1000000000ull), (long)(wait % 1000000000ull)};
        int n = ppoll(pfd, k, &ts, NULL);
        if (n <= 0)
            continue;
        for (unsigned j = 0; j < k; j++) {
            struct client *c = &F.cl[who[j]];
            if (c->fd != pfd[j].fd)
                continue;
            if (pfd[j].revents & POLLOUT)
                do_write(c);
            if (pfd[j].revents & (POLLIN | POLLHUP | POLLERR)) {
                if (do_read(who[j]))
                    last = now_ns();
            }
        }
    }
    uint64_t spent = now_ns() - start;
    F.wait_left_ns = spent < F.wait_left_ns ? F.wait_left_ns - spent : 0;
}

/* Release the first n staged bytes of the current client in one send. */
static void release(struct client *c, size_t n)
{
    if (c->fd < 0 || n == 0)
        return;
    if (trace)
        trace_bytes("->", (unsigned)(c - F.cl), c->stage.data, n);
    putn(&c->wq, c->stage.data, n);
    stp_buf_consume(&c->stage, n);
    do_write(c);
}

/* ---- building frames ---- */

static const char *const dests[] = {
    "/queue/a",        "/queue/b",
    "/topic/a",        "/topic/b",
    "/temp-queue/a",   "/reply-queue/x",
    "/queue/r",        "/topic/r",
    "/queue/",         "/topic/",
    "/nowhere",        "",
    "/queue/a\\cb",    "/topic/\\n",
    "/queue/\xff\xfe", "/queue/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q",
};
static const char *const sub_ids[] = {"0", "1", "s", "0\\c1"};
static const char *const txns[] = {"t", "u", "", "v\\n"};
static const char *const hnames[] = {
    "x",          "reply-to",     "dedup-id", "persistent",  "content-type", "receipt",
    "message-id", "subscription", "ack",      "redelivered", "transaction",  "destination",
    "x\\cy",      "\\n",          "a b",      "expires",
};
static const char *const hvalues[] = {
    "1",
    "",
    "text/plain",
    "true",
    "a\\nb",
    "a\\cb",
    "\\\\",
    "\xe2\x82\xac",
    "a:b",
    "\\t",
    "0",
    "99999999999999999999",
    "/temp-queue/t",
    "x\\",
    "\xff",
    "-1",
};

static void header(struct stp_buf *b, const char *name, const char *value)
{
    put(b, name);
    put(b, ":");
    put(b, value);
    put(b, "\n");
}

/* "receipt:r<n>\n", remembered as owed by the current client. */
static void want_receipt(struct client *c, struct stp_buf *b)
{
    unsigned n = F.receipt_seq++;
    char t[32];
    snprintf(t, sizeof(t), "r%u", n);
    header(b, "receipt", t);
    if (c->nreceipts < MAX_RECEIPTS)
        c->receipts[c->nreceipts++] = n;
}

/* Up to 31 bytes of the input as a header value: raw, or escaped the 1.2 way. */
static void raw_value(struct in *in, struct stp_buf *b, uint8_t sel)
{
    const uint8_t *p;
    size_t n = take(in, sel & 31, &p);
    if (!(sel & 32)) {
        putn(b, p, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        switch (p[i]) {
        case '\n':
            put(b, "\\n");
            break;
        case '\r':
            put(b, "\\r");
            break;
        case ':':
            put(b, "\\c");
            break;
        case '\\':
            put(b, "\\\\");
            break;
        default:
            putn(b, &p[i], 1);
        }
    }
}

static void user_headers(struct in *in, struct stp_buf *b, unsigned count)
{
    for (unsigned i = 0; i < count; i++) {
        uint8_t nm = u8(in), val = u8(in);
        put(b, hnames[nm % 16]);
        if (nm & 0x80) { /* a distinct name */
            char t[8];
            snprintf(t, sizeof(t), "%u", (nm >> 4) & 7);
            put(b, t);
        }
        put(b, ":");
        if (val & 0x80)
            raw_value(in, b, val);
        else
            put(b, hvalues[val % 16]);
        put(b, "\n");
    }
}

static const char *dest_of(uint8_t sel)
{
    return dests[sel % 16];
}

static void op_connect(struct client *c, struct in *in)
{
    static const char *const versions[] = {"1.0",     "1.1", "1.2", "1.0,1.1,1.2",
                                           "1.1,1.2", NULL,  "2.0", "1.2,1.0"};
    uint8_t fl = u8(in);
    struct stp_buf *b = &c->stage;
    put(b, fl & 8 ? "STOMP\n" : "CONNECT\n");
    if (versions[fl & 7])
        header(b, "accept-version", versions[fl & 7]);
    if (fl & 16) {
        header(b, "host", "localhost");
        header(b, "client-id", "c"); /* ActiveMQ's durable subscriptions */
    }
    if (fl & 32) {
        /* With --heartbeat-min 1ms (limits 2), "5,5" makes the broker send
         * heart-beats and close a connection silent for 10 ms. */
        static const char *const hb[] = {"0,0", "1000,1000", "5,5",  "0,5",
                                         "5,0", "1,2,3",     "-1,5", "10,"};
        header(b, "heart-beat", hb[u8(in) & 7]);
    }
    if (fl & 64)
        want_receipt(c, b);
    if (fl & 128) {
        header(b, "login", "guest");
        header(b, "passcode", "guest");
    }
    put(b, "\n");
    putn(b, "", 1);
}

static void op_send(struct client *c, struct in *in)
{
    uint8_t d = u8(in), body = u8(in), fl = u8(in);
    struct stp_buf *b = &c->stage;
    put(b, "SEND\n");
    if (d == 0xef) {
        /* no destination */
    } else if (d < 0xf0) {
        header(b, "destination", dest_of(d));
    } else {
        put(b, "destination:/queue/");
        raw_value(in, b, d & 15);
        put(b, "\n");
    }
    if (fl & 1)
        want_receipt(c, b);
    if (fl & 2)
        header(b, "transaction", txns[u8(in) & 3]);
    if (fl & 16)
        header(b, "content-type", "text/plain");
    user_headers(in, b, (fl >> 5) & 3);
    if (fl & 128)
        header(b, "destination", dest_of(d >> 4));
    /* The body: empty, from the input, or a pattern of 200 B to 65 KB. */
    size_t len = 0;
    const uint8_t *p = NULL;
    unsigned cls = body >> 6;
    if (cls == 1)
        len = take(in, body & 63, &p);
    else if (cls == 2)
        len = 200 + (size_t)(body & 63) * 20;
    else if (cls == 3)
        len = 2000 + (size_t)(body & 63) * 1000;
    if (fl & 4) {
        char t[32];
        size_t cl = len;
        if (fl & 8) /* wrong on purpose */
            cl = cls == 1 ? len + (body & 3) - 2 : len / 2;
        snprintf(t, sizeof(t), "%zu", cl);
        header(b, "content-length", t);
    }
    put(b, "\n");
    if (p) {
        putn(b, p, len);
    } else {
        CHECK(stp_buf_reserve(b, len) == 0);
        for (size_t i = 0; i < len; i++)
            b->data[b->len + i] = (char)('a' + i % 26);
        b->len += len;
    }
    putn(b, "", 1);
}

static void op_subscribe(struct client *c, struct in *in)
{
    static const char *const modes[] = {
        NULL,    "auto", "client", "client-individual", "foo", "client", "client-individual",
        "client"};
    static const char *const prefetch[] = {NULL, "0",  "1", "2",
                                           "3",  "10", "x", "99999999999999999999"};
    uint8_t d = u8(in), m = u8(in), fl = u8(in);
    struct stp_buf *b = &c->stage;
    put(b, "SUBSCRIBE\n");
    if (!(fl & 16))
        header(b, "destination", dest_of(d));
    if (!(fl & 2))
        header(b, "id", sub_ids[m & 3]);
    if (fl & 4)
        header(b, "id", sub_ids[(m + 1) & 3]);
    if (modes[(m >> 2) & 7])
        header(b, "ack", modes[(m >> 2) & 7]);
    if (prefetch[m >> 5])
        header(b, "prefetch-count", prefetch[m >> 5]);
    if (fl & 8)
        header(b, "selector", "a = 1");
    if (fl & 32) /* durable (RabbitMQ's dialect is reachable through user headers) */
        header(b, "activemq.subscriptionName", sub_ids[m & 3]);
    if (fl & 1)
        want_receipt(c, b);
    user_headers(in, b, (fl >> 6) & 3);
    put(b, "\n");
    putn(b, "", 1);
}

static void op_unsubscribe(struct client *c, struct in *in)
{
    uint8_t fl = u8(in);
    struct stp_buf *b = &c->stage;
    put(b, "UNSUBSCRIBE\n");
    if (fl & 4)
        header(b, "destination", dest_of(fl >> 3));
    else if (!(fl & 128))
        header(b, "id", sub_ids[fl & 3]);
    if (fl & 32)
        header(b, "durable", "true");
    if (fl & 64)
        want_receipt(c, b);
    put(b, "\n");
    putn(b, "", 1);
}

static void op_ack(struct client *c, struct in *in, bool nack)
{
    uint8_t sel = u8(in), fl = u8(in);
    struct stp_buf *b = &c->stage;
    const struct ack *a = NULL;
    unsigned have = F.nacks < MAX_ACKS ? F.nacks : MAX_ACKS;
    if (have) {
        if (fl & 64) { /* the sel-th most recent one of this client */
            unsigned skip = sel % have;
            for (unsigned i = 0; i < have && !a; i++) {
                const struct ack *x = &F.acks[(F.nacks - 1 - i) % MAX_ACKS];
                if (x->conn == F.cur && skip-- == 0)
                    a = x;
            }
        } else {
            a = &F.acks[(F.nacks - 1 - sel % have) % MAX_ACKS];
        }
    }
    put(b, nack ? "NACK\n" : "ACK\n");
    unsigned style = (fl >> 4) & 3;
    if (style == 0)
        style = c->version >= STP_V12 ? 1 : 2;
    if (!a || style == 3) {
        header(b, "id", "zzz");
    } else if (style == 1) {
        header(b, "id", a->ack[0] ? a->ack : a->mid);
    } else {
        header(b, "message-id", a->mid);
        header(b, "subscription", a->sub);
    }
    if (fl & 2)
        header(b, "transaction", txns[(fl >> 2) & 3]);
    if (fl & 1)
        want_receipt(c, b);
    put(b, "\n");
    putn(b, "", 1);
}

static void op_txn(struct client *c, struct in *in, const char *cmd)
{
    uint8_t fl = u8(in);
    struct stp_buf *b = &c->stage;
    put(b, cmd);
    put(b, "\n");
    if (!(fl & 4))
        header(b, "transaction", txns[fl & 3]);
    if (fl & 8)
        want_receipt(c, b);
    put(b, "\n");
    putn(b, "", 1);
}

static void op_disconnect(struct client *c, struct in *in)
{
    uint8_t fl = u8(in);
    put(&c->stage, "DISCONNECT\n");
    if (fl & 1)
        want_receipt(c, &c->stage);
    put(&c->stage, "\n");
    putn(&c->stage, "", 1);
}

enum {
    OP_CONNECT,
    OP_SEND,
    OP_SEND2, /* SEND is the most useful operation: twice the odds */
    OP_SUBSCRIBE,
    OP_UNSUBSCRIBE,
    OP_ACK,
    OP_NACK,
    OP_BEGIN,
    OP_COMMIT,
    OP_ABORT,
    OP_DISCONNECT,
    OP_RAW,     /* up to 63 bytes of the input as they are */
    OP_EOL,     /* a heart-beat: \n or \r\n */
    OP_FLUSH,   /* write everything staged in one send, wait for its receipts */
    OP_PARTIAL, /* write a prefix of the staged bytes, cut anywhere */
    OP_SYNC,    /* write everything of every client, wait until 1-16 ms without a byte */
    OP_USE,     /* switch to client 0, 1 or 2 */
    OP_CLOSE,   /* close the client's socket (reset when bit 0 is set) */
    OP__COUNT
};

static void run_op(struct in *in)
{
    uint8_t op = u8(in) % OP__COUNT;
    if (op == OP_USE) {
        F.cur = u8(in) % NCONN;
        return;
    }
    if (op == OP_SYNC) {
        uint64_t quiet = (1 + (u8(in) & 15)) * 1000000ull;
        for (unsigned i = 0; i < NCONN; i++)
            release(&F.cl[i], F.cl[i].stage.len);
        pump(quiet + 15 * 1000000ull, quiet);
        return;
    }
    if (op == OP_CLOSE) {
        struct client *c = &F.cl[F.cur];
        uint8_t fl = u8(in);
        if (c->fd >= 0 && (fl & 1)) {
            struct linger lg = {1, 0};
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        client_reset(c);
        return;
    }
    struct client *c = cur_client();
    switch (op) {
    case OP_CONNECT:
        op_connect(c, in);
        break;
    case OP_SEND:
    case OP_SEND2:
        op_send(c, in);
        break;
    case OP_SUBSCRIBE:
        op_subscribe(c, in);
        break;
    case OP_UNSUBSCRIBE:
        op_unsubscribe(c, in);
        break;
    case OP_ACK:
        op_ack(c, in, false);
        break;
    case OP_NACK:
        op_ack(c, in, true);
        break;
    case OP_BEGIN:
        op_txn(c, in, "BEGIN");
        break;
    case OP_COMMIT:
        op_txn(c, in, "COMMIT");
        break;
    case OP_ABORT:
        op_txn(c, in, "ABORT");
        break;
    case OP_DISCONNECT:
        op_disconnect(c, in);
        break;
    case OP_RAW: {
        const uint8_t *p;
        size_t n = take(in, u8(in) & 63, &p);
        putn(&c->stage, p, n);
        break;
    }
    case OP_EOL:
        put(&c->stage, u8(in) & 1 ? "\r\n" : "\n");
        break;
    case OP_FLUSH:
        release(c, c->stage.len);
        pump(FLUSH_WAIT_NS, QUIET_NS);
        break;
    case OP_PARTIAL: {
        size_t cut = ((size_t)u8(in) << 8 | u8(in)) % (c->stage.len + 1);
        release(c, cut);
        pump(FLUSH_WAIT_NS, QUIET_NS);
        break;
    }
    }
}

/* ---- one input ---- */

static int fd_baseline = -1;

static int lowest_free_fd(void)
{
    int fd = fcntl(0, F_DUPFD_CLOEXEC, 0);
    CHECK(fd >= 0);
    close(fd);
    return fd;
}

/* Stopping the broker the normal way would cost each input 20-30 ms:
 * stp_broker_stop polls for the drain every 10 ms and the worker's drain
 * timer ticks every 20 ms. Linked with -Wl,--wrap=uv_timer_start and
 * -Wl,--wrap=nanosleep, the broker's calls come here: the worker's drain and
 * memory budget timers (only) tick every millisecond, and while the harness
 * stops the broker its 10 ms polls take 0.1 ms (so it gives up waiting for
 * the drain after 40 ms instead of 4 s). The stop sequence itself is
 * stp_broker_stop's, called once per broker as main.c does. */
int __real_uv_timer_start(uv_timer_t *h, uv_timer_cb cb, uint64_t timeout, uint64_t repeat);
int __wrap_uv_timer_start(uv_timer_t *h, uv_timer_cb cb, uint64_t timeout, uint64_t repeat);
int __real_nanosleep(const struct timespec *req, struct timespec *rem);
int __wrap_nanosleep(const struct timespec *req, struct timespec *rem);

static atomic_bool stopping; /* the main thread is in stp_broker_stop */

int __wrap_uv_timer_start(uv_timer_t *h, uv_timer_cb cb, uint64_t timeout, uint64_t repeat)
{
    struct stp_worker *w = F.broker.workers;
    if (w && (h == &w->drain_timer || h == &w->budget_timer)) {
        timeout = timeout ? 1 : 0;
        repeat = repeat ? 1 : 0;
    }
    return __real_uv_timer_start(h, cb, timeout, repeat);
}

int __wrap_nanosleep(const struct timespec *req, struct timespec *rem)
{
    if (atomic_load(&stopping) && req->tv_sec == 0 && req->tv_nsec == 10 * 1000000L) {
        struct timespec t = {0, 100 * 1000L};
        return __real_nanosleep(&t, rem);
    }
    return __real_nanosleep(req, rem);
}

static void broker_stop(void)
{
    atomic_store(&stopping, true);
    stp_broker_stop(&F.broker);
    atomic_store(&stopping, false);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    signal(SIGPIPE, SIG_IGN);
    const char *t = getenv("FUZZ_SESSION_TRACE");
    trace = t && *t == '1';
    stp_log_set_level(trace ? STP_LOG_DEBUG : STP_LOG_ERROR);
    for (unsigned k = 0; k < NCONF; k++)
        parse_config(k);
    for (unsigned i = 0; i < NCONN; i++) {
        F.cl[i].fd = -1;
        struct stp_limits lim = {64u << 20, 1u << 20, 16u << 20};
        CHECK(stp_parser_init(&F.cl[i].parser, &lim) == 0);
        /* Room up front: the harness's own buffers growing during an input
         * would count as that input's leak, which libFuzzer then looks for
         * by running the input again. */
        CHECK(stp_buf_reserve(&F.cl[i].stage, 1u << 20) == 0);
        CHECK(stp_buf_reserve(&F.cl[i].wq, 1u << 20) == 0);
        CHECK(stp_buf_reserve(&F.cl[i].in, 1u << 20) == 0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 64 * 1024)
        return -1;
    struct in in = {data + 1, size - 1};
    const struct stp_config *cfg = &configs[data[0] % NCONF];
    if (stp_broker_prepare(&F.broker, cfg) < 0 || stp_broker_start(&F.broker) < 0) {
        fprintf(stderr, "fuzz_session: the broker did not start\n");
        abort();
    }
    F.port = F.broker.ports[0];
    F.cur = 0;
    F.nacks = 0;
    F.receipt_seq = 0;
    F.wait_left_ns = WAIT_BUDGET_NS;
    for (unsigned i = 0; i < NCONN; i++)
        client_reset(&F.cl[i]);

    for (unsigned n = 0; in.n > 0 && n < MAX_OPS; n++)
        run_op(&in);
    /* Write what is left, give the broker a moment, hang up. */
    for (unsigned i = 0; i < NCONN; i++)
        release(&F.cl[i], F.cl[i].stage.len);
    pump(FLUSH_WAIT_NS, QUIET_NS);
    for (unsigned i = 0; i < NCONN; i++)
        client_reset(&F.cl[i]);

    broker_stop();
    CHECK(stp_msg_bytes_in_use() == 0);
    int fd = lowest_free_fd();
    if (fd_baseline < 0)
        fd_baseline = fd;
    CHECK(fd <= fd_baseline + 4);
    return 0;
}

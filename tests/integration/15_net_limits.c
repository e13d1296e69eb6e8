/*
 * 15_net_limits.c - the network-side bounds of issue 9 against a real
 * broker: --max-connections and --max-connections-per-ip (refused at accept
 * with a STOMP ERROR on stomp://, a log line naming the address and a
 * /metrics counter; places are given back, never leaked), every output
 * counting toward --max-pending-output (a client that floods RECEIPT
 * requests or WebSocket pings and never reads is disconnected as a slow
 * consumer with bounded broker memory), the 64 KiB bound on a WebSocket
 * message before CONNECTED (close 1009), and /metrics label values that
 * stay valid UTF-8 and escaped whatever bytes a queue name holds. Each test
 * also checks that a second, well-behaved client keeps working. The TLS
 * cases drive the project's TLS engine in client mode in the test process
 * itself (not the harness's relay, which reads for the test), so the client
 * really does not read; certificates come from 13_tls_harness.c.
 */
#include "harness.h"

#include "stampede/tls.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

TestSuite(net_limits, .init = h_init, .fini = h_fini, .timeout = 60);

enum { OP_TEXT = 1, OP_CONT = 0, OP_PING = 9 };

/* ---- helpers ---- */

/* TCP connect to 127.0.0.1:port from source address `src` (another loopback
 * address, e.g. 127.0.0.2); asserts. */
static struct h_conn *dial_from(const char *src, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in me = {.sin_family = AF_INET};
    cr_assert_eq(inet_pton(AF_INET, src, &me.sin_addr), 1);
    cr_assert(bind(fd, (struct sockaddr *)&me, sizeof me) == 0, "bind %s: %s", src,
              strerror(errno));
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(connect(fd, (struct sockaddr *)&to, sizeof to) == 0, "connect from %s: %s", src,
              strerror(errno));
    return h_conn_wrap_fd(fd);
}

static struct h_conn *connect_12(struct h_conn *c)
{
    struct h_frame *f = h_stomp_connect(c, "1.2", NULL, NULL, NULL, false);
    cr_assert(f && strcmp(f->cmd, "CONNECTED") == 0, "expected CONNECTED, got %s", h_show(f));
    return c;
}

/* The over-limit answer on a stomp:// listener: this ERROR, then EOF. */
static void expect_refused(struct h_conn *c)
{
    struct h_frame *f = h_read(c, H_WAIT);
    cr_assert(f && strcmp(f->cmd, "ERROR") == 0, "over the limit: expected ERROR, got %s",
              h_show(f));
    cr_assert_str_eq(h_hdr(f, "message"), "too many connections");
    cr_assert_str_eq(f->body, "The broker refuses connections over its limit.");
    cr_assert(h_wait_closed(c, 3000, NULL), "refused connection not closed");
}

/* A message from a to b on a fresh topic: both still work. */
static void exchange(struct h_conn *a, struct h_conn *b, const char *tag)
{
    const char *dest = h_dest("topic", tag);
    h_subscribe(b, dest, "s-check", NULL, "");
    h_publish(a, dest, tag, true);
    h_expect_msg(b, tag);
    h_unsubscribe(b, "s-check");
}

static bool log_has(struct h_broker *b, const char *text, int ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)ms;
    do {
        if (strstr(h_broker_log(b), text))
            return true;
        h_sleep_ms(20);
    } while (h_now_ms() < deadline);
    return false;
}

/* GET /metrics; retried for 3 s while the broker refuses the connection
 * (a place may take a moment to come back). */
static const char *metrics(int port)
{
    uint64_t deadline = h_now_ms() + 3000;
    for (;;) {
        int st = 0;
        bool closed = false;
        const char *r = h_http_exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 34, 3000,
                                        &st, &closed);
        const char *body = strstr(r, "\r\n\r\n");
        if (st == 200 && body)
            return body + 4;
        cr_assert(h_now_ms() < deadline, "GET /metrics: %d %.200s", st, r);
        h_sleep_ms(50);
    }
}

/* Dial + CONNECT, retried for 3 s while refused: asserts CONNECTED. */
static struct h_conn *client_retry(struct h_broker *b)
{
    uint64_t deadline = h_now_ms() + 3000;
    for (;;) {
        struct h_conn *c = h_dial(b);
        struct h_frame *f = h_stomp_connect(c, "1.2", NULL, NULL, NULL, false);
        if (f && strcmp(f->cmd, "CONNECTED") == 0)
            return c;
        h_close(c);
        cr_assert(h_now_ms() < deadline, "no place came back: %s", h_show(f));
        h_sleep_ms(10);
    }
}

/* Poll /metrics until series reaches at least want (3 s); its last value. */
static double metric_at_least(int port, const char *series, double want)
{
    uint64_t deadline = h_now_ms() + 3000;
    for (;;) {
        double v = h_metric(metrics(port), series);
        if (v >= want || h_now_ms() >= deadline)
            return v;
        h_sleep_ms(50);
    }
}

static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = atol(line + 6);
    fclose(f);
    return kib;
}

#define REFUSED_TOTAL "stampede_connections_refused_total{limit=\"max-connections\"}"
#define REFUSED_PER_IP "stampede_connections_refused_total{limit=\"max-connections-per-ip\"}"
#define SLOW "stampede_slow_consumer_disconnects_total"

/* ---- --max-connections ---- */

Test(net_limits, max_connections_counts_every_worker_and_gives_places_back)
{
    struct h_broker *b = H_START_WS(2, "--max-connections", "3");
    int ws = h_listener_port(b, "ws");
    struct h_conn *held[3];
    for (int i = 0; i < 3; i++)
        held[i] = h_client(b, "1.2");
    /* The fourth, on either worker and either listener, is refused. */
    expect_refused(h_dial(b));
    int st = -1;
    bool closed = false;
    const char *r =
        h_http_exchange(ws, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 34, 3000, &st, &closed);
    cr_assert(st == 0 && closed && r[0] == '\0', "ws:// over the limit answered %d: %s", st, r);
    cr_assert(
        log_has(b, "refused a connection from 127.0.0.1: --max-connections (3) reached", 3000),
        "no refusal line in the log:\n%s", h_broker_log(b));
    /* The clients inside the limit still work. */
    exchange(held[0], held[1], "inside");
    /* One leaves: its place is free again once its socket is closed. */
    h_disconnect(held[2]);
    h_close(held[2]);
    cr_assert_geq(metric_at_least(ws, REFUSED_TOTAL, 2), 2);
    struct h_conn *late = client_retry(b);
    exchange(late, held[0], "late");
    h_broker_stop_ok(b);
}

Test(net_limits, churn_never_leaks_a_place)
{
    struct h_broker *b = H_START_W(2, "--max-connections", "4", "--max-connections-per-ip", "4");
    /* Every way of leaving: DISCONNECT, close, reset, refusal, an ERROR. */
    for (int round = 0; round < 40; round++) {
        struct h_conn *c[4];
        for (int i = 0; i < 4; i++)
            c[i] = client_retry(b); /* the last round's places come back */
        expect_refused(h_dial(b));
        h_disconnect(c[0]);
        h_close(c[0]);
        h_close(c[1]);
        h_reset(c[2]);
        h_sendz(c[3], "BOGUS\n\n");
        h_expect_error(c[3], NULL);
        h_close(c[3]);
    }
    /* All four places are there again. */
    struct h_conn *c[4];
    for (int i = 0; i < 4; i++)
        c[i] = client_retry(b);
    exchange(c[0], c[3], "after-churn");
    cr_assert(h_broker_alive(b));
    h_broker_stop_ok(b);
}

/* ---- --max-connections-per-ip ---- */

Test(net_limits, per_ip_limit_refuses_one_address_only)
{
    struct h_broker *b = H_START_WS(2, "--max-connections-per-ip", "2");
    int ws = h_listener_port(b, "ws");
    struct h_conn *a1 = h_client(b, "1.2");
    struct h_conn *a2 = h_client(b, "1.2");
    expect_refused(h_dial(b));
    cr_assert(log_has(b,
                      "refused a connection from 127.0.0.1: --max-connections-per-ip (2) reached",
                      3000),
              "no refusal line:\n%s", h_broker_log(b));
    /* Another address is not held back by 127.0.0.1's connections. (Two
     * addresses share a counter of the seeded table 1 time in 4096: then the
     * other address's first connection is refused too, and the next one is
     * tried.) */
    int refused = 1;
    struct h_conn *o1 = NULL;
    const char *other = NULL;
    for (int k = 2; k < 10 && !o1; k++) {
        other = h_fmt("127.0.0.%d", k);
        struct h_conn *x = dial_from(other, b->port);
        struct h_frame *f = h_read(x, 300);
        if (!f) {
            o1 = connect_12(x);
            break;
        }
        cr_assert_str_eq(h_hdr(f, "message"), "too many connections");
        refused++;
        h_close(x);
    }
    cr_assert(o1, "no other address got in");
    struct h_conn *o2 = connect_12(dial_from(other, b->port));
    expect_refused(dial_from(other, b->port));
    refused++;
    exchange(a1, o1, "per-ip-1");
    exchange(o2, a2, "per-ip-2");
    /* /metrics (from 127.0.0.1 once a place is free) counts the refusals. */
    h_close(a1);
    h_sleep_ms(100);
    cr_assert_eq(metric_at_least(ws, REFUSED_PER_IP, refused), refused);
    cr_assert_eq(h_metric(metrics(ws), REFUSED_TOTAL), 0);
    h_broker_stop_ok(b);
}

/* ---- --max-pending-output counts every output ---- */

/* SENDs to a topic nobody reads, each asking for a RECEIPT with a 1000-byte
 * id, from a client that never reads until it has sent 8 MB (more than the
 * kernel buffers hold): the RECEIPTs pile up in the broker until they pass
 * --max-pending-output; then it is a slow consumer. Read afterwards: the
 * RECEIPTs in order, then ERROR "slow consumer", then the close. */
Test(net_limits, receipt_flood_without_reading_is_a_slow_consumer)
{
    struct h_broker *b = H_START_WS(1, "--max-pending-output", "64KiB");
    int ws = h_listener_port(b, "ws");
    struct h_conn *good = h_client(b, "1.2");
    struct h_conn *good2 = h_client(b, "1.2");
    long rss0 = rss_kib(b->pid);
    struct h_conn *c = connect_12(h_dial_port(b->port, 4096));
    const char *dest = h_dest("topic", "nobody");
    char rid[1001];
    memset(rid, 'r', 1000);
    rid[1000] = '\0';
    enum { N = 8000 };
    static char batch[64 * 1100];
    size_t blen = 0;
    int sent = 0, rc = 0;
    for (int i = 0; i < N && rc == 0; i++) {
        blen += (size_t)snprintf(batch + blen, sizeof batch - blen,
                                 "SEND\ndestination:%s\nreceipt:%05d-%s\n\nx", dest, i, rid) +
                1;
        if (blen > sizeof batch - 1100 || i == N - 1) {
            rc = h_send_raw(c, batch, blen);
            blen = 0;
            sent = i + 1;
        }
    }
    long rss1 = rss_kib(b->pid);
    /* Now read: RECEIPTs in order up to the cut, then the ERROR. */
    int receipts = 0;
    struct h_frame *f;
    while ((f = h_read(c, H_WAIT)) && strcmp(f->cmd, "RECEIPT") == 0) {
        const char *id = h_hdr(f, "receipt-id");
        cr_assert(id && atoi(id) == receipts, "RECEIPT %s after %d", id, receipts);
        receipts++;
    }
    cr_assert(f && strcmp(f->cmd, "ERROR") == 0,
              "after %d RECEIPTs (of %d sent, send rc %d): %s, want ERROR", receipts, sent, rc,
              h_show(f));
    cr_assert_str_eq(h_hdr(f, "message"), "slow consumer");
    cr_assert(h_wait_closed(c, 3000, NULL), "not closed after the ERROR");
    cr_assert(receipts < N, "all %d RECEIPTs were written: the bound did not bite", receipts);
    cr_assert_eq(metric_at_least(ws, SLOW, 1), 1);
    cr_assert(log_has(b, "slow consumer", 1000));
    /* The broker held at most a few MB for it (not the 8 MB of RECEIPTs). */
    cr_assert(rss1 - rss0 < 6 * 1024, "broker RSS grew by %ld KiB", rss1 - rss0);
    exchange(good, good2, "after-receipts");
    h_broker_stop_ok(b);
}

/* WebSocket pings (125-byte payloads) from a client that never reads: the
 * pongs count, so it is disconnected; memory stays bounded. */
Test(net_limits, ping_flood_without_reading_is_a_slow_consumer)
{
    struct h_broker *b = H_START_WS(1, "--max-pending-output", "64KiB");
    int ws = h_listener_port(b, "ws");
    struct h_conn *good = h_client(b, "1.2");
    struct h_ws *good_ws = h_ws_client(ws, "1.2");
    long rss0 = rss_kib(b->pid);
    struct h_ws *w = h_ws_client(ws, "1.2");
    int one = 4096;
    setsockopt(w->raw->fd, SOL_SOCKET, SO_RCVBUF, &one, sizeof one);
    /* Masked pings with a zero mask key: 0x89 0xfd key(4) payload(125). */
    enum { PING = 131, PER = 500 };
    static uint8_t batch[PING * PER];
    for (int i = 0; i < PER; i++) {
        uint8_t *p = batch + i * PING;
        p[0] = 0x89, p[1] = 0x80 | 125;
        memset(p + 2, 0, 4);
        memset(p + 6, 'p', 125);
    }
    size_t total = 0;
    int rc = 0;
    uint64_t deadline = h_now_ms() + 20000;
    while (total < (size_t)64 << 20 && rc == 0 && h_now_ms() < deadline) {
        rc = h_send_raw(w->raw, batch, sizeof batch);
        total += sizeof batch;
    }
    long rss1 = rss_kib(b->pid);
    /* After the ERROR the broker discards input until the flush or its 2 s
     * linger ends, so the sender may well get rid of everything; but the
     * connection ends. */
    cr_assert(rc != 0 || h_ws_wait_eof(w, 10000),
              "64 MB of pings never read (%zu sent) and still connected", total);
    cr_assert_eq(metric_at_least(ws, SLOW, 1), 1);
    cr_assert(rss1 - rss0 < 16 * 1024, "broker RSS grew by %ld KiB", rss1 - rss0);
    /* The others still work, over TCP and WebSocket. */
    const char *dest = h_dest("topic", "after-pings");
    h_ws_subscribe(good_ws, dest, "s", NULL);
    h_publish(good, dest, "still-here", true);
    struct h_frame *m = h_ws_expect(good_ws, "MESSAGE", H_WAIT);
    cr_assert_str_eq(m->body, "still-here");
    h_broker_stop_ok(b);
}

/* A queue consumer that does not read is bounded by credit, not thrown out:
 * its deliveries do not count toward --max-pending-output. */
Test(net_limits, queue_deliveries_do_not_count)
{
    struct h_broker *b = H_START_WS(1, "--max-pending-output", "16KiB");
    int ws = h_listener_port(b, "ws");
    const char *q = h_dest("queue", "exempt");
    struct h_conn *cons = connect_12(h_dial_port(b->port, 4096));
    h_subscribe(cons, q, "s", NULL, "");
    struct h_conn *pub = h_client(b, "1.2");
    /* 8 MB (more than the kernel's socket buffers) toward a consumer that
     * reads nothing yet, within its credit of 2048 unwritten deliveries. */
    static char body[4097];
    memset(body, 'q', 4096);
    for (int i = 0; i < 2000; i++)
        h_publish(pub, q, body, i == 1999);
    h_sleep_ms(300);
    cr_assert_eq(h_metric(metrics(ws), SLOW), 0);
    for (int i = 0; i < 2000; i++) {
        struct h_frame *m = h_read(cons, H_WAIT);
        cr_assert(m && strcmp(m->cmd, "MESSAGE") == 0, "delivery %d: %s", i, h_show(m));
    }
    cr_assert_eq(h_metric(metrics(ws), SLOW), 0);
    h_broker_stop_ok(b);
}

/* ---- a WebSocket message before CONNECTED ---- */

Test(net_limits, ws_message_before_connect_is_limited_to_64k)
{
    struct h_broker *b = H_START_WS(2, "--max-frame-size", "1MiB");
    int ws = h_listener_port(b, "ws");
    static char big[200000];
    /* 64 KiB + 1 before CONNECT: 1009 from the frame header. */
    struct h_ws *w = h_ws_dial(ws);
    memset(big, '\n', sizeof big);
    h_ws_send_frame(w, OP_TEXT, true, big, 65537);
    int code = h_ws_expect_close(w, H_WAIT);
    cr_assert(code == 1009, "a 64 KiB + 1 message before CONNECT: close %d", code);
    cr_assert(h_ws_wait_eof(w, 3000));
    /* Fragments adding up past it: 1009 too. */
    w = h_ws_dial(ws);
    h_ws_send_frame(w, OP_TEXT, false, big, 40000);
    h_ws_send_frame_ex(w, OP_CONT, true, true, big, 40000);
    code = h_ws_expect_close(w, H_WAIT);
    cr_assert(code == 1009, "fragments past 64 KiB before CONNECT: close %d", code);
    /* Exactly 64 KiB holding the CONNECT: fine, and afterwards a 200 KB
     * message (under --max-frame-size) is fine too. */
    w = h_ws_dial(ws);
    const char *conn = "CONNECT\naccept-version:1.2\nhost:/\n\n";
    size_t cl = strlen(conn) + 1;
    memset(big, '\n', 65536);
    memcpy(big + 65536 - cl, conn, cl);
    h_ws_send_frame(w, OP_TEXT, true, big, 65536);
    h_ws_expect(w, "CONNECTED", H_WAIT);
    struct h_ws *sub = h_ws_client(ws, "1.2");
    const char *dest = h_dest("topic", "big-after-connect");
    h_ws_subscribe(sub, dest, "s", NULL);
    const char *head = h_fmt("SEND\ndestination:%s\n\n", dest);
    size_t hl = strlen(head);
    memcpy(big, head, hl);
    memset(big + hl, 'b', 150000);
    big[hl + 150000] = '\0';
    h_ws_send_frame(w, OP_TEXT, true, big, hl + 150001);
    struct h_frame *m = h_ws_expect(sub, "MESSAGE", H_WAIT);
    cr_assert_eq(m->body_len, 150000);
    cr_assert(w->close_code < 0, "closed after CONNECTED: %d", w->close_code);
    h_broker_stop_ok(b);
}

/* ---- /metrics label values ---- */

static bool utf8_ok(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        size_t len = c < 0x80                 ? 1
                     : c >= 0xc2 && c <= 0xdf ? 2
                     : c >= 0xe0 && c <= 0xef ? 3
                     : c >= 0xf0 && c <= 0xf4 ? 4
                                              : 0;
        if (len == 0 || i + len > n)
            return false;
        for (size_t k = 1; k < len; k++)
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
        if ((c == 0xe0 && p[i + 1] < 0xa0) || (c == 0xed && p[i + 1] > 0x9f) ||
            (c == 0xf0 && p[i + 1] < 0x90) || (c == 0xf4 && p[i + 1] > 0x8f))
            return false;
        i += len;
    }
    return true;
}

/* Every line is a comment or `name{label="value",...} number` with only
 * \\, \" and \n escapes in values. */
static void assert_scrapable(const char *text)
{
    cr_assert(utf8_ok((const unsigned char *)text, strlen(text)), "/metrics is not UTF-8");
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        cr_assert(end, "unterminated line");
        if (*line != '#') {
            const char *p = line;
            while (p < end && *p != '{' && *p != ' ')
                p++;
            if (*p == '{') {
                for (p++; p < end && *p != '}';) {
                    while (p < end && *p != '=')
                        p++;
                    cr_assert(p + 1 < end && p[1] == '"', "bad label in: %.*s", (int)(end - line),
                              line);
                    for (p += 2; p < end && *p != '"'; p++)
                        if (*p == '\\') {
                            cr_assert(p[1] == '\\' || p[1] == '"' || p[1] == 'n',
                                      "bad escape in: %.*s", (int)(end - line), line);
                            p++;
                        }
                    cr_assert(p < end, "unterminated value in: %.*s", (int)(end - line), line);
                    p++;
                    if (*p == ',')
                        p++;
                }
                cr_assert(p < end && *p == '}', "no '}' in: %.*s", (int)(end - line), line);
                p++;
            }
            cr_assert(*p == ' ', "no value in: %.*s", (int)(end - line), line);
            char *num_end;
            strtod(p + 1, &num_end);
            cr_assert(num_end == end, "bad number in: %.*s", (int)(end - line), line);
        }
        line = end + 1;
    }
}

/* Poll until `series` shows up (queue snapshots are published once a second). */
static const char *metrics_with(int port, const char *series)
{
    uint64_t deadline = h_now_ms() + 4000;
    for (;;) {
        const char *m = metrics(port);
        if (h_metric(m, series) >= 0 || h_now_ms() >= deadline)
            return m;
        h_sleep_ms(100);
    }
}

Test(net_limits, metrics_label_values_are_utf8_and_escaped)
{
    struct h_broker *b = H_START_WS0();
    int ws = h_listener_port(b, "ws");
    struct h_conn *c = h_client(b, "1.2");
    /* \xff, a quote, a backslash (escaped "\\\\" in 1.2) in one name. */
    h_sendz(c, "SEND\ndestination:/queue/m\xff\"q\\\\z\nreceipt:r1\n\nbody");
    h_expect_receipt(c, "r1");
    /* A 128-byte name: the snapshot keeps 127 bytes, cutting the final
     * two-byte character in half. */
    char name[160];
    strcpy(name, "/queue/");
    memset(name + 7, 'x', 119);
    strcpy(name + 126, "\xc3\xa9");
    h_sendf(c, "SEND\ndestination:%s\nreceipt:r2\n\nbody", name);
    h_expect_receipt(c, "r2");
    const char *want1 = "stampede_queue_messages{queue=\"/queue/m\xef\xbf\xbd\\\"q\\\\z\"}";
    name[126] = '\0';
    const char *want2 = h_fmt("stampede_queue_messages{queue=\"%s\"}", name);
    const char *m = metrics_with(ws, want1);
    m = metrics_with(ws, want2);
    cr_assert_eq(h_metric(m, want1), 1, "no %s in:\n%s", want1, m);
    cr_assert_eq(h_metric(m, want2), 1, "no %s in:\n%s", want2, m);
    assert_scrapable(m);
    /* A newline in a name (1.2 escape \n) cannot start a line of its own. */
    h_sendz(c, "SEND\ndestination:/queue/n\\nl 1\nreceipt:r3\n\nbody");
    struct h_frame *f = h_read(c, H_WAIT);
    cr_assert(f, "no answer to a destination with a newline");
    if (strcmp(f->cmd, "RECEIPT") == 0) {
        m = metrics_with(ws, "stampede_queue_messages{queue=\"/queue/n\\nl 1\"}");
        cr_assert_eq(h_metric(m, "stampede_queue_messages{queue=\"/queue/n\\nl 1\"}"), 1, "%s", m);
        assert_scrapable(m);
        struct h_conn *d = h_client(b, "1.2");
        exchange(c, d, "after-metrics");
    } else {
        cr_assert_str_eq(f->cmd, "ERROR"); /* refused outright is fine too */
        struct h_conn *d = h_client(b, "1.2"), *e = h_client(b, "1.2");
        exchange(d, e, "after-metrics");
    }
    h_broker_stop_ok(b);
}

/* ---- over TLS: records count, sealed queue deliveries do not ---- */

/* A TLS client in this process on a blocking socket: it reads only when told. */
struct tclient {
    int fd;
    struct stp_tls_config *cfg;
    struct stp_tls_rng *rng;
    struct stp_tls *t;
    char plain[1 << 16]; /* decrypted bytes not yet consumed */
    size_t plen;
    bool eof;
};

static bool tc_flush(struct tclient *tc)
{
    const char *p;
    size_t len;
    while (stp_tls_out_take(tc->t, &p, &len) == 0 && len > 0) {
        bool ok = true;
        while (ok && len > 0) {
            ssize_t n = send(tc->fd, p, len, MSG_NOSIGNAL);
            ok = n > 0;
            if (ok)
                p += n, len -= (size_t)n;
        }
        stp_tls_out_release(tc->t);
        if (!ok)
            return false;
    }
    return true;
}

/* Read and decrypt once (waits up to ms); false at EOF/reset or timeout. */
static bool tc_pump(struct tclient *tc, int ms)
{
    char buf[16384];
    struct pollfd pfd = {.fd = tc->fd, .events = POLLIN};
    if (tc->eof || poll(&pfd, 1, ms) <= 0)
        return false;
    ssize_t n = recv(tc->fd, buf, sizeof buf, 0);
    if (n <= 0) {
        tc->eof = true;
        return false;
    }
    if (stp_tls_feed(tc->t, buf, (size_t)n) < 0)
        tc->eof = true;
    tc_flush(tc);
    for (;;) {
        if (tc->plen == sizeof tc->plain) /* keep the last half: enough for a frame */
            memmove(tc->plain, tc->plain + sizeof tc->plain / 2, sizeof tc->plain / 2),
                tc->plen = sizeof tc->plain / 2;
        ssize_t r = stp_tls_read(tc->t, tc->plain + tc->plen, sizeof tc->plain - tc->plen);
        if (r <= 0)
            break;
        tc->plen += (size_t)r;
    }
    return true;
}

static struct tclient *tc_dial(int port, int rcvbuf)
{
    static struct tclient tcs[4];
    static int ntc;
    cr_assert(ntc < 4);
    struct tclient *tc = &tcs[ntc++];
    memset(tc, 0, sizeof *tc);
    tc->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(tc->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(connect(tc->fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(tc->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct stp_tls_client_opts co = {0};
    char err[256];
    cr_assert(stp_tls_client_config_new(&tc->cfg, &co, err, sizeof err) == 0, "%s", err);
    cr_assert(stp_tls_rng_new(&tc->rng) == 0 && stp_tls_new(&tc->t, tc->cfg, tc->rng) == 0);
    stp_tls_handshake(tc->t);
    uint64_t deadline = h_now_ms() + 5000;
    while (stp_tls_state(tc->t) == STP_TLS_HANDSHAKE && h_now_ms() < deadline) {
        cr_assert(tc_flush(tc));
        tc_pump(tc, 100);
    }
    cr_assert(stp_tls_state(tc->t) == STP_TLS_OPEN, "TLS handshake failed");
    return tc;
}

static bool tc_send(struct tclient *tc, const void *p, size_t n)
{
    struct iovec iov = {.iov_base = (void *)p, .iov_len = n};
    return stp_tls_write(tc->t, &iov, 1) == 0 && tc_flush(tc);
}

/* Wait (5 s) until the plaintext holds `text`. */
static bool tc_wait_for(struct tclient *tc, const char *text)
{
    uint64_t deadline = h_now_ms() + 5000;
    while (!memmem(tc->plain, tc->plen, text, strlen(text))) {
        if (h_now_ms() >= deadline || (!tc_pump(tc, 100) && tc->eof))
            return memmem(tc->plain, tc->plen, text, strlen(text)) != NULL;
    }
    return true;
}

static void tc_free(struct tclient *tc)
{
    stp_tls_free(&tc->t);
    stp_tls_rng_free(&tc->rng);
    stp_tls_config_unref(&tc->cfg);
    close(tc->fd);
}

static const char tc_connect_frame[] = "CONNECT\naccept-version:1.2\nhost:/\n\n";

/* RECEIPTs over TLS to a client that never reads: a slow consumer (the
 * records the engine holds count, as the queued frames did). */
Test(net_limits, tls_receipt_flood_without_reading_is_a_slow_consumer)
{
    struct h_broker *b = h_tls_broker("stomp+ssl://127.0.0.1:0", "srv_ec", 1,
                                      (const char *const[]){"--max-pending-output", "64KiB", NULL});
    int tls = h_broker_port_of(b, "stomp+ssl://");
    struct h_conn *good = h_client(b, "1.2"), *good2 = h_client(b, "1.2");
    struct tclient *tc = tc_dial(tls, 4096);
    cr_assert(tc_send(tc, tc_connect_frame, sizeof tc_connect_frame));
    cr_assert(tc_wait_for(tc, "CONNECTED"), "no CONNECTED over TLS");
    tc->plen = 0;
    const char *dest = h_dest("topic", "tls-nobody");
    static char batch[64 * 1100];
    char rid[1001];
    memset(rid, 'r', 1000);
    rid[1000] = '\0';
    size_t blen = 0;
    bool ok = true;
    for (int i = 0; i < 8000 && ok; i++) {
        blen += (size_t)snprintf(batch + blen, sizeof batch - blen,
                                 "SEND\ndestination:%s\nreceipt:%05d-%s\n\nx", dest, i, rid) +
                1;
        if (blen > sizeof batch - 1100) {
            ok = tc_send(tc, batch, blen);
            blen = 0;
        }
    }
    cr_assert(tc_wait_for(tc, "message:slow consumer"),
              "no ERROR slow consumer over TLS (send ok %d)", ok);
    cr_assert(log_has(b, "slow consumer", 1000));
    exchange(good, good2, "after-tls-receipts");
    tc_free(tc);
    h_broker_stop_ok(b);
}

/* A TLS queue consumer that does not read: its deliveries sealed into
 * records stay exempt, so a RECEIPT on top does not make it a slow consumer;
 * once it reads, it gets everything. */
Test(net_limits, tls_sealed_queue_deliveries_do_not_count)
{
    struct h_broker *b = h_tls_broker("stomp+ssl://127.0.0.1:0", "srv_ec", 1,
                                      (const char *const[]){"--max-pending-output", "16KiB", NULL});
    int tls = h_broker_port_of(b, "stomp+ssl://");
    const char *q = h_dest("queue", "tls-exempt");
    struct tclient *tc = tc_dial(tls, 4096);
    cr_assert(tc_send(tc, tc_connect_frame, sizeof tc_connect_frame));
    cr_assert(tc_wait_for(tc, "CONNECTED"));
    const char *sub = h_fmt("SUBSCRIBE\nid:s\ndestination:%s\nreceipt:sub\n\n", q);
    cr_assert(tc_send(tc, sub, strlen(sub) + 1));
    cr_assert(tc_wait_for(tc, "receipt-id:sub"));
    struct h_conn *pub = h_client(b, "1.2");
    static char body[4097];
    memset(body, 'q', 4096);
    for (int i = 0; i < 2000; i++)
        h_publish(pub, q, body, i == 1999);
    h_sleep_ms(300);
    /* A frame that is answered (not a queue delivery): judged now. */
    const char *again = "SUBSCRIBE\nid:t\ndestination:/topic/tls-other\nreceipt:late\n\n";
    cr_assert(tc_send(tc, again, strlen(again) + 1));
    h_sleep_ms(300);
    cr_assert_null(strstr(h_broker_log(b), "slow consumer"), "a queue consumer was thrown out:\n%s",
                   h_broker_log(b));
    /* Now read: all 2000 deliveries, then the late RECEIPT. */
    size_t msgs = 0;
    uint64_t deadline = h_now_ms() + 20000;
    while (h_now_ms() < deadline) {
        if (!tc_pump(tc, 500) && tc->eof)
            break;
        char *p;
        while ((p = memmem(tc->plain, tc->plen, "MESSAGE\n", 8)) != NULL) {
            msgs++;
            size_t skip = (size_t)(p - tc->plain) + 8;
            memmove(tc->plain, tc->plain + skip, tc->plen - skip);
            tc->plen -= skip;
        }
        if (msgs == 2000 && memmem(tc->plain, tc->plen, "receipt-id:late", 15))
            break;
    }
    cr_assert_eq(msgs, 2000, "deliveries read: %zu (eof %d)", msgs, tc->eof);
    cr_assert(memmem(tc->plain, tc->plen, "receipt-id:late", 15), "no late RECEIPT");
    tc_free(tc);
    h_broker_stop_ok(b);
}

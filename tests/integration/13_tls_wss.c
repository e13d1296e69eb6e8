/*
 * 13_tls_wss.c - a wss:// smoke test from C: the HTTP upgrade over TLS (the
 * RFC 6455 sample key, so the expected Sec-WebSocket-Accept is a constant),
 * then STOMP CONNECT, SUBSCRIBE, SEND and the MESSAGE in hand-written
 * WebSocket frames, with a plain stomp:// client on the other side. Also: a
 * plain HTTP upgrade sent to the wss:// port is not answered.
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

TestSuite(tls_wss, .init = h_init, .fini = h_fini, .timeout = 40);

#define SAMPLE_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define SAMPLE_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/* Read raw bytes until `n` are buffered in c (or close/timeout). */
static bool raw_fill(struct h_conn *c, size_t n, int ms)
{
    uint64_t deadline = h_now_ms() + (uint64_t)ms;
    while (c->len - c->off < n) {
        uint64_t now = h_now_ms();
        if (now >= deadline)
            return false;
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)(deadline - now)) <= 0)
            continue;
        if (c->cap - c->len < 4096) {
            memmove(c->buf, c->buf + c->off, c->len - c->off);
            c->len -= c->off;
            c->off = 0;
        }
        cr_assert(c->cap - c->len >= 4096, "test buffer full");
        ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (r > 0)
            c->len += (size_t)r;
        else if (r == 0 || (errno != EAGAIN && errno != EINTR))
            return false;
    }
    return true;
}

/* The HTTP answer head (through the blank line), consumed from c. */
static const char *read_head(struct h_conn *c)
{
    uint64_t deadline = h_now_ms() + 3000;
    for (;;) {
        char *end = memmem(c->buf + c->off, c->len - c->off, "\r\n\r\n", 4);
        if (end != NULL) {
            size_t n = (size_t)(end + 4 - (c->buf + c->off));
            const char *head = h_fmt("%.*s", (int)n, c->buf + c->off);
            c->off += n;
            return head;
        }
        cr_assert(h_now_ms() < deadline && raw_fill(c, c->len - c->off + 1, 500),
                  "no complete HTTP answer; got: %.*s", (int)(c->len - c->off), c->buf + c->off);
    }
}

/* One masked text frame. */
static void ws_send_text(struct h_conn *c, const char *p, size_t n)
{
    unsigned char hdr[14];
    size_t h = 0;
    hdr[h++] = 0x81;
    if (n < 126) {
        hdr[h++] = (unsigned char)(0x80 | n);
    } else {
        cr_assert(n < 65536);
        hdr[h++] = 0x80 | 126;
        hdr[h++] = (unsigned char)(n >> 8);
        hdr[h++] = (unsigned char)n;
    }
    const unsigned char mask[4] = {0x5a, 0xc3, 0x17, 0x88};
    memcpy(hdr + h, mask, 4);
    h += 4;
    char *buf = malloc(h + n);
    cr_assert_not_null(buf);
    memcpy(buf, hdr, h);
    for (size_t i = 0; i < n; i++)
        buf[h + i] = (char)(p[i] ^ mask[i % 4]);
    h_send(c, buf, h + n);
    free(buf);
}

static void ws_sendz(struct h_conn *c, const char *frame)
{
    ws_send_text(c, frame, strlen(frame) + 1);
}

/* The payload of the next data frame from the server (unmasked, FIN). */
static const char *ws_read_text(struct h_conn *c, size_t *len)
{
    cr_assert(raw_fill(c, 2, 3000), "no WebSocket frame (closed %d)", c->closed);
    const unsigned char *p = (const unsigned char *)c->buf + c->off;
    cr_assert(p[0] == 0x81 || p[0] == 0x82, "want a final text/binary frame, got 0x%02x", p[0]);
    cr_assert((p[1] & 0x80) == 0, "the server masked its frame");
    size_t n = p[1] & 0x7f, h = 2;
    if (n == 126) {
        cr_assert(raw_fill(c, 4, 3000));
        p = (const unsigned char *)c->buf + c->off;
        n = (size_t)p[2] << 8 | p[3];
        h = 4;
    }
    cr_assert(n < 127 * 1024, "frame of %zu bytes", n);
    cr_assert(raw_fill(c, h + n, 3000), "truncated WebSocket frame");
    const char *out = h_fmt("%.*s", (int)n, c->buf + c->off + h);
    c->off += h + n;
    *len = n;
    return out;
}

/* A STOMP frame in one WebSocket message: its command line must be `cmd`,
 * and it must contain `needle` (may be NULL). Heart-beat-only messages are
 * skipped. */
static const char *ws_expect(struct h_conn *c, const char *cmd, const char *needle)
{
    for (int i = 0; i < 8; i++) {
        size_t n;
        const char *m = ws_read_text(c, &n);
        if (strspn(m, "\r\n") == n)
            continue;
        size_t cl = strlen(cmd);
        cr_assert(strncmp(m, cmd, cl) == 0 && m[cl] == '\n', "want %s over wss, got: %s", cmd, m);
        cr_assert(needle == NULL || strstr(m, needle) != NULL, "%s lacks '%s': %s", cmd, needle, m);
        return m;
    }
    cr_assert_fail("only heart-beats over wss");
    return NULL;
}

Test(tls_wss, upgrade_and_stomp_roundtrip)
{
    struct h_broker *b = h_tls_broker("wss://127.0.0.1:0/stomp", "srv_ec", 2, NULL);
    int port = h_broker_port_of(b, "wss://");
    struct h_tls_result res;
    struct h_conn *w = h_tls_dial(port, NULL, &res);
    cr_assert(w != NULL, "TLS handshake on the wss:// port failed: %s", res.err);
    cr_assert_str_eq(res.subject, "CN=stampede-ec");
    const char *req = h_fmt("GET /stomp HTTP/1.1\r\nHost: localhost:%d\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Key: " SAMPLE_KEY "\r\n"
                            "Sec-WebSocket-Version: 13\r\n"
                            "Sec-WebSocket-Protocol: v12.stomp, v11.stomp\r\n\r\n",
                            port);
    h_send(w, req, strlen(req));
    const char *head = read_head(w);
    cr_assert(strncmp(head, "HTTP/1.1 101", 12) == 0, "upgrade answer: %s", head);
    cr_assert(strstr(head, SAMPLE_ACCEPT) != NULL, "wrong Sec-WebSocket-Accept: %s", head);
    cr_assert(strstr(head, "v12.stomp") != NULL, "subprotocol not v12.stomp: %s", head);

    ws_sendz(w, "CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n");
    ws_expect(w, "CONNECTED", "version:1.2");
    const char *dest = h_dest("topic", "wss");
    ws_sendz(w, h_fmt("SUBSCRIBE\ndestination:%s\nid:0\nreceipt:sub\n\n", dest));
    ws_expect(w, "RECEIPT", "receipt-id:sub");

    /* plain stomp:// -> wss:// */
    struct h_conn *p = h_client(b, "1.2");
    h_publish(p, dest, "from plain tcp", true);
    ws_expect(w, "MESSAGE", "from plain tcp");
    /* wss:// -> wss:// and -> plain (a larger body: a 16-bit length frame) */
    const char *pdest = h_dest("topic", "wss-out");
    h_subscribe(p, pdest, "p", NULL, "");
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ws_sendz(w, h_fmt("SEND\ndestination:%s\nreceipt:s1\n\n%s", pdest, big));
    ws_expect(w, "RECEIPT", "receipt-id:s1");
    h_expect_msg(p, big);
    ws_sendz(w, h_fmt("SEND\ndestination:%s\n\nto myself", dest));
    ws_expect(w, "MESSAGE", "to myself");
    ws_sendz(w, "DISCONNECT\nreceipt:bye\n\n");
    ws_expect(w, "RECEIPT", "receipt-id:bye");
    h_broker_stop_ok(b);
}

Test(tls_wss, plain_http_on_wss_port_is_not_answered)
{
    struct h_broker *b = h_tls_broker("wss://127.0.0.1:0/stomp", "srv_ec", 1, NULL);
    int port = h_broker_port_of(b, "wss://");
    struct h_conn *c = h_dial_port(port, 0);
    const char *req = "GET /stomp HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: " SAMPLE_KEY "\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n";
    h_send(c, req, strlen(req));
    uint64_t t0 = h_now_ms();
    bool got = raw_fill(c, 1, 3000);
    cr_assert(!got && h_now_ms() - t0 < 2900, "plain HTTP on the wss:// port: not closed in 3 s");
    cr_assert(c->len == 0, "plain HTTP on the wss:// port got %zu bytes: %.*s", c->len, (int)c->len,
              c->buf);
    /* And a wss client is fine afterwards. */
    cr_assert_not_null(h_tls_dial(port, NULL, NULL));
    h_broker_stop_ok(b);
}

/*
 * Unit tests of the WebSocket engine's HTTP side: the upgrade (RFC 6455's
 * example), subprotocol choice, every rejection with its status line and
 * required headers, /healthz and /metrics, the 8 KiB head bound, a request
 * split at every byte and a frame pipelined after the request.
 */
#include "test_ws_harness.h"

#include <stdio.h>
#include <stdlib.h>

Test(ws_handshake, rfc6455_example_upgrades)
{
    struct harness h;
    h_init(&h, 1 << 20);
    cr_assert_eq(h_feed_str(&h, H_REQUEST), 0);
    h_expect_out(&h, H_101, strlen(H_101));
    cr_assert_eq(h.opened, 1);
    cr_assert_null(h.subprotocol);
    cr_assert_eq(stp_ws_state(h.ws), STP_WS_OPEN);
    cr_assert_eq(stp_ws_http_status(h.ws), 101);
    cr_assert_eq(h.closed, 0);
    h_fini(&h);
}

/* Upgrade with an extra header line; returns the engine's answer. */
static void upgrade_with(struct harness *h, const char *extra, struct stp_ws_config *cfg_over)
{
    char req[2048];
    snprintf(req, sizeof(req),
             "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: " H_KEY "\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
             extra);
    h_init(h, 1 << 20);
    if (cfg_over)
        h->cfg = *cfg_over;
    h_feed_str(h, req);
}

Test(ws_handshake, subprotocol_choice_table)
{
    static const struct {
        const char *offer; /* NULL: no header */
        const char *answer;
    } table[] = {
        {NULL, NULL},
        {"v12.stomp", "v12.stomp"},
        {"v10.stomp, v11.stomp, v12.stomp", "v12.stomp"},
        {"v12.stomp,v11.stomp", "v12.stomp"},
        {"stomp, v11.stomp", "v11.stomp"},
        {"v10.stomp", "v10.stomp"},
        {"stomp", "stomp"},
        {"mqtt, stomp", "stomp"},
        {"mqtt", NULL},
        {"mqtt, wamp.2.json", NULL},
        {"V12.STOMP", NULL},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        struct harness h;
        char extra[256] = "";
        if (table[i].offer)
            snprintf(extra, sizeof(extra), "Sec-WebSocket-Protocol: %s\r\n", table[i].offer);
        upgrade_with(&h, extra, NULL);
        cr_assert_eq(h.opened, 1, "offer %s", table[i].offer);
        cr_assert(strncmp(h.out.data, "HTTP/1.1 101 Switching Protocols\r\n", 34) == 0);
        if (table[i].answer) {
            char line[128];
            snprintf(line, sizeof(line), "\r\nSec-WebSocket-Protocol: %s\r\n", table[i].answer);
            cr_assert(h_out_has(&h, line), "offer %s", table[i].offer);
            cr_assert_str_eq(h.subprotocol, table[i].answer);
        } else {
            cr_assert(!h_out_has(&h, "Sec-WebSocket-Protocol"), "offer %s", table[i].offer);
            cr_assert_null(h.subprotocol);
        }
        h_fini(&h);
    }
}

Test(ws_handshake, subprotocol_over_two_header_lines)
{
    struct harness h;
    upgrade_with(&h, "Sec-WebSocket-Protocol: v10.stomp\r\nSec-WebSocket-Protocol: v11.stomp\r\n",
                 NULL);
    cr_assert_str_eq(h.subprotocol, "v11.stomp");
    cr_assert(h_out_has(&h, "\r\nSec-WebSocket-Protocol: v11.stomp\r\n"));
    h_fini(&h);
}

Test(ws_handshake, header_names_and_tokens_any_case)
{
    struct harness h;
    h_init(&h, 1 << 20);
    h_feed_str(&h, "GET /ws?token=1 HTTP/1.1\r\nhOsT: x\r\nUPGRADE: WebSocket\r\n"
                   "connection: keep-alive, UPGRADE\r\nsec-websocket-key:   " H_KEY "  \r\n"
                   "SEC-WEBSOCKET-VERSION: 13\r\n\r\n");
    h_expect_out(&h, H_101, strlen(H_101));
    cr_assert_eq(h.opened, 1);
    h_fini(&h);
}

/* Answer is a complete error response: status line, headers, Connection:
 * close, Content-Length matching the body; the engine is DONE. */
static void expect_error(struct harness *h, int rc, const char *status_line)
{
    cr_assert_eq(rc, STP_ECLOSED);
    cr_assert_eq(stp_ws_state(h->ws), STP_WS_DONE);
    cr_assert_eq(h->opened, 0);
    cr_assert_eq(h->http, 0);
    size_t sl = strlen(status_line);
    cr_assert(h->out.len > sl && memcmp(h->out.data, status_line, sl) == 0 &&
                  memcmp(h->out.data + sl, "\r\n", 2) == 0,
              "got: %.*s", (int)h->out.len, h->out.data);
    cr_assert(h_out_has(h, "\r\nConnection: close\r\n"));
    const char *end = memmem(h->out.data, h->out.len, "\r\n\r\n", 4);
    cr_assert_not_null(end);
    size_t body = h->out.len - (size_t)(end + 4 - h->out.data);
    char cl[64];
    snprintf(cl, sizeof(cl), "\r\nContent-Length: %zu\r\n", body);
    cr_assert(h_out_has(h, cl), "body %zu: %.*s", body, (int)h->out.len, h->out.data);
    /* Whatever comes next is ignored. */
    cr_assert_eq(h_feed_str(h, "more"), STP_ECLOSED);
}

static int feed_request(struct harness *h, const char *req)
{
    h_init(h, 1 << 20);
    return h_feed_str(h, req);
}

Test(ws_handshake, other_path_404)
{
    struct harness h;
    int rc = feed_request(&h, "GET /other HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Key: " H_KEY "\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n");
    expect_error(&h, rc, "HTTP/1.1 404 Not Found");
    cr_assert_eq(stp_ws_http_status(h.ws), 404);
    h_fini(&h);
}

Test(ws_handshake, path_prefix_is_not_the_path)
{
    struct harness h;
    int rc = feed_request(&h, "GET /wsx HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_error(&h, rc, "HTTP/1.1 404 Not Found");
    h_fini(&h);
}

Test(ws_handshake, plain_get_on_ws_path_426)
{
    struct harness h;
    int rc = feed_request(&h, "GET /ws HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\n\r\n");
    expect_error(&h, rc, "HTTP/1.1 426 Upgrade Required");
    cr_assert(h_out_has(&h, "\r\nUpgrade: websocket\r\n"));
    h_fini(&h);
}

Test(ws_handshake, connection_without_upgrade_token_426)
{
    struct harness h;
    int rc = feed_request(&h, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                              "Connection: keep-alive, upgraded\r\nSec-WebSocket-Key: " H_KEY
                              "\r\nSec-WebSocket-Version: 13\r\n\r\n");
    expect_error(&h, rc, "HTTP/1.1 426 Upgrade Required");
    cr_assert(h_out_has(&h, "\r\nUpgrade: websocket\r\n"));
    h_fini(&h);
}

Test(ws_handshake, upgrade_to_other_protocol_426)
{
    struct harness h;
    int rc = feed_request(&h, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Key: " H_KEY
                              "\r\nSec-WebSocket-Version: 13\r\n\r\n");
    expect_error(&h, rc, "HTTP/1.1 426 Upgrade Required");
    h_fini(&h);
}

Test(ws_handshake, wrong_version_426_with_version_header)
{
    const char *versions[] = {"Sec-WebSocket-Version: 8\r\n", "Sec-WebSocket-Version: 13, 8\r\n",
                              ""};
    for (size_t i = 0; i < 3; i++) {
        char req[512];
        snprintf(req, sizeof(req),
                 "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: " H_KEY "\r\n%s\r\n",
                 versions[i]);
        struct harness h;
        int rc = feed_request(&h, req);
        expect_error(&h, rc, "HTTP/1.1 426 Upgrade Required");
        cr_assert(h_out_has(&h, "\r\nSec-WebSocket-Version: 13\r\n"), "case %zu", i);
        cr_assert(h_out_has(&h, "\r\nUpgrade: websocket\r\n"));
        h_fini(&h);
    }
}

Test(ws_handshake, bad_keys_400)
{
    const char *keys[] = {
        "",                                                                 /* missing */
        "Sec-WebSocket-Key: \r\n",                                          /* empty */
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\n",                    /* no padding */
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=\r\n",                   /* 23 chars */
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j*Q==\r\n",                  /* not base64 */
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZSE=\r\n",                  /* 17 bytes */
        "Sec-WebSocket-Key: " H_KEY "\r\nSec-WebSocket-Key: " H_KEY "\r\n", /* twice */
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char req[512];
        snprintf(req, sizeof(req),
                 "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "%sSec-WebSocket-Version: 13\r\n\r\n",
                 keys[i]);
        struct harness h;
        int rc = feed_request(&h, req);
        expect_error(&h, rc, "HTTP/1.1 400 Bad Request");
        h_fini(&h);
    }
}

Test(ws_handshake, missing_host_400)
{
    struct harness h;
    int rc = feed_request(&h, "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Key: " H_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n");
    expect_error(&h, rc, "HTTP/1.1 400 Bad Request");
    h_fini(&h);
}

Test(ws_handshake, http10_upgrade_400)
{
    struct harness h;
    int rc = feed_request(&h, "GET /ws HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Key: " H_KEY
                              "\r\nSec-WebSocket-Version: 13\r\n\r\n");
    expect_error(&h, rc, "HTTP/1.1 400 Bad Request");
    h_fini(&h);
}

Test(ws_handshake, upgrade_with_body_400)
{
    struct harness h;
    int rc = feed_request(&h, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Key: " H_KEY
                              "\r\nSec-WebSocket-Version: 13\r\nContent-Length: 3\r\n\r\nabc");
    expect_error(&h, rc, "HTTP/1.1 400 Bad Request");
    h_fini(&h);
}

Test(ws_handshake, malformed_http_400)
{
    const char *reqs[] = {
        "HELLO\r\n\r\n",
        "GET /ws HTTP/1.1\r\nHost x\r\n\r\n",
        "GET /ws HTTP/9.9\r\nHost: x\r\n\r\n",
        "GET /ws HTTP/1.1\r\nHo st: x\r\n\r\n",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", /* a TLS ClientHello */
    };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        struct harness h;
        int rc = feed_request(&h, reqs[i]);
        expect_error(&h, rc, "HTTP/1.1 400 Bad Request");
        h_fini(&h);
    }
}

Test(ws_handshake, method_not_get_405)
{
    const char *reqs[] = {
        "POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        "PUT /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    };
    for (size_t i = 0; i < 3; i++) {
        struct harness h;
        int rc = feed_request(&h, reqs[i]);
        expect_error(&h, rc, "HTTP/1.1 405 Method Not Allowed");
        cr_assert(h_out_has(&h, "\r\nAllow: GET\r\n"));
        h_fini(&h);
    }
}

static char *origin_request(const char *origin_line)
{
    static char req[512];
    snprintf(req, sizeof(req),
             "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: " H_KEY "\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
             origin_line);
    return req;
}

static void origin_case(const char *origin_line, size_t nallowed, bool accepted)
{
    static char *const allowed[] = {"https://app.example.com", "http://localhost:8080"};
    struct harness h;
    h_init(&h, 1 << 20);
    h.cfg.allowed_origins = allowed;
    h.cfg.nallowed_origins = nallowed;
    int rc = h_feed_str(&h, origin_request(origin_line));
    if (accepted) {
        cr_assert_eq(rc, 0, "origin %s", origin_line);
        h_expect_out(&h, H_101, strlen(H_101));
    } else {
        expect_error(&h, rc, "HTTP/1.1 403 Forbidden");
    }
    h_fini(&h);
}

Test(ws_handshake, origin_allow_list)
{
    origin_case("Origin: https://evil.example.net\r\n", 2, false);
    origin_case("Origin: https://app.example.com.evil.net\r\n", 2, false);
    origin_case("Origin: null\r\n", 2, false);
    origin_case("Origin: https://app.example.com\r\n", 2, true);
    origin_case("Origin: HTTP://LOCALHOST:8080\r\n", 2, true);
    origin_case("", 2, true);                                     /* not a browser */
    origin_case("Origin: https://evil.example.net\r\n", 0, true); /* no list: any */
}

Test(ws_handshake, head_over_8k_431)
{
    /* One feed with a 9 KiB header. */
    struct stp_buf req = STP_BUF_INIT;
    stp_buf_append_str(&req, "GET /ws HTTP/1.1\r\nHost: x\r\nX-Big: ");
    for (int i = 0; i < 9000; i++)
        stp_buf_append(&req, "a", 1);
    stp_buf_append_str(&req, "\r\n\r\n");
    struct harness h;
    h_init(&h, 1 << 20);
    int rc = h_feed(&h, req.data, req.len);
    expect_error(&h, rc, "HTTP/1.1 431 Request Header Fields Too Large");
    h_fini(&h);

    /* The same, dripped in 100-byte pieces: the 431 comes once 8 KiB are in. */
    h_init(&h, 1 << 20);
    size_t off = 0;
    rc = 0;
    while (rc == 0 && off < req.len) {
        size_t n = req.len - off < 100 ? req.len - off : 100;
        rc = h_feed(&h, req.data + off, n);
        off += n;
    }
    cr_assert(off <= STP_WS_MAX_HEAD + 100);
    expect_error(&h, rc, "HTTP/1.1 431 Request Header Fields Too Large");
    h_fini(&h);
    stp_buf_free(&req);
}

/* A valid upgrade request padded with a header to exactly len bytes. */
static void padded_request(struct stp_buf *req, size_t len)
{
    const char *head =
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: " H_KEY "\r\nSec-WebSocket-Version: 13\r\nX-Pad: ";
    stp_buf_reset(req);
    stp_buf_append_str(req, head);
    while (req->len < len - 4)
        stp_buf_append(req, "p", 1);
    stp_buf_append_str(req, "\r\n\r\n");
    cr_assert_eq(req->len, len);
}

Test(ws_handshake, head_of_exactly_8k_accepted_one_more_byte_431)
{
    struct stp_buf req = STP_BUF_INIT;
    struct harness h;
    padded_request(&req, STP_WS_MAX_HEAD);
    h_init(&h, 1 << 20);
    cr_assert_eq(h_feed(&h, req.data, req.len), 0);
    cr_assert_eq(h.opened, 1);
    h_fini(&h);

    padded_request(&req, STP_WS_MAX_HEAD + 1);
    h_init(&h, 1 << 20);
    expect_error(&h, h_feed(&h, req.data, req.len), "HTTP/1.1 431 Request Header Fields Too Large");
    h_fini(&h);
    stp_buf_free(&req);
}

Test(ws_handshake, request_split_at_every_byte)
{
    /* A request that exercises every header path, then a pipelined frame. */
    const char *req =
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nUser-Agent: t\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: " H_KEY "\r\n"
        "Sec-WebSocket-Protocol: v10.stomp, v12.stomp\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n";
    struct stp_buf all = STP_BUF_INIT;
    stp_buf_append_str(&all, req);
    h_frame(&all, STP_WS_OP_TEXT, true, "CONNECT\n\n\0", 10);
    for (size_t cut = 0; cut <= all.len; cut++) {
        struct harness h;
        h_init(&h, 1 << 20);
        cr_assert_eq(h_feed(&h, all.data, cut), 0);
        cr_assert_eq(h_feed(&h, all.data + cut, all.len - cut), 0);
        cr_assert_eq(h.opened, 1, "cut %zu", cut);
        cr_assert_str_eq(h.subprotocol, "v12.stomp");
        cr_assert(strncmp(h.out.data, "HTTP/1.1 101 ", 13) == 0);
        cr_assert(h_out_has(&h, "Sec-WebSocket-Accept: " H_ACCEPT "\r\n"));
        cr_assert_eq(h.nmsgs, 1, "cut %zu", cut);
        cr_assert_eq(h.msg_len[0], 10);
        cr_assert_eq(memcmp(h.msgs.data, "CONNECT\n\n\0", 10), 0);
        h_fini(&h);
    }
    /* And one byte at a time. */
    struct harness h;
    h_init(&h, 1 << 20);
    for (size_t i = 0; i < all.len; i++)
        cr_assert_eq(h_feed(&h, all.data + i, 1), 0);
    cr_assert_eq(h.opened, 1);
    cr_assert_eq(h.nmsgs, 1);
    h_fini(&h);
    stp_buf_free(&all);
}

Test(ws_handshake, pipelined_frames_after_request_not_lost)
{
    struct stp_buf all = STP_BUF_INIT;
    stp_buf_append_str(&all, H_REQUEST);
    h_frame(&all, STP_WS_OP_TEXT, true, "CONNECT\naccept-version:1.2\n\n\0", 29);
    h_frame(&all, STP_WS_OP_PING, true, "hb", 2);
    h_frame(&all, STP_WS_OP_BINARY, true, "\xff\x00", 2);
    struct harness h;
    h_init(&h, 1 << 20);
    cr_assert_eq(h_feed(&h, all.data, all.len), 0);
    /* The 101 comes first, then the pong. */
    size_t l101 = strlen(H_101);
    cr_assert_eq(h.out.len, l101 + 4);
    cr_assert_eq(memcmp(h.out.data, H_101, l101), 0);
    cr_assert_eq(memcmp(h.out.data + l101, "\x8a\x02hb", 4), 0);
    cr_assert_eq(h.nmsgs, 2);
    cr_assert_eq(h.msg_len[0], 29);
    cr_assert(!h.msg_binary[0]);
    cr_assert(h.msg_binary[1]);
    cr_assert_eq(memcmp(h.msgs.data + 29, "\xff\x00", 2), 0);
    h_fini(&h);
    stp_buf_free(&all);
}

static void endpoint_case(const char *path, enum stp_ws_endpoint want)
{
    char req[256];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    struct harness h;
    h_init(&h, 1 << 20);
    cr_assert_eq(h_feed_str(&h, req), 0);
    cr_assert_eq(h.http, 1);
    cr_assert_eq(h.endpoint, want);
    cr_assert_eq(stp_ws_state(h.ws), STP_WS_HTTP);
    cr_assert_eq(h.out.len, 0);
    /* Bytes while the answer is pending are ignored. */
    cr_assert_eq(h_feed_str(&h, "GET /other HTTP/1.1\r\n\r\n"), 0);
    cr_assert_eq(h.out.len, 0);
    const char *body = "{\"status\":\"ok\"}";
    cr_assert_eq(stp_ws_http_reply(h.ws, 200, "application/json", body, strlen(body)), 0);
    h_drain(&h);
    const char *want_out = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                           "Content-Length: 15\r\nConnection: close\r\n\r\n{\"status\":\"ok\"}";
    h_expect_out(&h, want_out, strlen(want_out));
    cr_assert_eq(stp_ws_state(h.ws), STP_WS_DONE);
    cr_assert_eq(stp_ws_http_status(h.ws), 200);
    cr_assert_eq(stp_ws_http_reply(h.ws, 200, "text/plain", "x", 1), STP_EINVAL);
    cr_assert_eq(h_feed_str(&h, "x"), STP_ECLOSED);
    h_fini(&h);
}

Test(ws_handshake, healthz_and_metrics_reported_and_answered)
{
    endpoint_case("/healthz", STP_WS_HEALTHZ);
    endpoint_case("/metrics", STP_WS_METRICS);
    endpoint_case("/metrics?name[]=x", STP_WS_METRICS);
}

Test(ws_handshake, reply_only_in_http_state)
{
    struct harness h;
    h_init(&h, 1 << 20);
    cr_assert_eq(stp_ws_http_reply(h.ws, 200, "text/plain", "x", 1), STP_EINVAL);
    h_feed_str(&h, H_REQUEST);
    cr_assert_eq(stp_ws_http_reply(h.ws, 200, "text/plain", "x", 1), STP_EINVAL);
    h_fini(&h);
}

Test(ws_handshake, close_before_upgrade_is_silent)
{
    struct harness h;
    h_init(&h, 1 << 20);
    h_feed_str(&h, "GET /ws HTTP/1.1\r\nHo");
    cr_assert_eq(stp_ws_close(h.ws, STP_WS_CLOSE_NORMAL, NULL), 0);
    h_drain(&h);
    cr_assert_eq(h.out.len, 0);
    cr_assert_eq(stp_ws_state(h.ws), STP_WS_DONE);
    cr_assert_eq(stp_ws_close(h.ws, STP_WS_CLOSE_NORMAL, NULL), STP_ECLOSED);
    cr_assert_eq(h.closed, 0);
    h_fini(&h);
}

Test(ws_handshake, random_garbage_never_crashes)
{
    srand(42);
    for (int round = 0; round < 2000; round++) {
        uint8_t junk[256];
        size_t n = (size_t)(rand() % (int)sizeof(junk));
        for (size_t i = 0; i < n; i++)
            junk[i] = (uint8_t)rand();
        if (round % 2) /* a valid prefix, then junk */
            memcpy(junk, H_REQUEST, n < 60 ? n : 60);
        struct harness h;
        h_init(&h, 1 << 20);
        int rc = h_feed(&h, junk, n);
        cr_assert(rc == 0 || rc == STP_ECLOSED);
        if (rc == STP_ECLOSED)
            cr_assert(h.out.len > 0 && memcmp(h.out.data, "HTTP/1.1 4", 10) == 0);
        h_fini(&h);
    }
}

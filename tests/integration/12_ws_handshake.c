/*
 * 12_ws_handshake.c - the HTTP side of the ws:// listener against a real
 * broker: the 101 answer (Sec-WebSocket-Accept for the key, the subprotocol
 * choice), CONNECT after the upgrade, every rejection (404, 405, 426 twice,
 * 400, 431, 403 with --ws-allowed-origin) and the timeout of an incomplete
 * request. The requests are raw bytes; the accept key is computed by the
 * harness's own SHA-1.
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>
#include <string.h>

TestSuite(ws_handshake, .init = h_init, .fini = h_fini, .timeout = 20);

/* A complete upgrade request with these header lines replacing the defaults
 * (each NULL keeps the default; "" omits the line). */
static const char *request(int port, const char *path, const char *upgrade, const char *connection,
                           const char *version, const char *key, const char *extra)
{
    const char *k = key ? key : "dGhlIHNhbXBsZSBub25jZQ==";
    const char *u = upgrade ? upgrade : "websocket", *c = connection ? connection : "Upgrade";
    const char *v = version ? version : "13";
    return h_fmt("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s%s%s%s%s%s%s%s%s%s%s%s%s\r\n",
                 path ? path : "/ws", port, *u ? "Upgrade: " : "", u, *u ? "\r\n" : "",
                 *c ? "Connection: " : "", c, *c ? "\r\n" : "", *v ? "Sec-WebSocket-Version: " : "",
                 v, *v ? "\r\n" : "", *k ? "Sec-WebSocket-Key: " : "", k, *k ? "\r\n" : "",
                 extra ? extra : "");
}

/* Send req, expect status `want` and the connection closed after it. */
static const char *refused(int port, const char *req, int want)
{
    int st = 0;
    bool closed = false;
    const char *resp = h_http_exchange(port, req, strlen(req), 3000, &st, &closed);
    cr_assert(st == want, "expected %d, got: %.400s\n(request: %.200s)", want, resp, req);
    cr_assert(closed, "the connection stayed open after the %d answer", want);
    const char *cl = h_http_header(resp, "Content-Length");
    const char *body = strstr(resp, "\r\n\r\n");
    cr_assert(cl != NULL && body != NULL && (size_t)atol(cl) == strlen(body + 4),
              "the %d answer's Content-Length does not match its body: %.400s", want, resp);
    return resp;
}

Test(ws_handshake, accept_key_of_rfc_example)
{
    char acc[29];
    h_ws_accept_for("dGhlIHNhbXBsZSBub25jZQ==", acc);
    cr_assert_str_eq(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "the harness's own SHA-1 is wrong");
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    const char *req = request(port, NULL, NULL, NULL, NULL, NULL, NULL);
    int st = 0;
    const char *resp = h_http_exchange(port, req, strlen(req), 300, &st, NULL);
    cr_assert(st == 101, "expected 101, got: %.300s", resp);
    const char *a = h_http_header(resp, "Sec-WebSocket-Accept");
    cr_assert(a != NULL && strcmp(a, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0,
              "Sec-WebSocket-Accept for the RFC 6455 key: %s", resp);
    cr_assert(h_http_header(resp, "Sec-WebSocket-Protocol") == NULL,
              "no protocol offered but one answered: %s", resp);
    h_broker_stop_ok(b);
}

Test(ws_handshake, random_keys_get_their_accept)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    for (int i = 0; i < 20; i++) {
        struct h_ws *w = h_ws_dial(port); /* asserts the accept for its random key */
        h_close(w->raw);
    }
    h_broker_stop_ok(b);
}

static void chooses(int port, const char *offer, const char *want)
{
    struct h_ws *w = h_ws_upgrade(port, "/ws", offer, NULL);
    cr_assert(w->status == 101, "offer '%s': expected 101, got:\n%s", offer ? offer : "(none)",
              w->head);
    const char *got = h_http_header(w->head, "Sec-WebSocket-Protocol");
    if (want == NULL)
        cr_assert(got == NULL, "offer '%s': expected no Sec-WebSocket-Protocol, got %s",
                  offer ? offer : "(none)", got);
    else
        cr_assert(got != NULL && strcmp(got, want) == 0, "offer '%s': expected %s, got %s",
                  offer ? offer : "(none)", want, got ? got : "(none)");
    h_close(w->raw);
}

Test(ws_handshake, highest_stomp_subprotocol_wins)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    chooses(port, "v12.stomp, v11.stomp, v10.stomp", "v12.stomp");
    chooses(port, "v10.stomp,v12.stomp,v11.stomp", "v12.stomp");
    chooses(port, "stomp, v11.stomp, v10.stomp", "v11.stomp");
    chooses(port, "stomp,v10.stomp", "v10.stomp");
    chooses(port, "stomp", "stomp");
    chooses(port, "mqtt, v11.stomp", "v11.stomp");
    chooses(port, NULL, NULL);
    /* Two header lines count as one list. */
    struct h_ws *w =
        h_ws_upgrade(port, "/ws", "stomp", "Sec-WebSocket-Protocol: v11.stomp, v10.stomp\r\n");
    cr_assert(w->status == 101, "two protocol lines: %s", w->head);
    const char *got = h_http_header(w->head, "Sec-WebSocket-Protocol");
    cr_assert(got && strcmp(got, "v11.stomp") == 0, "two protocol lines: got %s",
              got ? got : "(none)");
    h_broker_stop_ok(b);
}

Test(ws_handshake, accept_version_settles_the_stomp_version)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    struct h_ws *w = h_ws_upgrade(port, "/ws", "v10.stomp", NULL);
    cr_assert(w->status == 101);
    h_ws_sendz(w, "CONNECT\naccept-version:1.1,1.2\nhost:/\n\n");
    struct h_frame *f = h_ws_expect(w, "CONNECTED", H_WAIT);
    cr_assert_str_eq(h_hdr(f, "version"), "1.2", "CONNECTED: %s", h_show(f));
    /* With no subprotocol at all STOMP works the same. */
    struct h_ws *w2 = h_ws_upgrade(port, "/ws", NULL, NULL);
    cr_assert(w2->status == 101);
    h_ws_sendz(w2, "CONNECT\naccept-version:1.1\nhost:/\n\n");
    f = h_ws_expect(w2, "CONNECTED", H_WAIT);
    cr_assert_str_eq(h_hdr(f, "version"), "1.1", "CONNECTED: %s", h_show(f));
    h_broker_stop_ok(b);
}

Test(ws_handshake, connection_header_is_a_token_list_any_case)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    const char *req = request(port, NULL, "WebSocket", "keep-alive, UPGRADE", NULL, NULL, NULL);
    int st = 0;
    const char *resp = h_http_exchange(port, req, strlen(req), 300, &st, NULL);
    cr_assert(st == 101, "Connection: keep-alive, UPGRADE: expected 101, got: %.300s", resp);
    h_broker_stop_ok(b);
}

Test(ws_handshake, other_path_is_404)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    refused(port, request(port, "/other", NULL, NULL, NULL, NULL, NULL), 404);
    refused(port, request(port, "/ws/deeper", NULL, NULL, NULL, NULL, NULL), 404);
    refused(port, request(port, "/", NULL, NULL, NULL, NULL, NULL), 404);
    /* The query string is ignored for the path. */
    struct h_ws *w = h_ws_upgrade(port, "/ws?x=1", NULL, NULL);
    cr_assert(w->status == 101, "/ws?x=1: %s", w->head);
    h_broker_stop_ok(b);
}

Test(ws_handshake, not_an_upgrade_is_426)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    const char *resp = refused(port, request(port, NULL, "", "", "", "", NULL), 426);
    const char *up = h_http_header(resp, "Upgrade");
    cr_assert(up && strcasecmp(up, "websocket") == 0, "426 without Upgrade: websocket: %s", resp);
    resp = refused(port, request(port, NULL, "h2c", NULL, NULL, NULL, NULL), 426);
    cr_assert(h_http_header(resp, "Upgrade") != NULL, "%s", resp);
    resp = refused(port, request(port, NULL, NULL, "keep-alive", NULL, NULL, NULL), 426);
    cr_assert(h_http_header(resp, "Upgrade") != NULL, "%s", resp);
    h_broker_stop_ok(b);
}

Test(ws_handshake, wrong_version_is_426_with_13)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    const char *versions[] = {"8", "12", "14", ""};
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        const char *resp =
            refused(port, request(port, NULL, NULL, NULL, versions[i], NULL, NULL), 426);
        const char *v = h_http_header(resp, "Sec-WebSocket-Version");
        cr_assert(v && strcmp(v, "13") == 0,
                  "version '%s': 426 without Sec-WebSocket-Version: 13: %s", versions[i], resp);
        const char *up = h_http_header(resp, "Upgrade");
        cr_assert(up && strcasecmp(up, "websocket") == 0, "%s", resp);
    }
    h_broker_stop_ok(b);
}

Test(ws_handshake, malformed_http_is_400)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    refused(port, "GARBAGE GARBAGE GARBAGE\r\n\r\n", 400);
    refused(port, "GET /ws HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n", 400);
    refused(port, "GET /ws HTTP/1.1\r\nHo\x01st: x\r\n\r\n", 400);
    /* No Host; a bad key. */
    refused(port,
            "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            400);
    refused(port, request(port, NULL, NULL, NULL, NULL, "c2hvcnQ=", NULL), 400);
    refused(port, request(port, NULL, NULL, NULL, NULL, "", NULL), 400);
    /* Another method. */
    const char *resp =
        refused(port, "POST /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405);
    cr_assert(h_http_header(resp, "Allow") != NULL, "405 without Allow: %s", resp);
    h_broker_stop_ok(b);
}

Test(ws_handshake, headers_over_8k_are_431)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    char pad[9000];
    memset(pad, 'a', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    refused(port, request(port, NULL, NULL, NULL, NULL, NULL, h_fmt("X-Pad: %s\r\n", pad)), 431);
    /* Many small headers adding up past 8 KiB. */
    char many[12000] = "";
    size_t n = 0;
    for (int i = 0; i < 500; i++)
        n += (size_t)snprintf(many + n, sizeof many - n, "X-H%d: 0123456789\r\n", i);
    refused(port, request(port, NULL, NULL, NULL, NULL, NULL, many), 431);
    /* Just under the limit is fine. */
    memset(pad, 'b', 7000);
    pad[7000] = '\0';
    struct h_ws *w = h_ws_upgrade(port, "/ws", NULL, h_fmt("X-Pad: %s\r\n", pad));
    cr_assert(w->status == 101, "a 7 KiB head: %.200s", w->head);
    h_broker_stop_ok(b);
}

Test(ws_handshake, allowed_origin)
{
    struct h_broker *b = H_START_WS(2, "--ws-allowed-origin", "https://good.example",
                                    "--ws-allowed-origin", "http://127.0.0.1:8080");
    int port = h_listener_port(b, "ws");
    refused(port, request(port, NULL, NULL, NULL, NULL, NULL, "Origin: https://evil.example\r\n"),
            403);
    refused(port,
            request(port, NULL, NULL, NULL, NULL, NULL, "Origin: https://good.example.evil\r\n"),
            403);
    struct h_ws *w = h_ws_upgrade(port, "/ws", "v12.stomp", "Origin: https://good.example\r\n");
    cr_assert(w->status == 101, "listed Origin refused: %s", w->head);
    h_ws_sendz(w, "CONNECT\naccept-version:1.2\nhost:/\n\n");
    h_ws_expect(w, "CONNECTED", H_WAIT);
    w = h_ws_upgrade(port, "/ws", NULL, "Origin: http://127.0.0.1:8080\r\n");
    cr_assert(w->status == 101, "second listed Origin refused: %s", w->head);
    /* Without Origin (not a browser) the upgrade passes. */
    w = h_ws_upgrade(port, "/ws", NULL, NULL);
    cr_assert(w->status == 101, "no Origin refused: %s", w->head);
    h_broker_stop_ok(b);
}

Test(ws_handshake, incomplete_request_closed_after_timeout)
{
    struct h_broker *b = H_START_WS(2, "--login-timeout", "500ms");
    int port = h_listener_port(b, "ws");
    struct h_conn *c = h_dial_port(port, 0);
    const char *part = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n";
    uint64_t t0 = h_now_ms();
    h_send(c, part, strlen(part));
    /* Read (and keep) whatever comes until the server closes. */
    char got[4096];
    size_t n = 0;
    bool eof = false;
    while (!eof && h_now_ms() < t0 + 3000) {
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        if (poll(&pfd, 1, 100) != 1)
            continue;
        ssize_t r = recv(c->fd, got + n, sizeof got - 1 - n, 0);
        if (r > 0)
            n += (size_t)r;
        else
            eof = true; /* EOF or reset */
    }
    uint64_t dt = h_now_ms() - t0;
    got[n] = '\0';
    cr_assert(eof, "an incomplete request was not closed within 3 s");
    cr_assert(dt >= 400 && dt <= 2000, "closed after %llu ms (login timeout 500 ms)",
              (unsigned long long)dt);
    cr_assert(n == 0 || strncmp(got, "HTTP/1.1 ", 9) == 0,
              "the server sent %zu bytes that are not an HTTP answer: %.80s", n, got);
    /* A connection that completed its upgrade is not cut by that timer before CONNECT
     * is due, and one that sends CONNECT in time stays. */
    struct h_ws *w = h_ws_dial(port);
    h_ws_sendz(w, "CONNECT\naccept-version:1.2\nhost:/\n\n");
    h_ws_expect(w, "CONNECTED", H_WAIT);
    h_sleep_ms(800);
    h_ws_sendz(w, "SUBSCRIBE\ndestination:/topic/x\nid:1\nreceipt:r\n\n");
    h_ws_expect(w, "RECEIPT", H_WAIT);
    h_broker_stop_ok(b);
}

Test(ws_handshake, pipelined_frames_after_the_request)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    /* The request and a masked CONNECT frame in one write. */
    const char *req = request(port, NULL, NULL, NULL, NULL, NULL, NULL);
    const char *connect = "CONNECT\naccept-version:1.2\nhost:/\n\n";
    size_t rl = strlen(req), cl = strlen(connect) + 1;
    char buf[1024];
    memcpy(buf, req, rl);
    buf[rl] = (char)0x81;
    buf[rl + 1] = (char)(0x80 | cl);
    const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
    memcpy(buf + rl + 2, mask, 4);
    for (size_t i = 0; i < cl; i++)
        buf[rl + 6 + i] = (char)(connect[i] ^ mask[i % 4]);
    int st = 0;
    const char *resp = h_http_exchange(port, buf, rl + 6 + cl, 500, &st, NULL);
    cr_assert(st == 101, "expected 101, got %.200s", resp);
    const char *frame = strstr(resp, "\r\n\r\n");
    cr_assert(frame != NULL && strstr(frame + 4, "CONNECTED\n") != NULL,
              "no CONNECTED after the 101 for a pipelined CONNECT: %.300s", resp);
    h_broker_stop_ok(b);
}

Test(ws_handshake, request_sent_byte_by_byte)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    struct h_ws *w = h_ws_upgrade(port, "/ws", "v11.stomp", NULL); /* the harness's key check */
    cr_assert(w->status == 101);
    /* The same, one byte per write, with lowercase header names. */
    const char *req = h_fmt("GET /ws HTTP/1.1\r\nhost: 127.0.0.1\r\nupgrade: websocket\r\n"
                            "connection: upgrade\r\nsec-websocket-version: 13\r\n"
                            "sec-websocket-key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n"
                            "sec-websocket-protocol: v11.stomp\r\n\r\n");
    struct h_conn *c = h_dial_port(port, 0);
    for (size_t i = 0; req[i]; i++) {
        h_send(c, req + i, 1);
        if (i % 16 == 0)
            h_sleep_ms(1);
    }
    char acc[29];
    h_ws_accept_for("AQIDBAUGBwgJCgsMDQ4PEA==", acc);
    uint64_t deadline = h_now_ms() + H_WAIT;
    while (memmem(c->buf, c->len, "\r\n\r\n", 4) == NULL && h_now_ms() < deadline) {
        struct h_frame *f = NULL;
        if (h_wait_closed(c, 50, &f))
            break;
    }
    const char *resp = h_fmt("%.*s", (int)c->len, c->buf);
    cr_assert(strncmp(resp, "HTTP/1.1 101 ", 13) == 0, "byte by byte: %.200s", resp);
    const char *a = h_http_header(resp, "Sec-WebSocket-Accept");
    cr_assert(a && strcmp(a, acc) == 0, "byte by byte: accept %s, expected %s", a ? a : "-", acc);
    const char *p = h_http_header(resp, "Sec-WebSocket-Protocol");
    cr_assert(p && strcmp(p, "v11.stomp") == 0, "byte by byte: protocol %s", p ? p : "-");
    h_broker_stop_ok(b);
}

Test(ws_handshake, http_1_0_and_request_body_are_400)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    const char *req = request(port, NULL, NULL, NULL, NULL, NULL, NULL);
    const char *v10 = h_fmt("GET /ws HTTP/1.0%s", strstr(req, "\r\n"));
    refused(port, v10, 400);
    refused(port, request(port, NULL, NULL, NULL, NULL, NULL, "Content-Length: 4\r\n"), 400);
    h_broker_stop_ok(b);
}

Test(ws_handshake, origin_compare_ignores_ascii_case)
{
    struct h_broker *b = H_START_WS(2, "--ws-allowed-origin", "https://Good.Example");
    int port = h_listener_port(b, "ws");
    struct h_ws *w = h_ws_upgrade(port, "/ws", NULL, "Origin: HTTPS://GOOD.EXAMPLE\r\n");
    cr_assert(w->status == 101, "Origin in other case refused: %s", w->head);
    refused(port, request(port, NULL, NULL, NULL, NULL, NULL, "Origin: null\r\n"), 403);
    h_broker_stop_ok(b);
}

Test(ws_handshake, endpoints_answer_get_only_and_ignore_the_query)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    const char *body = h_http_get(port, "/healthz?verbose=1");
    cr_assert(strstr(body, "\"status\":\"ok\"") != NULL, "%s", body);
    body = h_http_get(port, "/metrics?x=y");
    cr_assert(strstr(body, "stampede_connections{") != NULL, "%.200s", body);
    refused(port, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405);
    refused(port, "GET /healthzz HTTP/1.1\r\nHost: x\r\n\r\n", 404);
    h_broker_stop_ok(b);
}

Test(ws_handshake, header_forms)
{
    struct h_broker *b = H_START_WS0();
    int port = h_listener_port(b, "ws");
    struct {
        const char *what, *upgrade, *connection, *key, *extra;
        int want;
    } cases[] = {
        {"spaces around the key", NULL, NULL, "  dGhlIHNhbXBsZSBub25jZQ==  ", NULL, 101},
        {"Upgrade as a list", "foo/1, websocket", NULL, NULL, NULL, 101},
        {"Connection over two lines", NULL, "keep-alive\r\nConnection: Upgrade", NULL, NULL, 101},
        {"a key of 17 bytes", NULL, NULL, "AQIDBAUGBwgJCgsMDQ4PEBE=", NULL, 400},
        {"a key without padding", NULL, NULL, "dGhlIHNhbXBsZSBub25jZQ", NULL, 400},
        {"a key that is not base64", NULL, NULL, "!!!!!!!!!!!!!!!!!!!!!!==", NULL, 400},
        {"a chunked body", NULL, NULL, NULL, "Transfer-Encoding: chunked\r\n", 400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *req = request(port, NULL, cases[i].upgrade, cases[i].connection, NULL,
                                  cases[i].key, cases[i].extra);
        int st = 0;
        const char *resp =
            h_http_exchange(port, req, strlen(req), cases[i].want == 101 ? 300 : 3000, &st, NULL);
        cr_assert(st == cases[i].want, "%s: expected %d, got %.200s", cases[i].what, cases[i].want,
                  resp);
        if (st == 101) {
            const char *a = h_http_header(resp, "Sec-WebSocket-Accept");
            cr_assert(a && strcmp(a, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0, "%s: accept %s",
                      cases[i].what, a ? a : "-");
        }
    }
    h_broker_stop_ok(b);
}

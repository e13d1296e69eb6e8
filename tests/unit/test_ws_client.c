/*
 * Unit tests of the client side of the WebSocket engine: its upgrade
 * request, its checks on the server's answer, and a client engine talking
 * to a server engine through memory (messages both ways, pings, fragments
 * from the client, each side closing).
 */
#include "test_ws_harness.h"

#include <stdio.h>
#include <stdlib.h>

static const struct stp_ws_client_config client_cfg = {
    .host = "127.0.0.1:15674",
    .path = "/ws",
    .max_message = 1 << 20,
};

/* A client engine wrapped in the harness (same callbacks, same drain). */
static void client_init(struct harness *h, const struct stp_ws_client_config *cfg)
{
    memset(h, 0, sizeof(*h));
    h->ws = stp_ws_client_new(cfg, &h_ops, h);
    cr_assert_not_null(h->ws);
    h_drain(h); /* the request */
}

/* The Sec-WebSocket-Key line of a request, into key[25]. */
static void request_key(const struct stp_buf *req, char key[25])
{
    const char *k = memmem(req->data, req->len, "Sec-WebSocket-Key: ", 19);
    cr_assert_not_null(k);
    memcpy(key, k + 19, 24);
    key[24] = '\0';
}

Test(ws_client, request_is_a_valid_upgrade)
{
    struct harness c;
    client_init(&c, &client_cfg);
    cr_assert_eq(stp_ws_state(c.ws), STP_WS_HANDSHAKE);
    const char *start = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:15674\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Key: ";
    cr_assert(c.out.len > strlen(start) && memcmp(c.out.data, start, strlen(start)) == 0);
    cr_assert(h_out_has(&c, "\r\nSec-WebSocket-Version: 13\r\n"));
    cr_assert(h_out_has(&c, "\r\nSec-WebSocket-Protocol: v12.stomp, v11.stomp, v10.stomp\r\n"));
    cr_assert(!h_out_has(&c, "Origin"));
    cr_assert_eq(memcmp(c.out.data + c.out.len - 4, "\r\n\r\n", 4), 0);
    char key[25], accept[29];
    request_key(&c.out, key);
    cr_assert_eq(stp_ws_accept_key(key, 24, accept), 0, "key %s is 16 base64 bytes", key);

    /* Another client has another key. */
    struct harness d;
    client_init(&d, &client_cfg);
    char key2[25];
    request_key(&d.out, key2);
    cr_assert_str_neq(key, key2);
    h_fini(&c);
    h_fini(&d);
}

Test(ws_client, request_options)
{
    struct stp_ws_client_config cfg = client_cfg;
    cfg.protocols = "";
    cfg.origin = "http://localhost:8080";
    struct harness c;
    client_init(&c, &cfg);
    cr_assert(!h_out_has(&c, "Sec-WebSocket-Protocol"));
    cr_assert(h_out_has(&c, "\r\nOrigin: http://localhost:8080\r\n"));
    h_fini(&c);
}

/* Answer a client's request with the given 101 head (format takes the
 * accept value) and return stp_ws_feed's result. */
static int answer(struct harness *c, const char *fmt)
{
    char key[25], accept[29], resp[1024];
    request_key(&c->out, key);
    cr_assert_eq(stp_ws_accept_key(key, 24, accept), 0);
    snprintf(resp, sizeof(resp), fmt, accept);
    stp_buf_reset(&c->out);
    return h_feed_str(c, resp);
}

Test(ws_client, accepts_a_good_answer_and_takes_the_subprotocol)
{
    struct harness c;
    client_init(&c, &client_cfg);
    cr_assert_eq(answer(&c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                            "Sec-WebSocket-Protocol: v11.stomp\r\n\r\n"),
                 0);
    cr_assert_eq(c.opened, 1);
    cr_assert_str_eq(c.subprotocol, "v11.stomp");
    cr_assert_eq(stp_ws_state(c.ws), STP_WS_OPEN);
    cr_assert_eq(stp_ws_http_status(c.ws), 101);
    h_fini(&c);

    client_init(&c, &client_cfg);
    cr_assert_eq(answer(&c, "HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nconnection: upgrade\r\n"
                            "sec-websocket-accept: %s\r\n\r\n"),
                 0);
    cr_assert_eq(c.opened, 1);
    cr_assert_null(c.subprotocol);
    h_fini(&c);
}

static void refused(const char *fmt, int status)
{
    struct harness c;
    client_init(&c, &client_cfg);
    cr_assert_eq(answer(&c, fmt), STP_EWS, "%s", fmt);
    cr_assert_eq(c.opened, 0);
    cr_assert_eq(stp_ws_state(c.ws), STP_WS_DONE);
    cr_assert_eq(stp_ws_http_status(c.ws), status);
    h_fini(&c);
}

Test(ws_client, refuses_bad_answers)
{
    refused("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n%s", 404);
    refused("HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\n"
            "Sec-WebSocket-Version: 13\r\nX: %s\r\n\r\n",
            426);
    refused("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Accept: x%s\r\n\r\n",
            101);
    refused("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nX-Accept: %s\r\n\r\n",
            101);
    refused("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: %s\r\n\r\n",
            101);
    refused("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            "Sec-WebSocket-Accept: %s\r\n\r\n",
            101);
    refused("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
            101);
    refused("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: v12.stomp, stomp\r\n\r\n",
            101);
    refused("HTTP/1.1 200 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Accept: %s\r\n\r\n",
            200);
    refused("NOT HTTP %s\r\n\r\n", 0);
}

/* --- a client and a server engine talking through memory ---------------- */

struct pair {
    struct harness c, s;
    size_t c_sent, s_sent; /* bytes of each side's output already delivered */
};

/* Move every byte each side produced to the other until both are quiet. */
static void pump(struct pair *p)
{
    bool moved = true;
    while (moved) {
        moved = false;
        if (p->c.out.len > p->c_sent) {
            size_t n = p->c.out.len - p->c_sent;
            p->c_sent += n;
            h_feed(&p->s, p->c.out.data + p->c_sent - n, n);
            moved = true;
        }
        if (p->s.out.len > p->s_sent) {
            size_t n = p->s.out.len - p->s_sent;
            p->s_sent += n;
            h_feed(&p->c, p->s.out.data + p->s_sent - n, n);
            moved = true;
        }
    }
}

static void pair_open(struct pair *p)
{
    memset(p, 0, sizeof(*p));
    client_init(&p->c, &client_cfg);
    h_init(&p->s, 1 << 20);
    pump(p);
    cr_assert_eq(p->s.opened, 1);
    cr_assert_eq(p->c.opened, 1);
    cr_assert_str_eq(p->s.subprotocol, "v12.stomp");
    cr_assert_str_eq(p->c.subprotocol, "v12.stomp");
}

static void pair_fini(struct pair *p)
{
    h_fini(&p->c);
    h_fini(&p->s);
}

Test(ws_client, talks_to_a_server_engine)
{
    struct pair p;
    pair_open(&p);
    /* Client -> server: stp_ws_send masks. */
    cr_assert_eq(stp_ws_send(p.c.ws, STP_WS_OP_TEXT, "CONNECT\n\n\0", 10), 0);
    h_drain(&p.c);
    cr_assert_eq((uint8_t)p.c.out.data[p.c_sent + 1] & 0x80, 0x80, "client frames are masked");
    /* Server -> client: stp_ws_send does not. */
    cr_assert_eq(stp_ws_send(p.s.ws, STP_WS_OP_BINARY, "CONNECTED\n\n\0", 12), 0);
    h_drain(&p.s);
    cr_assert_eq((uint8_t)p.s.out.data[p.s_sent + 1] & 0x80, 0);
    pump(&p);
    cr_assert_eq(p.s.nmsgs, 1);
    cr_assert_eq(memcmp(p.s.msgs.data, "CONNECT\n\n\0", 10), 0);
    cr_assert_eq(p.c.nmsgs, 1);
    cr_assert(p.c.msg_binary[0]);
    cr_assert_eq(memcmp(p.c.msgs.data, "CONNECTED\n\n\0", 12), 0);

    /* A ping from the client comes back as a pong; fragments from the client
     * with the zero-copy helpers. */
    cr_assert_eq(stp_ws_send(p.c.ws, STP_WS_OP_PING, "hb", 2), 0);
    h_drain(&p.c);
    h_frame(&p.c.out, STP_WS_OP_TEXT, false, "SEND\n\n", 6);
    h_frame(&p.c.out, STP_WS_OP_CONT, true, "x\0", 2);
    pump(&p);
    cr_assert_eq(p.s.nmsgs, 2);
    cr_assert_eq(p.s.msg_len[1], 8);
    cr_assert_eq(memcmp(p.s.msgs.data + 10, "SEND\n\nx\0", 8), 0);
    cr_assert_eq(p.c.nmsgs, 1); /* the pong is not a message */

    /* The client closes: the server echoes, both are done. */
    cr_assert_eq(stp_ws_close(p.c.ws, STP_WS_CLOSE_NORMAL, "bye"), 0);
    h_drain(&p.c);
    pump(&p);
    cr_assert_eq(p.s.closed, 1);
    cr_assert_eq(p.s.close_code, 1000);
    cr_assert(p.s.close_by_peer);
    cr_assert_eq(p.c.closed, 1);
    cr_assert(!p.c.close_by_peer);
    cr_assert_eq(stp_ws_state(p.s.ws), STP_WS_DONE);
    cr_assert_eq(stp_ws_state(p.c.ws), STP_WS_DONE);
    pair_fini(&p);
}

Test(ws_client, server_close_reaches_the_client)
{
    struct pair p;
    pair_open(&p);
    cr_assert_eq(stp_ws_close(p.s.ws, STP_WS_CLOSE_TOO_BIG, "too big"), 0);
    h_drain(&p.s);
    pump(&p);
    cr_assert_eq(p.c.closed, 1);
    cr_assert_eq(p.c.close_code, 1009);
    cr_assert(p.c.close_by_peer);
    pair_fini(&p);
}

Test(ws_client, masked_server_frame_is_a_protocol_error)
{
    struct pair p;
    pair_open(&p);
    struct stp_buf b = STP_BUF_INIT;
    h_frame(&b, STP_WS_OP_TEXT, true, "MESSAGE", 7); /* masked, as a client would */
    int rc = h_feed(&p.c, b.data, b.len);
    cr_assert_eq(rc, STP_ECLOSED);
    cr_assert_eq(p.c.nmsgs, 0);
    cr_assert_eq(p.c.close_code, 1002);
    /* The client's close frame is masked. */
    size_t n = p.c.out.len - p.c_sent;
    const uint8_t *f = (const uint8_t *)p.c.out.data + p.c_sent;
    cr_assert_eq(n, 6 + 2 + strlen("bad masking"));
    cr_assert_eq(f[0], 0x88);
    cr_assert_eq(f[1], 0x80 | (n - 6));
    uint8_t payload[2];
    memcpy(payload, f + 6, 2);
    stp_ws_mask(payload, 2, f + 2, 0);
    cr_assert_eq((payload[0] << 8) | payload[1], 1002);
    stp_buf_free(&b);
    pair_fini(&p);
}

Test(ws_client, answer_with_pipelined_frame_split_at_every_byte)
{
    /* The 101 and the server's first frame in one stream, cut everywhere.
     * Each engine has its own key, so the answer's accept is patched in. */
    struct stp_buf b = STP_BUF_INIT;
    stp_buf_append_str(&b, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Accept: "
                           "............................\r\n\r\n\x81\x0a"
                           "CONNECTED\n");
    char *accept_at = (char *)memmem(b.data, b.len, "Accept: ", 8) + 8;
    for (size_t cut = 0; cut <= b.len; cut++) {
        struct harness e;
        client_init(&e, &client_cfg);
        char key[25], accept[29];
        request_key(&e.out, key);
        cr_assert_eq(stp_ws_accept_key(key, 24, accept), 0);
        memcpy(accept_at, accept, 28);
        cr_assert_eq(h_feed(&e, b.data, cut), 0);
        cr_assert_eq(h_feed(&e, b.data + cut, b.len - cut), 0);
        cr_assert_eq(e.opened, 1, "cut %zu", cut);
        cr_assert_eq(e.nmsgs, 1, "cut %zu", cut);
        cr_assert_eq(memcmp(e.msgs.data, "CONNECTED\n", 10), 0);
        h_fini(&e);
    }
    stp_buf_free(&b);
}

Test(ws_client, masks_change_from_frame_to_frame)
{
    struct pair p;
    pair_open(&p);
    uint8_t masks[4][4];
    for (int i = 0; i < 4; i++) {
        size_t at = p.c.out.len;
        cr_assert_eq(stp_ws_send(p.c.ws, STP_WS_OP_TEXT, "x", 1), 0);
        h_drain(&p.c);
        cr_assert_eq(p.c.out.len, at + 7);
        memcpy(masks[i], p.c.out.data + at + 2, 4);
    }
    int same = 0;
    for (int i = 1; i < 4; i++)
        same += memcmp(masks[i], masks[0], 4) == 0;
    cr_assert_lt(same, 3, "every frame had the same mask");
    pump(&p);
    cr_assert_eq(p.s.nmsgs, 4);
    cr_assert_eq(memcmp(p.s.msgs.data, "xxxx", 4), 0);
    pair_fini(&p);
}

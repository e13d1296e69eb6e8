/*
 * ws_client.c - the client side of the engine, for stampede-bench and the
 * tests: the upgrade request (random Sec-WebSocket-Key, STOMP subprotocols
 * offered), the check of the server's answer (101, Upgrade, Connection,
 * Sec-WebSocket-Accept, a subprotocol we offered) and the masking keys of
 * the client's frames. Frames after the upgrade are ws_frame.c's, with the
 * masking rule reversed. One thread, like every engine.
 */
#include "ws_internal.h"

#include "stampede/error.h"

#include <mbedtls/base64.h>

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define DEFAULT_PROTOCOLS "v12.stomp, v11.stomp, v10.stomp"

/* 64 bits from the kernel, or from the clock and an address if it has none
 * to give without blocking. Seeds the key and the masks: RFC 6455 wants
 * masks an attacker cannot predict from a browser; a load generator only
 * needs them to differ. */
static uint64_t seed(const void *salt)
{
    uint64_t s = 0;
    if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)salt;
    }
    return s ? s : 0x2545f4914f6cdd1dULL;
}

/* xorshift64* */
static uint64_t next_random(struct stp_ws *ws)
{
    uint64_t x = ws->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    ws->rng = x;
    return x * 0x2545f4914f6cdd1dULL;
}

void stp_ws__client_mask(struct stp_ws *ws, uint8_t mask[4])
{
    uint32_t m = (uint32_t)(next_random(ws) >> 32);
    memcpy(mask, &m, 4);
}

static void make_key(struct stp_ws *ws)
{
    uint8_t raw[16];
    uint64_t a = next_random(ws), b = next_random(ws);
    memcpy(raw, &a, 8);
    memcpy(raw + 8, &b, 8);
    size_t olen = 0;
    int rc = mbedtls_base64_encode((unsigned char *)ws->key, sizeof(ws->key), &olen, raw, 16);
    assert(rc == 0 && olen == 24);
    (void)rc;
}

static int write_request(struct stp_ws *ws, const struct stp_ws_client_config *cfg)
{
    const char *protocols = cfg->protocols ? cfg->protocols : DEFAULT_PROTOCOLS;
    char head[STP_WS_MAX_HEAD];
    int len = snprintf(head, sizeof(head),
                       "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                       "Sec-WebSocket-Version: 13\r\n%s%s%s%s%s%s\r\n",
                       cfg->path, cfg->host, ws->key, *protocols ? "Sec-WebSocket-Protocol: " : "",
                       protocols, *protocols ? "\r\n" : "", cfg->origin ? "Origin: " : "",
                       cfg->origin ? cfg->origin : "", cfg->origin ? "\r\n" : "");
    if (len < 0 || (size_t)len >= sizeof(head))
        return STP_EINVAL;
    return stp_buf_append(&ws->out, head, (size_t)len);
}

struct stp_ws *stp_ws_client_new(const struct stp_ws_client_config *cfg,
                                 const struct stp_ws_ops *ops, void *ud)
{
    assert(cfg && cfg->host && cfg->path && cfg->max_message > 0 && ops);
    struct stp_ws *ws = calloc(1, sizeof(*ws));
    if (!ws)
        return NULL;
    ws->client = true;
    ws->ops = ops;
    ws->ud = ud;
    ws->max_message = cfg->max_message;
    ws->state = STP_WS_HANDSHAKE;
    ws->rng = seed(ws);
    make_key(ws);
    stp_ws__http_init(ws, HTTP_RESPONSE);
    if (write_request(ws, cfg) < 0)
        stp_ws_free(&ws);
    return ws;
}

/* The subprotocol the server picked, as one of our static names; "" when
 * it picked none; NULL when it picked something we do not know. */
static const char *picked_protocol(const struct stp_ws *ws)
{
    const struct stp_buf *b = &ws->hdr[WS_H_PROTOCOL];
    if (!ws->seen[WS_H_PROTOCOL])
        return "";
    size_t n = b->len;
    const char *v = stp_ws__trim(b->data ? b->data : "", &n);
    const char *known = stp_ws_choose_subprotocol(v, n);
    return known && strlen(known) == n ? known : NULL;
}

static bool accept_matches(const struct stp_ws *ws)
{
    char want[29];
    int rc = stp_ws_accept_key(ws->key, strlen(ws->key), want);
    assert(rc == 0);
    (void)rc;
    size_t n = ws->hdr[WS_H_ACCEPT].len;
    const char *got = stp_ws__trim(ws->hdr[WS_H_ACCEPT].data ? ws->hdr[WS_H_ACCEPT].data : "", &n);
    return n == 28 && memcmp(got, want, 28) == 0;
}

void stp_ws__client_judge(struct stp_ws *ws)
{
    ws->http_status = llhttp_get_status_code(&ws->http);
    bool ok = ws->http_status == 101 && stp_ws__has_token(&ws->hdr[WS_H_UPGRADE], "websocket") &&
              stp_ws__has_token(&ws->hdr[WS_H_CONNECTION], "upgrade") && accept_matches(ws) &&
              picked_protocol(ws) != NULL;
    ws->verdict = ok ? WS_V_UPGRADE : WS_V_ERROR;
}

void stp_ws__client_conclude(struct stp_ws *ws)
{
    const char *protocol = NULL;
    int rc = STP_EWS;
    if (ws->verdict == WS_V_UPGRADE) {
        protocol = picked_protocol(ws);
        rc = stp_ws__frames_init(ws);
    }
    stp_ws__http_release(ws);
    if (rc < 0) {
        ws->err = rc;
        ws->state = STP_WS_DONE;
        return;
    }
    ws->state = STP_WS_OPEN;
    if (ws->ops->on_open)
        ws->ops->on_open(ws->ud, *protocol ? protocol : NULL);
}

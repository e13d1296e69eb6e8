/*
 * ws.c - the WebSocket engine's life cycle, its dispatch of fed bytes
 * (request head first, then frames) and its output buffer. The contract is
 * in include/stampede/ws.h. One engine per connection, used only on the
 * connection's worker thread.
 */
#include "ws_internal.h"

#include "stampede/error.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

struct stp_ws *stp_ws_new(const struct stp_ws_config *cfg, const struct stp_ws_ops *ops, void *ud)
{
    assert(cfg && cfg->path && cfg->max_message > 0 && ops);
    struct stp_ws *ws = calloc(1, sizeof(*ws));
    if (!ws)
        return NULL;
    ws->cfg = cfg;
    ws->ops = ops;
    ws->ud = ud;
    ws->max_message = cfg->max_message;
    ws->state = STP_WS_HANDSHAKE;
    stp_ws__http_init(ws, HTTP_REQUEST);
    return ws;
}

void stp_ws_free(struct stp_ws **wsp)
{
    struct stp_ws *ws = *wsp;
    if (!ws)
        return;
    stp_ws__http_release(ws);
    stp_ws__frames_release(ws);
    stp_buf_free(&ws->out);
    free(ws);
    *wsp = NULL;
}

static int feed_result(struct stp_ws *ws)
{
    if (ws->err) {
        ws->state = STP_WS_DONE;
        return ws->err;
    }
    return ws->state == STP_WS_DONE ? STP_ECLOSED : 0;
}

int stp_ws_feed(struct stp_ws *ws, const uint8_t *p, size_t n)
{
    if (ws->state == STP_WS_HANDSHAKE) {
        size_t used = stp_ws__http_feed(ws, p, n);
        assert(used <= n);
        p += used;
        n -= used;
    }
    if (ws->state == STP_WS_OPEN && n > 0)
        stp_ws__frames_feed(ws, p, n);
    return feed_result(ws);
}

enum stp_ws_state stp_ws_state(const struct stp_ws *ws)
{
    return ws->state;
}

const uint8_t *stp_ws_out(const struct stp_ws *ws, size_t *len)
{
    *len = ws->out.len;
    return ws->out.len ? (const uint8_t *)ws->out.data : NULL;
}

void stp_ws_out_consume(struct stp_ws *ws, size_t n)
{
    assert(n <= ws->out.len);
    stp_buf_consume(&ws->out, n);
}

void stp_ws_set_max_message(struct stp_ws *ws, uint64_t max)
{
    assert(max > 0);
    ws->max_message = max;
}

uint16_t stp_ws_close_code(const struct stp_ws *ws)
{
    return ws->close_code;
}

const char *stp_ws_http_authorization(const struct stp_ws *ws, size_t *len)
{
    const struct stp_buf *h = &ws->hdr[WS_H_AUTHORIZATION];
    bool have = ws->seen[WS_H_AUTHORIZATION] && h->data;
    *len = have ? h->len : 0;
    return have ? h->data : NULL;
}

int stp_ws_http_status(const struct stp_ws *ws)
{
    return ws->http_status;
}

int stp_ws_http_reply(struct stp_ws *ws, int status, const char *content_type, const void *body,
                      size_t n)
{
    return stp_ws_http_reply_ex(ws, status, NULL, content_type, body, n);
}

int stp_ws_http_reply_ex(struct stp_ws *ws, int status, const char *extra_headers,
                         const char *content_type, const void *body, size_t n)
{
    if (ws->state != STP_WS_HTTP)
        return STP_EINVAL;
    ws->state = STP_WS_DONE;
    int rc = stp_ws__http_answer(ws, status, extra_headers, content_type, body, n);
    if (rc < 0)
        ws->err = rc;
    return rc;
}

size_t stp_ws__frame(struct stp_ws *ws, uint8_t *out, int opcode, const void *p, size_t n)
{
    if (!ws->client) {
        size_t hlen = stp_ws_frame_header(out, opcode, n);
        if (n)
            memcpy(out + hlen, p, n);
        return hlen + n;
    }
    uint8_t mask[4];
    stp_ws__client_mask(ws, mask);
    size_t hlen = stp_ws_client_frame_header(out, opcode, true, n, mask);
    if (n) {
        memcpy(out + hlen, p, n);
        stp_ws_mask(out + hlen, n, mask, 0);
    }
    return hlen + n;
}

int stp_ws__out_frame(struct stp_ws *ws, int opcode, const void *p, size_t n)
{
    int rc = stp_buf_reserve(&ws->out, 14 + n);
    if (rc < 0)
        return rc;
    ws->out.len += stp_ws__frame(ws, (uint8_t *)ws->out.data + ws->out.len, opcode, p, n);
    return 0;
}

int stp_ws_send(struct stp_ws *ws, int opcode, const void *p, size_t n)
{
    if (ws->state != STP_WS_OPEN)
        return STP_ECLOSED;
    if ((opcode & 0x8) && n > 125)
        return STP_EINVAL;
    return stp_ws__out_frame(ws, opcode, p, n);
}

void stp_ws__fail(struct stp_ws *ws, uint16_t code, const char *reason, bool by_peer)
{
    assert(ws->state == STP_WS_OPEN);
    uint8_t payload[125];
    size_t rlen = reason ? strlen(reason) : 0;
    if (rlen > sizeof(payload) - 2)
        rlen = sizeof(payload) - 2;
    payload[0] = (uint8_t)(code >> 8);
    payload[1] = (uint8_t)code;
    if (rlen)
        memcpy(payload + 2, reason, rlen);
    int rc = stp_ws__out_frame(ws, STP_WS_OP_CLOSE, payload, 2 + rlen);
    if (rc < 0)
        ws->err = rc;
    ws->state = STP_WS_DONE;
    ws->close_code = code;
    if (ws->ops->on_close)
        ws->ops->on_close(ws->ud, code, by_peer);
}

int stp_ws_close(struct stp_ws *ws, uint16_t code, const char *reason)
{
    switch (ws->state) {
    case STP_WS_DONE:
        return STP_ECLOSED;
    case STP_WS_OPEN:
        stp_ws__fail(ws, code, reason, false);
        return 0;
    default:
        ws->state = STP_WS_DONE;
        return 0;
    }
}

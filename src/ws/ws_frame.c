/*
 * ws_frame.c - the engine's frame side after the upgrade. wslay's frame
 * layer (wslay_frame_recv over the bytes of the current feed) finds frame
 * boundaries, unmasks payloads and rejects malformed headers (control frame
 * over 125 bytes or fragmented, non-minimal or 2^63+ lengths). Above it this
 * file keeps RFC 6455's message rules: client frames masked and server
 * frames not (an engine can be either side), no reserved bits or
 * opcodes, fragments reassembled in order with control frames allowed in
 * between, a size bound checked from each frame header before any payload
 * is buffered, UTF-8 for text messages, pings answered, the close handshake.
 * A message that arrives whole in one chunk is delivered without a copy.
 * Engine-private; one thread.
 */
#include "ws_internal.h"

#include "stampede/error.h"

#include <assert.h>
#include <string.h>

/* wslay pulls the current feed's bytes through this. */
static ssize_t recv_cb(uint8_t *buf, size_t len, int flags, void *user_data)
{
    struct stp_ws *ws = user_data;
    (void)flags;
    if (ws->in_len == 0)
        return -1; /* wslay_frame_recv answers WSLAY_ERR_WANT_READ */
    size_t n = ws->in_len < len ? ws->in_len : len;
    memcpy(buf, ws->in, n);
    ws->in += n;
    ws->in_len -= n;
    return (ssize_t)n;
}

static ssize_t send_cb(const uint8_t *data, size_t len, int flags, void *user_data)
{
    (void)data, (void)len, (void)flags, (void)user_data;
    return -1; /* the engine writes its frames itself (stp_ws__out_frame) */
}

static int genmask_cb(uint8_t *buf, size_t len, void *user_data)
{
    (void)buf, (void)len, (void)user_data;
    return -1; /* a server does not mask */
}

static const struct wslay_frame_callbacks frame_callbacks = {
    .send_callback = send_cb,
    .recv_callback = recv_cb,
    .genmask_callback = genmask_cb,
};

int stp_ws__frames_init(struct stp_ws *ws)
{
    assert(!ws->fctx);
    if (wslay_frame_context_init(&ws->fctx, &frame_callbacks, ws) != 0)
        return STP_ENOMEM;
    return 0;
}

void stp_ws__frames_release(struct stp_ws *ws)
{
    if (ws->fctx)
        wslay_frame_context_free(ws->fctx);
    ws->fctx = NULL;
    stp_buf_free(&ws->msg);
}

/* Messages above this leave their buffer to the allocator once delivered. */
#define MSG_KEEP_CAP (64 * 1024)

static void deliver(struct stp_ws *ws, const uint8_t *p, size_t n, uint8_t op)
{
    if (!p)
        p = (const uint8_t *)""; /* an empty message still gets a pointer */
    if (op == STP_WS_OP_TEXT && !stp_ws_utf8_valid(p, n)) {
        stp_ws__fail(ws, STP_WS_CLOSE_BAD_DATA, "invalid UTF-8", false);
        return;
    }
    if (ws->ops->on_message)
        ws->ops->on_message(ws->ud, p, n, op == STP_WS_OP_BINARY);
}

static bool close_code_valid(uint16_t code)
{
    if (code >= 3000 && code <= 4999)
        return true;
    return code >= 1000 && code <= 1014 && code != 1004 && code != 1005 && code != 1006;
}

static void on_peer_close(struct stp_ws *ws)
{
    if (ws->ctrl_len == 0) {
        stp_ws__fail(ws, STP_WS_CLOSE_NORMAL, NULL, true);
        return;
    }
    uint16_t code = (uint16_t)(ws->ctrl[0] << 8 | ws->ctrl[1]);
    if (ws->ctrl_len == 1 || !close_code_valid(code))
        stp_ws__fail(ws, STP_WS_CLOSE_PROTOCOL, "bad close frame", false);
    else if (!stp_ws_utf8_valid(ws->ctrl + 2, ws->ctrl_len - 2))
        stp_ws__fail(ws, STP_WS_CLOSE_BAD_DATA, "invalid UTF-8", false);
    else
        stp_ws__fail(ws, code, NULL, true);
}

static void control_end(struct stp_ws *ws)
{
    switch (ws->frame_op) {
    case STP_WS_OP_PING: {
        int rc = stp_ws__out_frame(ws, STP_WS_OP_PONG, ws->ctrl, ws->ctrl_len);
        if (rc < 0)
            ws->err = rc;
        break;
    }
    case STP_WS_OP_CLOSE:
        on_peer_close(ws);
        break;
    default:
        break; /* pong: nothing to do */
    }
}

/* A new frame's header: check it against the message rules. */
static bool frame_start(struct stp_ws *ws, const struct wslay_frame_iocb *io)
{
    ws->frame_op = io->opcode;
    ws->frame_len = io->payload_length;
    ws->frame_got = 0;
    ws->frame_fin = io->fin;
    ws->ctrl_len = 0;
    ws->direct = false;
    /* Clients mask, servers do not (RFC 6455 section 5.1). */
    if (io->mask == ws->client || io->rsv) {
        stp_ws__fail(ws, STP_WS_CLOSE_PROTOCOL, io->rsv ? "reserved bits" : "bad masking", false);
        return false;
    }
    switch (io->opcode) {
    case STP_WS_OP_PING:
    case STP_WS_OP_PONG:
    case STP_WS_OP_CLOSE:
        return true; /* wslay checked FIN and the 125-byte bound */
    case STP_WS_OP_TEXT:
    case STP_WS_OP_BINARY:
        if (ws->msg_active)
            break;
        ws->msg_active = true;
        ws->msg_op = io->opcode;
        assert(ws->msg.len == 0);
        ws->direct = io->fin && io->data_length == io->payload_length;
        goto size_check;
    case STP_WS_OP_CONT:
        if (!ws->msg_active)
            break;
        goto size_check;
    default:
        break;
    }
    stp_ws__fail(ws, STP_WS_CLOSE_PROTOCOL, "unexpected opcode", false);
    return false;
size_check:
    if (ws->msg.len > ws->max_message || io->payload_length > ws->max_message - ws->msg.len) {
        stp_ws__fail(ws, STP_WS_CLOSE_TOO_BIG, "message too big", false);
        return false;
    }
    return true;
}

static void data_end(struct stp_ws *ws, const struct wslay_frame_iocb *io)
{
    if (!ws->frame_fin)
        return;
    ws->msg_active = false;
    if (ws->direct) {
        deliver(ws, io->data, io->data_length, ws->msg_op);
        return;
    }
    deliver(ws, (const uint8_t *)ws->msg.data, ws->msg.len, ws->msg_op);
    if (ws->msg.cap > MSG_KEEP_CAP)
        stp_buf_free(&ws->msg);
    else
        stp_buf_reset(&ws->msg);
}

/* One chunk of payload (possibly empty) of the current frame. */
static void frame_chunk(struct stp_ws *ws, const struct wslay_frame_iocb *io)
{
    bool control = (ws->frame_op & 0x8) != 0;
    if (control) {
        assert(ws->ctrl_len + io->data_length <= sizeof(ws->ctrl));
        memcpy(ws->ctrl + ws->ctrl_len, io->data, io->data_length);
        ws->ctrl_len += io->data_length;
    } else if (!ws->direct && io->data_length > 0) {
        int rc = stp_buf_append(&ws->msg, io->data, io->data_length);
        if (rc < 0) {
            ws->err = rc;
            stp_ws__fail(ws, STP_WS_CLOSE_INTERNAL, NULL, false);
            return;
        }
    }
    ws->frame_got += io->data_length;
    assert(ws->frame_got <= ws->frame_len);
    if (ws->frame_got < ws->frame_len)
        return;
    ws->in_frame = false;
    if (control)
        control_end(ws);
    else
        data_end(ws, io);
}

void stp_ws__frames_feed(struct stp_ws *ws, const uint8_t *p, size_t n)
{
    assert(ws->state == STP_WS_OPEN && ws->fctx);
    ws->in = p;
    ws->in_len = n;
    while (ws->state == STP_WS_OPEN && !ws->err) {
        struct wslay_frame_iocb io;
        memset(&io, 0, sizeof(io));
        ssize_t r = wslay_frame_recv(ws->fctx, &io);
        if (r == WSLAY_ERR_WANT_READ)
            break;
        if (r < 0) {
            stp_ws__fail(ws, STP_WS_CLOSE_PROTOCOL, "malformed frame", false);
            break;
        }
        if (!ws->in_frame) {
            if (!frame_start(ws, &io))
                break;
            ws->in_frame = true;
        }
        frame_chunk(ws, &io);
    }
    ws->in = NULL;
    ws->in_len = 0;
}

/*
 * ws_internal.h - the WebSocket engine's state, shared by the files of
 * src/ws/ (ws.c: life cycle and output; ws_http.c: request head and HTTP
 * answers; ws_client.c: the client side of the handshake; ws_frame.c:
 * frames and messages; ws_util.c: pure helpers).
 * Owned by one worker thread, like the engine itself.
 */
#ifndef STAMPEDE_WS_INTERNAL_H
#define STAMPEDE_WS_INTERNAL_H

#include "stampede/buf.h"
#include "stampede/ws.h"

#include <llhttp.h>
#include <wslay/wslay.h>

/* Headers the handshake looks at (requests; WS_H_ACCEPT in responses). */
enum ws_hdr {
    WS_H_HOST,
    WS_H_UPGRADE,
    WS_H_CONNECTION,
    WS_H_VERSION,
    WS_H_KEY,
    WS_H_PROTOCOL,
    WS_H_ORIGIN,
    WS_H_ACCEPT,
    WS_H_AUTHORIZATION, /* kept for the endpoints (/metrics behind --metrics-auth) */
    WS_H__COUNT,
    WS_H_NONE = WS_H__COUNT,
};

/* What the request head asked for, decided when it is complete. */
enum ws_verdict {
    WS_V_PENDING = 0,
    WS_V_UPGRADE,
    WS_V_HEALTHZ,
    WS_V_METRICS,
    WS_V_ERROR, /* ws->http_status says which answer */
};

struct stp_ws {
    const struct stp_ws_config *cfg; /* server side; NULL for a client */
    bool client;
    uint64_t max_message;
    uint64_t rng; /* client: xorshift state for masks */
    char key[25]; /* client: the Sec-WebSocket-Key sent */
    const struct stp_ws_ops *ops;
    void *ud;
    enum stp_ws_state state;
    struct stp_buf out; /* engine-produced bytes the caller drains */
    int http_status;
    int err; /* STP_ENOMEM once memory ran out (then DONE) */
    uint16_t close_code;

    /* Handshake (released once OPEN). */
    llhttp_t http;
    size_t head_len; /* request-head bytes given to llhttp */
    struct stp_buf url;
    struct stp_buf field; /* header name being read */
    struct stp_buf hdr[WS_H__COUNT];
    bool seen[WS_H__COUNT];
    bool bad_head;   /* a header name that is not a token, or a second Host: 400 */
    enum ws_hdr cur; /* header whose value is being read */
    enum ws_verdict verdict;

    /* Frames (set up at the upgrade). */
    wslay_frame_context_ptr fctx;
    const uint8_t *in; /* bytes of the current feed not yet given to wslay */
    size_t in_len;
    bool in_frame; /* a frame's header was seen, payload incomplete */
    uint8_t frame_op;
    uint64_t frame_len, frame_got;
    bool frame_fin;
    bool direct;     /* whole message arrived in one chunk: no copy */
    bool msg_active; /* a data message is being reassembled */
    uint8_t msg_op;
    struct stp_buf msg;
    uint8_t ctrl[125];
    size_t ctrl_len;
};

/* ws_http.c */
void stp_ws__http_init(struct stp_ws *ws, llhttp_type_t type);
void stp_ws__http_release(struct stp_ws *ws);
/* Feed request bytes; returns how many belong to the request head (the
 * rest, if the engine went OPEN, are frames). */
size_t stp_ws__http_feed(struct stp_ws *ws, const uint8_t *p, size_t n);
/* Append "HTTP/1.1 status reason" + headers + body to ws->out. */
int stp_ws__http_answer(struct stp_ws *ws, int status, const char *extra_headers,
                        const char *content_type, const void *body, size_t n);

/* Trim optional whitespace (SP, HTAB) around s[0..*n); s may be NULL if
 * *n is 0. Is tok (ASCII case ignored) an item of the comma list in b? */
const char *stp_ws__trim(const char *s, size_t *n);
bool stp_ws__has_token(const struct stp_buf *b, const char *tok);

/* ws_client.c: judge the response head / act on it (client engines). */
void stp_ws__client_judge(struct stp_ws *ws);
void stp_ws__client_conclude(struct stp_ws *ws);
/* A fresh masking key for the next client frame. */
void stp_ws__client_mask(struct stp_ws *ws, uint8_t mask[4]);

/* ws_frame.c */
int stp_ws__frames_init(struct stp_ws *ws);
void stp_ws__frames_release(struct stp_ws *ws);
void stp_ws__frames_feed(struct stp_ws *ws, const uint8_t *p, size_t n);

/* ws.c */
/* Write a whole frame (masked for a client) into out, which has room for
 * 14 + n bytes; returns its length. */
size_t stp_ws__frame(struct stp_ws *ws, uint8_t *out, int opcode, const void *p, size_t n);
/* Append a whole frame (masked for a client) to ws->out. */
int stp_ws__out_frame(struct stp_ws *ws, int opcode, const void *p, size_t n);
/* Queue a close frame with code (and reason), report it, go DONE. */
void stp_ws__fail(struct stp_ws *ws, uint16_t code, const char *reason, bool by_peer);

#endif

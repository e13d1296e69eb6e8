/*
 * ws.h - the WebSocket engine: HTTP/1.1 Upgrade (llhttp) and RFC 6455
 * frames (wslay's frame layer), plus the plain HTTP answers of the WebSocket
 * listener (/healthz, /metrics, errors). Transport-independent: no sockets,
 * no timers, no I/O inside. Bytes go in with stp_ws_feed(), events come out
 * through the ops callbacks, and the bytes the engine produces (HTTP
 * answers, pong and close frames) wait in one output buffer the caller
 * drains (see "Output" below).
 *
 * Threads: an engine belongs to one worker thread (the connection's); no
 * locks, nothing blocks. The free functions (accept key, subprotocol choice,
 * frame headers, UTF-8) are pure and thread-safe.
 *
 * Life of an engine (see enum stp_ws_state):
 *   HANDSHAKE  reading the HTTP request head (at most STP_WS_MAX_HEAD bytes).
 *              Decided when the head is complete, in this order:
 *                malformed HTTP                          -> 400, DONE
 *                head over STP_WS_MAX_HEAD bytes         -> 431, DONE
 *                method other than GET                   -> 405 + Allow: GET, DONE
 *                path /healthz or /metrics               -> on_http(), state HTTP
 *                path other than cfg->path (query ignored) -> 404, DONE
 *                then, for cfg->path:
 *                HTTP/1.0, no Host, or a request body    -> 400, DONE
 *                Origin present, list non-empty, not in it -> 403, DONE
 *                  (a request without Origin is not a browser's and passes)
 *                no Upgrade token "websocket" or no Connection token
 *                "upgrade" (both any case)               -> 426 + Upgrade: websocket, DONE
 *                Sec-WebSocket-Version not 13            -> 426 + Upgrade: websocket
 *                                                     + Sec-WebSocket-Version: 13, DONE
 *                Sec-WebSocket-Key not base64 of 16 bytes -> 400, DONE
 *                else 101 Switching Protocols with Sec-WebSocket-Accept and the
 *                chosen subprotocol (stp_ws_choose_subprotocol), state OPEN,
 *                on_open(); bytes after the request head in the same feed are
 *                frames and are processed at once (a client may pipeline).
 *              Every error answer carries Content-Type: text/plain,
 *              Content-Length and Connection: close.
 *   HTTP       an endpoint request was reported; the caller answers with
 *              stp_ws_http_reply() (now or later); bytes fed meanwhile are
 *              ignored. Then DONE.
 *   OPEN       frames. Complete messages (text or binary, fragments
 *              reassembled) go to on_message() in order. Pings are answered
 *              with pongs, pongs ignored. The engine closes (close frame,
 *              on_close(code, false), DONE) on: unmasked client frame,
 *              reserved bits or opcode, bad fragmentation, control
 *              frame over 125 bytes or fragmented, non-minimal length ->
 *              1002; invalid UTF-8 in a text message or close reason -> 1007;
 *              a message over cfg->max_message bytes (or the bound set with
 *              stp_ws_set_max_message) -> 1009 (decided from each frame
 *              header, before buffering); out of memory while
 *              reassembling -> 1011 (and STP_ENOMEM). A close from the peer is
 *              answered (its code echoed, 1000 if it had none; 1002 for an
 *              invalid code), on_close(code, true), DONE. The caller closes
 *              with stp_ws_close() (1000 normal, 1008 policy, ...).
 *   DONE       flush the output, then close the socket. Feeding is a
 *              no-op that returns STP_ECLOSED.
 *
 * Output and its order on the wire. The engine appends to its output
 * buffer (stp_ws_out) only WHOLE HTTP answers and WHOLE frames: the 101,
 * error and endpoint answers, pongs, stp_ws_send() frames and, last of all,
 * the close frame (nothing follows it). The caller writes its own data
 * frames (stp_ws_frame_header() + payload iovecs) into its own queue. Rule:
 * move the engine's bytes into that queue (or onto the wire) right after
 * every stp_ws_* call that may produce them - stp_ws_feed, stp_ws_close,
 * stp_ws_send, stp_ws_http_reply - and at the start of every callback
 * (on_open, on_message, on_http) before queuing a frame of your own. Then
 * the 101 precedes every STOMP frame, a pong never lands inside a data
 * frame, and the close frame follows every data frame queued before it.
 * Never put engine bytes between a data frame's header and the end of its
 * payload. Queue no data frame after the engine is DONE.
 *
 * Client engines (stp_ws_client_new, for stampede-bench and tests) start
 * with the upgrade request already in stp_ws_out(); stp_ws_feed() takes the
 * server's answer: a 101 with the right Upgrade, Connection,
 * Sec-WebSocket-Accept and a subprotocol among those offered (or none)
 * opens (on_open), anything else ends the engine with STP_EWS
 * (stp_ws_http_status() gives the status). In OPEN the rules above hold with
 * masking reversed: server frames must be unmasked, and the engine's frames
 * (stp_ws_send, pongs, close) are masked. For zero-copy data frames a client
 * uses stp_ws_client_frame_header() and stp_ws_mask() on its own bytes.
 *
 * Callbacks run inside stp_ws_feed() / stp_ws_http_reply() on the caller's
 * thread. Inside them the caller may call stp_ws_send(), stp_ws_close(),
 * stp_ws_http_reply() and drain the output (stp_ws_out, stp_ws_out_consume);
 * it must not call stp_ws_feed() or stp_ws_free()
 * (close late: free the engine after stp_ws_feed() has returned).
 */
#ifndef STAMPEDE_WS_H
#define STAMPEDE_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest request head (request line + headers + blank line) accepted. */
#define STP_WS_MAX_HEAD 8192

/* RFC 6455 opcodes. */
enum stp_ws_opcode {
    STP_WS_OP_CONT = 0x0,
    STP_WS_OP_TEXT = 0x1,
    STP_WS_OP_BINARY = 0x2,
    STP_WS_OP_CLOSE = 0x8,
    STP_WS_OP_PING = 0x9,
    STP_WS_OP_PONG = 0xa,
};

/* RFC 6455 close codes the engine and the broker use. */
enum stp_ws_close_code {
    STP_WS_CLOSE_NORMAL = 1000,
    STP_WS_CLOSE_GOING_AWAY = 1001,
    STP_WS_CLOSE_PROTOCOL = 1002,
    STP_WS_CLOSE_BAD_DATA = 1007, /* invalid UTF-8 in a text message */
    STP_WS_CLOSE_POLICY = 1008,
    STP_WS_CLOSE_TOO_BIG = 1009,
    STP_WS_CLOSE_INTERNAL = 1011,
};

enum stp_ws_state {
    STP_WS_HANDSHAKE,
    STP_WS_HTTP,
    STP_WS_OPEN,
    STP_WS_DONE,
};

enum stp_ws_endpoint {
    STP_WS_HEALTHZ,
    STP_WS_METRICS,
};

struct stp_ws_config {
    const char *path;             /* the WebSocket path, e.g. "/ws" */
    char *const *allowed_origins; /* exact Origins allowed (ASCII case ignored) */
    size_t nallowed_origins;      /* 0: any Origin */
    uint64_t max_message;         /* largest message (--max-frame-size); > 0 */
};

struct stp_ws_ops {
    /* Upgraded: the 101 answer is in the output buffer. subprotocol is
     * "v12.stomp", "v11.stomp", "v10.stomp", "stomp" or NULL (none agreed). */
    void (*on_open)(void *ud, const char *subprotocol);
    /* GET /healthz or /metrics: answer with stp_ws_http_reply(). */
    void (*on_http)(void *ud, enum stp_ws_endpoint which);
    /* One complete message; p is valid only during the call. For the STOMP
     * session these are STOMP bytes, to be parsed in order (several STOMP
     * frames per message and one frame split over messages both happen). */
    void (*on_message)(void *ud, const uint8_t *p, size_t n, bool binary);
    /* The close handshake happened: by_peer says who started it; code is
     * the code the engine sent. The engine is DONE afterwards. */
    void (*on_close)(void *ud, uint16_t code, bool by_peer);
};

struct stp_ws_client_config {
    const char *host;      /* Host header, e.g. "127.0.0.1:15674" */
    const char *path;      /* e.g. "/ws" */
    const char *protocols; /* Sec-WebSocket-Protocol offer; NULL: the three
                              STOMP versions, "": no header */
    const char *origin;    /* Origin header; NULL: none */
    uint64_t max_message;  /* largest message accepted from the server; > 0 */
};

struct stp_ws;

/* A new engine in HANDSHAKE state. cfg (and the strings it points to) and ops
 * must outlive it. Any op may be NULL. NULL when out of memory. */
struct stp_ws *stp_ws_new(const struct stp_ws_config *cfg, const struct stp_ws_ops *ops, void *ud);
/* A new client engine; the upgrade request waits in stp_ws_out(). cfg is
 * used only during the call. NULL when out of memory or when the request
 * would not fit in STP_WS_MAX_HEAD bytes. */
struct stp_ws *stp_ws_client_new(const struct stp_ws_client_config *cfg,
                                 const struct stp_ws_ops *ops, void *ud);
/* Free the engine and clear *ws. Not from inside its own callbacks. */
void stp_ws_free(struct stp_ws **ws);

/* Feed bytes read from the peer (after TLS, if any). Returns 0 while the
 * connection goes on; STP_ECLOSED once the engine is DONE (drain the output,
 * close the socket after it is flushed); STP_ENOMEM (also DONE); for a
 * client, STP_EWS when the server refused the upgrade (also DONE). */
int stp_ws_feed(struct stp_ws *ws, const uint8_t *p, size_t n);

enum stp_ws_state stp_ws_state(const struct stp_ws *ws);

/* Pending output: *len bytes at the returned pointer (NULL when empty).
 * Valid until the next stp_ws_* call on this engine. */
const uint8_t *stp_ws_out(const struct stp_ws *ws, size_t *len);
/* The caller took (copied or wrote) the first n pending bytes. */
void stp_ws_out_consume(struct stp_ws *ws, size_t n);

/* Answer the reported endpoint request: "HTTP/1.1 <status> <reason>" with
 * Content-Type, Content-Length and Connection: close, then body. The engine
 * is DONE afterwards. 0, STP_EINVAL (not in state HTTP), STP_ENOMEM. */
int stp_ws_http_reply(struct stp_ws *ws, int status, const char *content_type, const void *body,
                      size_t n);
/* The same with extra header lines ("Name: value\r\n" each; at most a few
 * hundred bytes), e.g. WWW-Authenticate on a 401. */
int stp_ws_http_reply_ex(struct stp_ws *ws, int status, const char *extra_headers,
                         const char *content_type, const void *body, size_t n);
/* During on_http: the request's Authorization header (repeated ones joined
 * with ','), or NULL with *len 0 when it had none. Copy what you need: the
 * headers are freed when on_http returns. */
const char *stp_ws_http_authorization(const struct stp_ws *ws, size_t *len);

/* Close: in OPEN, append a close frame with code and reason (reason may be
 * NULL; at most 123 bytes are sent), call on_close(code, false) and go DONE.
 * Before OPEN, go DONE without output (e.g. the caller's request timeout).
 * 0, or STP_ECLOSED when already DONE. */
int stp_ws_close(struct stp_ws *ws, uint16_t code, const char *reason);

/* Change the largest message accepted (> 0) from the next frame header on,
 * e.g. a smaller bound until the session above has logged in. A message
 * being reassembled keeps the bytes it has; its next fragments are judged by
 * the new bound. */
void stp_ws_set_max_message(struct stp_ws *ws, uint64_t max);

/* Append one complete frame (FIN set; masked for a client) to the output
 * buffer, copying the payload: for heart-beats, tests, or small frames.
 * Large data should go zero-copy with stp_ws_frame_header(). 0, STP_ECLOSED (not
 * OPEN), STP_EINVAL (control frame over 125 bytes), STP_ENOMEM. */
int stp_ws_send(struct stp_ws *ws, int opcode, const void *p, size_t n);

/* Code of the close frame the engine sent (0 if none) and the HTTP status it
 * answered (101, 4xx, the status given to stp_ws_http_reply; 0 if none). */
uint16_t stp_ws_close_code(const struct stp_ws *ws);
int stp_ws_http_status(const struct stp_ws *ws);

/* --- pure helpers ------------------------------------------------------- */

/* Server frame header (FIN set, unmasked) for a payload of payload_len
 * bytes: writes 2, 4 or 10 bytes to out and returns how many. Write it, then
 * the payload (in as many iovecs as you like). */
size_t stp_ws_frame_header(uint8_t out[10], int opcode, uint64_t payload_len);

/* Client frame header (FIN as given, masked with mask): 6, 8 or 14 bytes.
 * For clients (stampede-bench, tests); mask the payload with stp_ws_mask(). */
size_t stp_ws_client_frame_header(uint8_t out[14], int opcode, bool fin, uint64_t payload_len,
                                  const uint8_t mask[4]);
/* XOR p[0..n) in place with mask, starting at payload offset off. */
void stp_ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t off);

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + GUID)),
 * 28 characters and a NUL into out. 0 or STP_EINVAL. */
int stp_ws_accept_key(const char *key, size_t keylen, char out[29]);

/* The subprotocol to answer for a Sec-WebSocket-Protocol value (a comma
 * separated list; several header lines joined with ","): the highest of
 * v12.stomp > v11.stomp > v10.stomp > stomp offered (exact, case-sensitive
 * names), or NULL when none of them is offered. */
const char *stp_ws_choose_subprotocol(const char *offer, size_t n);

/* True when p[0..n) is well-formed UTF-8 (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF). ASCII runs are checked 8 bytes at a
 * time. The server sends a body as a text frame when this holds (for a frame
 * written in pieces, each piece valid at a character boundary is enough). */
bool stp_ws_utf8_valid(const uint8_t *p, size_t n);

#endif

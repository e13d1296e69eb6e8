/*
 * error.h - the one error currency of Stampede.
 *
 * Every function that can fail returns 0 (or a byte count) on success and a
 * negative STP_E* code on failure. Codes from libuv, mbedTLS, wslay and llhttp
 * are translated at the adapter's edge and never leak upward. The table below
 * is the single source for the enum and for stp_strerror().
 */
#ifndef STAMPEDE_ERROR_H
#define STAMPEDE_ERROR_H

#define STP_ERRNO_MAP(X)                                                                           \
    X(NOMEM, "out of memory")                                                                      \
    X(INVAL, "invalid argument")                                                                   \
    X(AGAIN, "try again")                                                                          \
    X(FULL, "no room")                                                                             \
    X(CLOSED, "closed")                                                                            \
    X(IO, "input/output error")                                                                    \
    X(NOSPC, "no space left on device")                                                            \
    X(PROTO, "protocol error")                                                                     \
    X(FRAME_TOO_BIG, "frame too large")                                                            \
    X(TOO_MANY_HEADERS, "too many headers")                                                        \
    X(HEADER_TOO_LONG, "header too long")                                                          \
    X(BAD_ESCAPE, "undefined escape sequence in header")                                           \
    X(BAD_CONTENT_LENGTH, "invalid content-length")                                                \
    X(BAD_COMMAND, "unknown command")                                                              \
    X(BAD_HEADER, "malformed header line")                                                         \
    X(MISSING_NUL, "frame body not terminated by NUL")                                             \
    X(VERSION, "unsupported protocol version")                                                     \
    X(AUTH, "authentication failed")                                                               \
    X(NOT_FOUND, "not found")                                                                      \
    X(EXISTS, "already exists")                                                                    \
    X(TLS, "TLS error")                                                                            \
    X(WS, "WebSocket error")                                                                       \
    X(HTTP, "HTTP error")                                                                          \
    X(TIMEOUT, "timed out")                                                                        \
    X(STORE_AWAY, "the cluster's message store (NATS JetStream) is not reachable")                 \
    X(STORE_REFUSED, "the cluster's message store (NATS JetStream) refused it")                    \
    X(STORE_TOO_BIG, "larger than the cluster's NATS server takes (its max_payload)")

enum stp_err {
    STP_OK = 0,
#define STP_ERR_ENUM(name, text) STP_E##name,
    STP__EFIRST = -1000,
    STP_ERRNO_MAP(STP_ERR_ENUM)
#undef STP_ERR_ENUM
        STP__ELAST
};

/* Human-readable text for 0 or a negative STP_E* code; never NULL. */
const char *stp_strerror(int err);

/* Translate a libuv error (negative errno) into an STP_E* code. */
int stp_err_from_uv(int uverr);

#endif

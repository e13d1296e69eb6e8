/*
 * stomp.h - the STOMP 1.0/1.1/1.2 codec shared by the broker, stampede-bench
 * and the tests. Pure functions over caller-owned memory: no I/O, no threads,
 * no allocation except the parser's header array (a small array at init that
 * grows by doubling, up to limits.max_headers, only when a frame has more
 * headers than any before it on this parser; so it is not per frame).
 *
 * Parser contract (stp_parse):
 *   - returns > 0: one frame (or one run of heart-beat EOLs) was consumed;
 *     the return value is the number of bytes consumed from `buf`.
 *   - returns 0: the bytes so far are a valid prefix; call again with the same
 *     bytes plus more. Progress is remembered, so nothing is rescanned.
 *   - returns < 0: an STP_E* code; p->err_offset is the offset in `buf` where
 *     the problem was seen and p->err_text a short human explanation.
 *   Resumable at any byte boundary. Slices in the frame point into `buf` and
 *   are valid until the caller consumes or moves those bytes. Header names and
 *   values are unescaped in place (1.1/1.2, except in CONNECT, STOMP and
 *   CONNECTED frames), which is why `buf` is not const.
 *   Leading EOLs ("\n" or "\r\n") before a command are heart-beats: a run of
 *   them is returned as a frame with cmd == STP_CMD_HEARTBEAT.
 *   Limits: max_frame bounds the whole frame (command line through NUL),
 *   max_headers the number of header lines, max_header_len one header line.
 *   A body is read to content-length when that header is present (it may
 *   contain NULs; the byte after it must be NUL), otherwise to the first NUL.
 *   EOLs after the NUL are left for the next call (they are heart-beats).
 *   Details of the implementation (src/stomp/parser.c):
 *   - errors are sticky: once stp_parse returned < 0 it returns the same code
 *     until stp_parser_reset();
 *   - "\r\n" ends a line in every version; a CR elsewhere in a header line is
 *     kept as data (1.2 says it should be escaped, but rejecting it would cost a
 *     scan and gain nothing); a command line is upper-case letters only;
 *   - a NUL byte anywhere in a header line is STP_EBAD_HEADER (offset of the
 *     NUL): no header value ever holds one;
 *   - a header line's length excludes its EOL; the first content-length header
 *     wins; one that is not a decimal or overflows is STP_EBAD_CONTENT_LENGTH,
 *     a valid one whose frame would exceed max_frame is STP_EFRAME_TOO_BIG (seen
 *     as soon as the header line is complete);
 *   - STP_V_NONE parses non-CONNECT frames with the 1.2 escape rules.
 */
#ifndef STAMPEDE_STOMP_H
#define STAMPEDE_STOMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct stp_buf;

enum stp_version {
    STP_V_NONE = 0,
    STP_V10 = 10,
    STP_V11 = 11,
    STP_V12 = 12,
};

/* clang-format off */
#define STP_CMD_MAP(X)                                                          \
    X(CONNECT) X(STOMP) X(SEND) X(SUBSCRIBE) X(UNSUBSCRIBE) X(ACK) X(NACK)      \
    X(BEGIN) X(COMMIT) X(ABORT) X(DISCONNECT) X(CONNECTED) X(MESSAGE)           \
    X(RECEIPT) X(ERROR)

enum stp_cmd {
    STP_CMD_UNKNOWN = 0,
    STP_CMD_HEARTBEAT, /* a run of EOLs between frames */
#define STP_CMD_ENUM(n) STP_CMD_##n,
    STP_CMD_MAP(STP_CMD_ENUM)
#undef STP_CMD_ENUM
    STP_CMD__COUNT
};
/* clang-format on */

/* Name of a command ("SEND"); "HEARTBEAT" / "UNKNOWN" for the others. */
const char *stp_cmd_name(enum stp_cmd cmd);

struct stp_slice {
    const char *p;
    size_t len;
};

struct stp_header {
    struct stp_slice name;
    struct stp_slice value;
};

struct stp_frame {
    enum stp_cmd cmd;
    struct stp_header *headers; /* the parser's array: valid until its next stp_parse */
    size_t nheaders;
    struct stp_slice body;
    bool has_content_length;
};

struct stp_limits {
    size_t max_frame;      /* whole frame in bytes */
    size_t max_headers;    /* header lines per frame */
    size_t max_header_len; /* one header line in bytes */
};

struct stp_parser {
    struct stp_limits limits;
    enum stp_version version; /* selects escaping and CRLF rules; NONE before CONNECT */
    size_t err_offset;
    const char *err_text;
    /* private: progress kept between calls */
    int state;
    size_t scan;       /* bytes of the current frame already examined */
    size_t hdr_start;  /* offset of the current header line */
    size_t body_start; /* offset of the body */
    size_t content_length;
    bool has_cl;
    enum stp_cmd cmd;
    struct stp_header *hdrs; /* capacity hdrs_cap <= limits.max_headers; offsets while parsing */
    size_t nhdrs;
    size_t hdrs_cap;
};

/* Allocates the initial header array. 0 or STP_ENOMEM. The version starts as
 * STP_V_NONE; the session sets p->version once it has negotiated one. */
int stp_parser_init(struct stp_parser *p, const struct stp_limits *limits);
/* Change limits between frames (e.g. after CONNECTED). */
void stp_parser_set_limits(struct stp_parser *p, const struct stp_limits *limits);
/* After stp_parse returned < 0 (or 0): the first header `name` among the
 * header lines of the unfinished frame in `buf` that were complete before the
 * problem (e.g. `receipt`, for the receipt-id of an ERROR). false when none.
 * Call it before stp_parser_reset and with the same `buf`. */
bool stp_parser_peek_header(const struct stp_parser *p, const char *buf, const char *name,
                            struct stp_slice *out);
/* Forget any partial frame and a sticky error; keeps limits and version. */
void stp_parser_reset(struct stp_parser *p);
void stp_parser_free(struct stp_parser *p);
/* See the contract at the top of this file. */
ssize_t stp_parse(struct stp_parser *p, char *buf, size_t len, struct stp_frame *out);

/* First header named `name` (repeated headers: the first wins), or NULL. */
const struct stp_slice *stp_frame_header(const struct stp_frame *f, const char *name);
/* Compare a slice with a C string. */
bool stp_slice_eq(struct stp_slice s, const char *str);

/* Parse a non-negative decimal; 0 or STP_EINVAL (empty, sign, junk, overflow). */
int stp_parse_u64(struct stp_slice s, uint64_t *out);

/* --- escaping (1.1: \\ \n \c ; 1.2 adds \r) --- */

/* Append `s` to `b` escaped for `v` (no escaping for 1.0). 0 or STP_ENOMEM. */
int stp_escape_append(struct stp_buf *b, struct stp_slice s, enum stp_version v);
/* Unescape in place; returns the new length or STP_EBAD_ESCAPE. */
ssize_t stp_unescape_inplace(char *p, size_t len, enum stp_version v);
/* True when `s` has a byte that escaping would change (so 1.0 and 1.1/1.2
 * encodings differ). */
bool stp_needs_escape(struct stp_slice s);

/* --- serializer: frames into a buffer --- */

/* "COMMAND\n" */
int stp_write_command(struct stp_buf *b, enum stp_cmd cmd);
/* "name:value\n", both escaped for v (not for CONNECT/CONNECTED: pass STP_V10). */
int stp_write_header(struct stp_buf *b, const char *name, struct stp_slice value,
                     enum stp_version v);
int stp_write_header_str(struct stp_buf *b, const char *name, const char *value,
                         enum stp_version v);
int stp_write_header_u64(struct stp_buf *b, const char *name, uint64_t value);
/* Same as stp_write_header with a name that is a slice (e.g. copied from a
 * parsed frame, whose names are already unescaped). */
int stp_write_header_slices(struct stp_buf *b, struct stp_slice name, struct stp_slice value,
                            enum stp_version v);
/* "\n" + body + "\0" */
int stp_write_body(struct stp_buf *b, struct stp_slice body);

/* --- negotiation --- */

/* accept-version header value (NULL when absent means 1.0). Returns the
 * highest common version, or STP_V_NONE when none is in common. */
enum stp_version stp_negotiate_version(const struct stp_slice *accept_version);
/* "1.0", "1.1", "1.2" */
const char *stp_version_str(enum stp_version v);

/* heart-beat header "cx,cy" (NULL means 0,0). 0 or STP_EINVAL. */
int stp_heartbeat_parse(const struct stp_slice *hb, uint64_t *cx, uint64_t *cy);
/* Server side of heart-beat negotiation, in milliseconds. The client offers to
 * send every cx and wants to receive every cy. The server answers
 * sx = clamp(cy) (it will send that often) and sy = clamp(cx) (it wants to
 * hear from the client that often), where clamp(0) = 0 and otherwise
 * clamp(t) = min(max(t, min_ms), max_ms). So "0,500" is answered "500,0". */
void stp_heartbeat_negotiate(uint64_t cx, uint64_t cy, uint64_t min_ms, uint64_t max_ms,
                             uint64_t *sx, uint64_t *sy);

#endif

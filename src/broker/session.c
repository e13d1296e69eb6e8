/*
 * session.c - STOMP session: CONNECT, frame dispatch, ERROR, heart-beats.
 *
 * Runs on the connection's worker. Frames come from stp_session_feed; a frame
 * that breaks the protocol gets an ERROR and the connection closes after it
 * is written (every version), as issue #2 and RabbitMQ do.
 */
#include "broker/session.h"

#include "broker/dest.h"
#include "broker/metrics.h"
#include "broker/session_int.h"
#include "broker/worker.h"
#include "stampede/error.h"
#include "stampede/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct stp_limits pre_connect_limits(const struct stp_config *cfg)
{
    size_t max =
        cfg->max_pre_connect < cfg->max_frame_size ? cfg->max_pre_connect : cfg->max_frame_size;
    return (struct stp_limits){.max_frame = max,
                               .max_headers = cfg->max_headers,
                               .max_header_len =
                                   cfg->max_header_length < max ? cfg->max_header_length : max};
}

static void on_session_timer(uv_timer_t *t)
{
    struct stp_conn *c = t->data;
    stp_session_tick(c, stp_now_ms(c));
}

int stp_session_init(struct stp_conn *c)
{
    struct stp_session *s = stp_sess(c);
    const struct stp_config *cfg = stp_worker_of(c)->cfg;
    s->state = STP_SESS_AWAIT_CONNECT;
    struct stp_limits lim = pre_connect_limits(cfg);
    /* The parser's header array starts small and grows up to max_headers. */
    if (stp_parser_init(&s->parser, &lim) < 0)
        return STP_ENOMEM;
    s->touched = calloc((stp_worker_of(c)->broker_workers + 63) / 64, sizeof(uint64_t));
    if (!s->touched)
        return STP_ENOMEM;
    uv_timer_start(&c->timer, on_session_timer, cfg->login_timeout_ms, 0);
    return 0;
}

/* --- ERROR --- */

void stp_session_build_error(struct stp_conn *c, struct stp_buf *out, const char *message,
                             const char *detail, const struct stp_slice *receipt, const char *xname,
                             const char *xvalue)
{
    struct stp_buf b = STP_BUF_INIT;
    enum stp_version v = stp_sess(c)->version ? stp_sess(c)->version : STP_V12;
    size_t dlen = detail ? strlen(detail) : 0;
    stp_write_command(&b, STP_CMD_ERROR);
    stp_write_header_str(&b, "message", message, v);
    if (receipt)
        stp_write_header(&b, "receipt-id", *receipt, v);
    if (xname)
        stp_write_header_str(&b, xname, xvalue, STP_V10);
    stp_write_header_str(&b, "content-type", "text/plain", v);
    stp_write_header_u64(&b, "content-length", dlen);
    stp_write_body(&b, (struct stp_slice){detail ? detail : "", dlen});
    *out = b;
}

/* in_order: the ERROR answers a client frame, so it goes out after the
 * RECEIPTs of earlier frames still waiting for their fences. */
void stp_session_error_x(struct stp_conn *c, const char *message, const char *detail,
                         const struct stp_slice *receipt, const char *xname, const char *xvalue,
                         bool in_order)
{
    if (stp_sess(c)->state == STP_SESS_CLOSING) {
        /* Already ending (an ERROR or DISCONNECT waits for its fences):
         * a new problem, like a slow consumer, ends it now. */
        if (c->closing == STP_OPEN)
            stp_conn_close(c, STP_CLOSE_AFTER_FLUSH);
        return;
    }
    stp_debug("%s: ERROR %s: %s", c->peer, message, detail ? detail : "");
    if (!stp_conn_ready(c)) {
        /* No STOMP frame can travel yet (e.g. an unfinished WebSocket
         * handshake at the login timeout): just close. */
        stp_sess(c)->state = STP_SESS_CLOSING;
        stp_conn_close(c, STP_CLOSE_AFTER_FLUSH);
        return;
    }
    struct stp_buf b;
    stp_session_build_error(c, &b, message, detail, receipt, xname, xvalue);
    stp_sess(c)->state = STP_SESS_CLOSING;
    if (in_order && stp_sess(c)->fences.count > 0) {
        stp_session_queue_error(c, &b);
        return;
    }
    stp_session_write_frame(c, STP_CMD_ERROR, b.data, b.len);
    stp_buf_free(&b);
    stp_conn_close(c, STP_CLOSE_AFTER_FLUSH);
}

void stp_session_error(struct stp_conn *c, const char *message, const char *detail,
                       const struct stp_slice *receipt)
{
    stp_session_error_x(c, message, detail, receipt, NULL, NULL, false);
}

/* The ERROR for a frame the client sent (bad frame, bad header). */
static void frame_error(struct stp_conn *c, const char *message, const char *detail,
                        const struct stp_slice *receipt)
{
    stp_session_error_x(c, message, detail, receipt, NULL, NULL, true);
}

const struct stp_slice *stp_session_receipt(const struct stp_frame *f)
{
    return stp_frame_header(f, "receipt");
}

int stp_session_bad(struct stp_conn *c, const struct stp_frame *f, const char *message,
                    const char *detail)
{
    frame_error(c, message, detail, stp_session_receipt(f));
    return -1;
}

int stp_session_badf(struct stp_conn *c, const struct stp_frame *f, const char *message,
                     const char *fmt, ...)
{
    char detail[STP_DETAIL_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    return stp_session_bad(c, f, message, detail);
}

int stp_quote_len(size_t len)
{
    return len > STP_QUOTE_MAX ? STP_QUOTE_MAX : (int)len;
}

int stp_session_check_dest(struct stp_conn *c, const struct stp_frame *f,
                           const struct stp_slice *dest)
{
    /* Control bytes would need escaping in every header that repeats the
     * name, and 1.0 has no escapes: names are printable (and checked first,
     * so the texts below may quote the name). */
    for (size_t i = 0; i < dest->len; i++) {
        unsigned char ch = (unsigned char)dest->p[i];
        if (ch < 0x20 || ch == 0x7f)
            return stp_session_bad(c, f, "Invalid destination",
                                   "Destination names may not contain control characters.");
    }
    int n = stp_quote_len(dest->len);
    enum stp_dest_kind kind = stp_dest_kind(dest->p, dest->len);
    if (kind == STP_DEST_BAD) {
        /* RabbitMQ's texts: a known prefix with nothing after it is an
         * invalid destination, anything else an unknown one. */
        if (dest->len == 7 &&
            (memcmp(dest->p, "/topic/", 7) == 0 || memcmp(dest->p, "/queue/", 7) == 0))
            return stp_session_badf(c, f, "Invalid destination",
                                    "'%.*s' is not a valid destination: the name after the "
                                    "prefix cannot be blank.",
                                    n, dest->p);
        return stp_session_badf(c, f, "Unknown destination",
                                "'%.*s' is not a valid destination.\nValid destination types "
                                "are: /topic/, /queue/, /temp-queue/, /reply-queue/.",
                                n, dest->p);
    }
    if (dest->len > stp_worker_of(c)->cfg->max_destination_length)
        return stp_session_bad(c, f, "destination too long",
                               "The destination name is longer than --max-destination-length.");
    return (int)kind;
}

char *stp_session_strdup(struct stp_slice s)
{
    char *p = malloc(s.len + 1);
    if (p) {
        memcpy(p, s.p, s.len);
        p[s.len] = '\0';
    }
    return p;
}

/* --- dispatch --- */

static int on_disconnect(struct stp_conn *c, const struct stp_frame *f)
{
    stp_sess(c)->state = STP_SESS_CLOSING;
    return stp_session_receipt_fence(c, stp_session_receipt(f), true);
}

int stp_session_write_frame(struct stp_conn *c, enum stp_cmd cmd, const void *p, size_t n)
{
    stp_conn_frame_begin(c);
    int rc = stp_conn_write(c, p, n);
    stp_conn_frame_end(c);
    STP_STAT_INC(stp_worker_of(c)->stats.frames_out[cmd]);
    if (cmd != STP_CMD_ERROR) /* an ERROR is followed by a close anyway */
        stp_conn_check_output(c);
    return rc;
}

static int handle_frame(struct stp_conn *c, const struct stp_frame *f)
{
    struct stp_session *s = stp_sess(c);
    STP_STAT_INC(stp_worker_of(c)->stats.frames_in[f->cmd]);
    if (s->state == STP_SESS_AWAIT_CONNECT) {
        if (f->cmd == STP_CMD_CONNECT || f->cmd == STP_CMD_STOMP)
            return stp_session_on_connect(c, f);
        return stp_session_bad(c, f, "Illegal command",
                               "You must log in using CONNECT first (the first frame must be "
                               "CONNECT or STOMP).");
    }
    switch (f->cmd) {
    case STP_CMD_SEND:
        return stp_session_on_send(c, f);
    case STP_CMD_SUBSCRIBE:
        return stp_session_on_subscribe(c, f);
    case STP_CMD_UNSUBSCRIBE:
        return stp_session_on_unsubscribe(c, f);
    case STP_CMD_ACK:
        return stp_session_on_ack(c, f, false);
    case STP_CMD_NACK:
        return stp_session_on_ack(c, f, true);
    case STP_CMD_BEGIN:
    case STP_CMD_COMMIT:
    case STP_CMD_ABORT:
        return stp_session_on_txn(c, f);
    case STP_CMD_DISCONNECT:
        return on_disconnect(c, f);
    case STP_CMD_CONNECT:
    case STP_CMD_STOMP:
        return stp_session_bad(c, f, "already connected",
                               "CONNECT may only be sent once per connection.");
    default:
        return stp_session_badf(c, f, "Bad command",
                                "Could not interpret command %s: it is not one a client may send.",
                                stp_cmd_name(f->cmd));
    }
}

int stp_session_feed(struct stp_conn *c, char *data, size_t len, size_t *consumed)
{
    struct stp_session *s = stp_sess(c);
    size_t off = 0;
    while (off < len && s->state != STP_SESS_CLOSING && c->closing == STP_OPEN && !c->paused) {
        struct stp_frame f;
        ssize_t n = stp_parse(&s->parser, data + off, len - off, &f);
        if (n == 0)
            break;
        if (n < 0) {
            char detail[200];
            snprintf(detail, sizeof(detail), "%s%s (at byte %zu of the frame)",
                     n == STP_EBAD_COMMAND ? "Could not interpret command: " : "",
                     s->parser.err_text ? s->parser.err_text : stp_strerror((int)n),
                     s->parser.err_offset);
            struct stp_slice receipt;
            bool has_receipt = stp_parser_peek_header(&s->parser, data + off, "receipt", &receipt);
            /* RabbitMQ's words for a command it does not know. */
            frame_error(c, n == STP_EBAD_COMMAND ? "Bad command" : stp_strerror((int)n), detail,
                        has_receipt ? &receipt : NULL);
            *consumed = len;
            return -1;
        }
        off += (size_t)n;
        if (f.cmd == STP_CMD_HEARTBEAT)
            continue;
        s->in_frame = true;
        int rc = handle_frame(c, &f);
        s->in_frame = false;
        if (rc >= 0)
            stp_session_frame_done(c);
        if (rc < 0) {
            if (s->state != STP_SESS_CLOSING)
                stp_session_error(c, "internal error", "The broker ran out of memory.", NULL);
            *consumed = len;
            return -1;
        }
    }
    *consumed = s->state == STP_SESS_CLOSING ? len : off;
    return 0;
}

/* --- timers --- */

void stp_session_tick(struct stp_conn *c, uint64_t now)
{
    struct stp_session *s = stp_sess(c);
    if (s->state == STP_SESS_AWAIT_CONNECT) {
        stp_info("%s: no CONNECT within the login timeout", c->peer);
        stp_session_error(c, "login timeout", "No CONNECT frame arrived in time.", NULL);
        return;
    }
    if (s->state != STP_SESS_OPEN)
        return;
    /* A publisher paused for back-pressure is not read, so its heart-beats
     * go unseen: the pause counts as hearing from it. */
    if (c->paused)
        c->last_read_ms = now;
    if (s->hb_recv_ms && now - c->last_read_ms > 2 * s->hb_recv_ms) {
        stp_info("%s: no heart-beat for %llu ms, closing", c->peer,
                 (unsigned long long)(now - c->last_read_ms));
        stp_conn_close(c, STP_CLOSE_NOW);
        return;
    }
    if (s->hb_send_ms && now - c->last_write_ms >= s->hb_send_ms - s->hb_send_ms / 4 &&
        stp_conn_pending(c) == 0) {
        stp_conn_frame_begin(c);
        stp_conn_write(c, "\n", 1);
        stp_conn_frame_end(c);
        c->last_write_ms = now;
    }
}

void stp_session_on_eof(struct stp_conn *c)
{
    struct stp_session *s = stp_sess(c);
    if (s->state == STP_SESS_OPEN && s->fences.count > 0) {
        /* Like a DISCONNECT without a receipt: it closes once the earlier
         * RECEIPTs are out. */
        s->state = STP_SESS_CLOSING;
        if (stp_session_receipt_fence(c, NULL, true) == 0)
            return;
    } else if (s->state == STP_SESS_CLOSING && s->fences.count > 0) {
        return; /* an ERROR or DISCONNECT waiting for fences closes it */
    }
    stp_conn_close(c, STP_CLOSE_AFTER_FLUSH);
}

void stp_session_teardown(struct stp_conn *c)
{
    struct stp_session *s = stp_sess(c);
    s->state = STP_SESS_CLOSING;
    stp_session_free_subs(c);
    stp_session_free_txns(c);
    while (s->fences.count) {
        struct stp_fence_wait f = stp_fence_deque_pop_front(&s->fences);
        free(f.receipt);
        stp_buf_free(&f.error);
    }
    stp_fence_deque_free(&s->fences);
    free(s->touched);
    s->touched = NULL;
    free(s->wmarks);
    s->wmarks = NULL;
    stp_session_connect_free(c);
    stp_session_perms_free(c);
    stp_session_temps_free(c);
    s->nwmarks = s->wmarks_cap = 0;
    stp_parser_free(&s->parser);
}

/* --- what the net layer calls --- */

static int ops_input(struct stp_conn *c, char *data, size_t len, size_t *consumed)
{
    return stp_session_feed(c, data, len, consumed);
}

static void ops_error(struct stp_conn *c, const char *message, const char *detail)
{
    stp_session_error(c, message, detail, NULL);
}

const struct stp_conn_ops stp_session_ops = {
    .up_size = sizeof(struct stp_session),
    .open = stp_session_init,
    .input = ops_input,
    .eof = stp_session_on_eof,
    .writing = stp_session_writing,
    .written = stp_session_written,
    .error = ops_error,
    .teardown = stp_session_teardown,
    .http = stp_metrics_http,
};

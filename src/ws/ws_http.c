/*
 * ws_http.c - the WebSocket listener's HTTP side: llhttp reads the request
 * head (bounded by STP_WS_MAX_HEAD), the head is judged once complete
 * (upgrade, endpoint or error: the order is in ws.h) and the answer is
 * formatted into the engine's output buffer. Parsing stops at the end of the
 * head (on_headers_complete pauses llhttp), so the bytes after it are known
 * exactly and handed to the frame layer. Engine-private; one thread.
 */
#include "ws_internal.h"

#include "stampede/error.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const hdr_names[WS_H__COUNT] = {
    [WS_H_HOST] = "host",
    [WS_H_UPGRADE] = "upgrade",
    [WS_H_CONNECTION] = "connection",
    [WS_H_VERSION] = "sec-websocket-version",
    [WS_H_KEY] = "sec-websocket-key",
    [WS_H_PROTOCOL] = "sec-websocket-protocol",
    [WS_H_ORIGIN] = "origin",
    [WS_H_ACCEPT] = "sec-websocket-accept",
    [WS_H_AUTHORIZATION] = "authorization",
};

/* Internal status for "426 because of the version": answered as 426 with a
 * Sec-WebSocket-Version header. */
#define WS_STATUS_426_VERSION (-426)

static struct stp_ws *ws_of(llhttp_t *p)
{
    return p->data;
}

/* Record a wire-level failure: llhttp stops with HPE_USER. */
static int cb_fail(llhttp_t *p)
{
    ws_of(p)->err = STP_ENOMEM;
    return HPE_USER;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    return stp_buf_append(&ws_of(p)->url, at, n) < 0 ? cb_fail(p) : 0;
}

static int on_field(llhttp_t *p, const char *at, size_t n)
{
    return stp_buf_append(&ws_of(p)->field, at, n) < 0 ? cb_fail(p) : 0;
}

/* RFC 9110 tchar: what a header name is made of. llhttp (lenient here) lets
 * blanks and other bytes through, which proxies may read differently. */
static bool is_token(const char *s, size_t n)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool alnum = (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
        if (!alnum && !memchr(extra, c, sizeof(extra) - 1))
            return false;
    }
    return n > 0;
}

static int on_field_complete(llhttp_t *p)
{
    struct stp_ws *ws = ws_of(p);
    ws->cur = WS_H_NONE;
    if (!is_token(ws->field.data, ws->field.len))
        ws->bad_head = true;
    for (int h = 0; h < WS_H__COUNT; h++) {
        size_t len = strlen(hdr_names[h]);
        if (ws->field.len == len && strncasecmp(ws->field.data, hdr_names[h], len) == 0) {
            ws->cur = (enum ws_hdr)h;
            break;
        }
    }
    stp_buf_reset(&ws->field);
    if (ws->cur == WS_H_NONE)
        return 0;
    if (ws->cur == WS_H_HOST && ws->seen[WS_H_HOST])
        ws->bad_head = true; /* RFC 9112 3.2: more than one Host is a 400 */
    /* A repeated header joins the list, as RFC 9110 allows for lists. */
    if (ws->seen[ws->cur] && stp_buf_append(&ws->hdr[ws->cur], ",", 1) < 0)
        return cb_fail(p);
    ws->seen[ws->cur] = true;
    return 0;
}

static int on_value(llhttp_t *p, const char *at, size_t n)
{
    struct stp_ws *ws = ws_of(p);
    if (ws->cur == WS_H_NONE)
        return 0;
    return stp_buf_append(&ws->hdr[ws->cur], at, n) < 0 ? cb_fail(p) : 0;
}

static void judge(struct stp_ws *ws);

static int on_headers_complete(llhttp_t *p)
{
    struct stp_ws *ws = ws_of(p);
    if (ws->client)
        stp_ws__client_judge(ws);
    else
        judge(ws);
    return HPE_PAUSED; /* stop right after the head: what follows is frames */
}

static const llhttp_settings_t http_settings = {
    .on_url = on_url,
    .on_header_field = on_field,
    .on_header_field_complete = on_field_complete,
    .on_header_value = on_value,
    .on_headers_complete = on_headers_complete,
};

void stp_ws__http_init(struct stp_ws *ws, llhttp_type_t type)
{
    llhttp_init(&ws->http, type, &http_settings);
    ws->http.data = ws;
    ws->cur = WS_H_NONE;
}

void stp_ws__http_release(struct stp_ws *ws)
{
    stp_buf_free(&ws->url);
    stp_buf_free(&ws->field);
    for (int h = 0; h < WS_H__COUNT; h++)
        stp_buf_free(&ws->hdr[h]);
}

/* --- judging the head ---------------------------------------------------- */

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

const char *stp_ws__trim(const char *s, size_t *n)
{
    while (*n && is_ows(*s)) {
        s++;
        (*n)--;
    }
    while (*n && is_ows(s[*n - 1]))
        (*n)--;
    return s;
}

bool stp_ws__has_token(const struct stp_buf *b, const char *tok)
{
    if (!b->data)
        return false;
    const char *s = b->data, *end = b->data + b->len;
    size_t toklen = strlen(tok);
    while (s && s < end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        size_t n = (size_t)((comma ? comma : end) - s);
        const char *item = stp_ws__trim(s, &n);
        if (n == toklen && strncasecmp(item, tok, n) == 0)
            return true;
        s = comma ? comma + 1 : NULL;
    }
    return false;
}

static bool equals(const struct stp_buf *b, const char *s)
{
    size_t n = b->len;
    const char *v = stp_ws__trim(b->data ? b->data : "", &n);
    return n == strlen(s) && memcmp(v, s, n) == 0;
}

static bool origin_allowed(const struct stp_ws *ws)
{
    const struct stp_ws_config *cfg = ws->cfg;
    if (cfg->nallowed_origins == 0 || !ws->seen[WS_H_ORIGIN])
        return true;
    size_t n = ws->hdr[WS_H_ORIGIN].len;
    const char *o = stp_ws__trim(ws->hdr[WS_H_ORIGIN].data ? ws->hdr[WS_H_ORIGIN].data : "", &n);
    for (size_t i = 0; i < cfg->nallowed_origins; i++) {
        const char *a = cfg->allowed_origins[i];
        if (strlen(a) == n && strncasecmp(a, o, n) == 0)
            return true;
    }
    return false;
}

static bool key_valid(const struct stp_ws *ws)
{
    char accept[29];
    size_t n = ws->hdr[WS_H_KEY].len;
    const char *k = stp_ws__trim(ws->hdr[WS_H_KEY].data ? ws->hdr[WS_H_KEY].data : "", &n);
    return ws->seen[WS_H_KEY] && stp_ws_accept_key(k, n, accept) == 0;
}

static bool has_body(const llhttp_t *h)
{
    if (h->flags & (F_CHUNKED | F_TRANSFER_ENCODING))
        return true;
    return (h->flags & F_CONTENT_LENGTH) && h->content_length > 0;
}

/* The status for an upgrade request on the WebSocket path: 101 or an error. */
static int judge_upgrade(const struct stp_ws *ws)
{
    const llhttp_t *h = &ws->http;
    if (h->http_major != 1 || h->http_minor < 1 || !ws->seen[WS_H_HOST] || has_body(h))
        return 400;
    if (!origin_allowed(ws))
        return 403;
    if (!stp_ws__has_token(&ws->hdr[WS_H_UPGRADE], "websocket") ||
        !stp_ws__has_token(&ws->hdr[WS_H_CONNECTION], "upgrade"))
        return 426;
    if (!equals(&ws->hdr[WS_H_VERSION], "13"))
        return WS_STATUS_426_VERSION;
    if (!key_valid(ws))
        return 400;
    return 101;
}

static void judge(struct stp_ws *ws)
{
    size_t plen = 0;
    const char *url = ws->url.data ? ws->url.data : "";
    while (plen < ws->url.len && url[plen] != '?' && url[plen] != '#')
        plen++;
#define PATH_IS(s) (plen == strlen(s) && memcmp(url, (s), plen) == 0)
    int status = 0;
    if (ws->bad_head)
        status = 400;
    else if (llhttp_get_method(&ws->http) != HTTP_GET)
        status = 405;
    else if (PATH_IS("/healthz"))
        ws->verdict = WS_V_HEALTHZ;
    else if (PATH_IS("/metrics"))
        ws->verdict = WS_V_METRICS;
    else if (!PATH_IS(ws->cfg->path))
        status = 404;
    else
        status = judge_upgrade(ws);
#undef PATH_IS
    if (status == 101)
        ws->verdict = WS_V_UPGRADE;
    else if (status)
        ws->verdict = WS_V_ERROR;
    ws->http_status = status;
}

/* --- answers -------------------------------------------------------------- */

static const struct {
    int status;
    const char *text;
} phrases[] = {
    {101, "Switching Protocols"},
    {200, "OK"},
    {204, "No Content"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {426, "Upgrade Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {503, "Service Unavailable"},
};

static const char *reason_phrase(int status)
{
    for (size_t i = 0; i < sizeof(phrases) / sizeof(phrases[0]); i++)
        if (phrases[i].status == status)
            return phrases[i].text;
    return "Unknown";
}

int stp_ws__http_answer(struct stp_ws *ws, int status, const char *extra_headers,
                        const char *content_type, const void *body, size_t n)
{
    char head[512];
    int len = snprintf(head, sizeof(head),
                       "HTTP/1.1 %d %s\r\n%sContent-Type: %s\r\nContent-Length: %zu\r\n"
                       "Connection: close\r\n\r\n",
                       status, reason_phrase(status), extra_headers ? extra_headers : "",
                       content_type, n);
    if (len < 0 || (size_t)len >= sizeof(head))
        return STP_EINVAL;
    int rc = stp_buf_reserve(&ws->out, (size_t)len + n);
    if (rc < 0)
        return rc;
    stp_buf_append(&ws->out, head, (size_t)len);
    stp_buf_append(&ws->out, body, n);
    ws->http_status = status;
    return 0;
}

static int answer_error(struct stp_ws *ws, int status)
{
    const char *extra = NULL;
    if (status == 405)
        extra = "Allow: GET\r\n";
    else if (status == 426)
        extra = "Upgrade: websocket\r\nConnection: Upgrade\r\n";
    if (status == WS_STATUS_426_VERSION) {
        extra = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n";
        status = 426;
    }
    char body[64];
    int n = snprintf(body, sizeof(body), "%d %s\n", status, reason_phrase(status));
    assert(n > 0 && (size_t)n < sizeof(body));
    return stp_ws__http_answer(ws, status, extra, "text/plain; charset=utf-8", body, (size_t)n);
}

static int answer_upgrade(struct stp_ws *ws, const char **subprotocol)
{
    char accept[29];
    size_t n = ws->hdr[WS_H_KEY].len;
    const char *k = stp_ws__trim(ws->hdr[WS_H_KEY].data, &n);
    int rc = stp_ws_accept_key(k, n, accept);
    assert(rc == 0); /* judge_upgrade checked the key */
    const struct stp_buf *offer = &ws->hdr[WS_H_PROTOCOL];
    *subprotocol = stp_ws_choose_subprotocol(offer->data ? offer->data : "", offer->len);
    char head[256];
    int len = snprintf(head, sizeof(head),
                       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%s%s\r\n",
                       accept, *subprotocol ? "Sec-WebSocket-Protocol: " : "",
                       *subprotocol ? *subprotocol : "", *subprotocol ? "\r\n" : "");
    assert(len > 0 && (size_t)len < sizeof(head));
    rc = stp_buf_append(&ws->out, head, (size_t)len);
    if (rc == 0)
        ws->http_status = 101;
    return rc;
}

/* Act on the verdict: switch state, write the answer, report. */
static void conclude(struct stp_ws *ws)
{
    int rc = 0;
    const char *subprotocol = NULL;
    switch (ws->verdict) {
    case WS_V_UPGRADE:
        rc = answer_upgrade(ws, &subprotocol);
        if (rc == 0)
            rc = stp_ws__frames_init(ws);
        break;
    case WS_V_HEALTHZ:
    case WS_V_METRICS:
        ws->state = STP_WS_HTTP;
        break;
    default:
        rc = answer_error(ws, ws->http_status);
        ws->state = STP_WS_DONE;
        break;
    }
    if (rc < 0) {
        stp_ws__http_release(ws);
        ws->err = rc;
        ws->state = STP_WS_DONE;
        return;
    }
    if (ws->verdict == WS_V_UPGRADE) {
        stp_ws__http_release(ws);
        ws->state = STP_WS_OPEN;
        if (ws->ops->on_open)
            ws->ops->on_open(ws->ud, subprotocol);
    } else if (ws->state == STP_WS_HTTP && ws->ops->on_http) {
        /* The request's headers stay readable during the callback
         * (stp_ws_http_authorization). */
        ws->ops->on_http(ws->ud, ws->verdict == WS_V_HEALTHZ ? STP_WS_HEALTHZ : STP_WS_METRICS);
        stp_ws__http_release(ws);
    } else {
        stp_ws__http_release(ws);
    }
}

static void finish_head(struct stp_ws *ws)
{
    if (ws->client)
        stp_ws__client_conclude(ws);
    else
        conclude(ws);
}

static void fail_head(struct stp_ws *ws, int status)
{
    ws->verdict = WS_V_ERROR;
    if (!ws->client)
        ws->http_status = status;
    finish_head(ws);
}

size_t stp_ws__http_feed(struct stp_ws *ws, const uint8_t *p, size_t n)
{
    assert(ws->state == STP_WS_HANDSHAKE && ws->head_len <= STP_WS_MAX_HEAD);
    size_t budget = STP_WS_MAX_HEAD - ws->head_len;
    size_t len = n < budget ? n : budget;
    llhttp_errno_t e = llhttp_execute(&ws->http, (const char *)p, len);
    if (e == HPE_PAUSED) {
        size_t used = (size_t)((const uint8_t *)llhttp_get_error_pos(&ws->http) - p);
        assert(used <= len && ws->verdict != WS_V_PENDING);
        ws->head_len += used;
        finish_head(ws);
        return used;
    }
    if (e != HPE_OK) {
        if (ws->err) {
            ws->state = STP_WS_DONE;
            return n;
        }
        fail_head(ws, 400);
        return n;
    }
    ws->head_len += len;
    if (ws->head_len == STP_WS_MAX_HEAD)
        fail_head(ws, 431);
    return n; /* bytes past the budget went with the 431 */
}

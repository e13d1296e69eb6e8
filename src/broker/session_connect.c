/*
 * session_connect.c - CONNECT: version, heart-beats and who the client is.
 *
 * Runs on the connection's worker. Who may connect (issue 11):
 *
 *   - no users configured (neither --users-file nor --user): any login, but
 *     only from a loopback address unless --allow-remote-unauthenticated
 *     (RabbitMQ's guest user rule);
 *   - login and passcode: checked against --user (constant time, here) or
 *     the --users-file hash (argon2id, on libuv's thread pool: a login never
 *     stalls the worker; an unknown login is checked against a dummy hash of
 *     the same cost, so time does not tell which logins exist);
 *   - neither: the certificate's CN on a verified TLS connection
 *     (--tls-cert-login), else --anonymous-user, else refused.
 *
 * While a check runs, the connection's input is held (stp_conn_hold): frames
 * after CONNECT wait in its read buffer. An address with repeated failures
 * gets its answers (CONNECTED or ERROR) only after the backoff delay
 * (src/auth/backoff.c), on the connection's timer; nothing else waits.
 * Every refusal is the same ERROR "access refused", counted in
 * stampede_failed_logins_total and logged with the address and the login,
 * never the passcode.
 */
#include "auth/auth.h"
#include "broker/broker.h"
#include "broker/login_cache.h"
#include "broker/session_int.h"
#include "broker/verify.h"
#include "broker/worker.h"
#include "stampede/error.h"
#include "stampede/log.h"

#include <stdlib.h>
#include <string.h>

#define SERVER_NAME "stampede/" STP_VERSION
#define LOGIN_MAX 256
#define CLIENT_ID_MAX 256

static bool have_users(const struct stp_broker *b, const struct stp_config *cfg)
{
    return cfg->nusers > 0 || (b && b->users);
}

/* Whether login names a configured user (--user or --users-file). */
static bool user_exists(const struct stp_broker *b, const struct stp_config *cfg, const char *login,
                        size_t len)
{
    if (b && b->users)
        return stp_users_hash(b->users, login, len) != NULL;
    for (size_t i = 0; i < cfg->nusers; i++)
        if (strlen(cfg->users[i].login) == len && memcmp(cfg->users[i].login, login, len) == 0)
            return true;
    return false;
}

/* --- the answer --- */

static void on_session_timer(uv_timer_t *t)
{
    struct stp_conn *c = t->data;
    stp_session_tick(c, stp_now_ms(c));
}

void stp_session_start_heartbeats(struct stp_conn *c)
{
    struct stp_session *s = stp_sess(c);
    uint64_t period = 0;
    if (s->hb_send_ms)
        period = s->hb_send_ms / 2;
    if (s->hb_recv_ms && (!period || s->hb_recv_ms / 2 < period))
        period = s->hb_recv_ms / 2;
    uv_timer_stop(&c->timer);
    if (period) {
        if (period < 10)
            period = 10;
        uv_timer_start(&c->timer, on_session_timer, period, period);
    }
}

static int write_connected(struct stp_conn *c)
{
    struct stp_session *s = stp_sess(c);
    struct stp_buf b = STP_BUF_INIT;
    char hb[48], sess[48];
    snprintf(hb, sizeof(hb), "%llu,%llu", (unsigned long long)s->hb_send_ms,
             (unsigned long long)s->hb_recv_ms);
    snprintf(sess, sizeof(sess), "session-%u-%u-%u", stp_worker_of(c)->id, c->slot, c->gen);
    stp_write_command(&b, STP_CMD_CONNECTED);
    stp_write_header_str(&b, "version", stp_version_str(s->version), STP_V10);
    stp_write_header_str(&b, "server", SERVER_NAME, STP_V10);
    stp_write_header_str(&b, "session", sess, STP_V10);
    stp_write_header_str(&b, "heart-beat", hb, STP_V10);
    stp_write_body(&b, (struct stp_slice){"", 0});
    int rc = stp_session_write_frame(c, STP_CMD_CONNECTED, b.data, b.len);
    stp_buf_free(&b);
    return rc;
}

static void connected(struct stp_conn *c)
{
    struct stp_session *s = stp_sess(c);
    const struct stp_config *cfg = stp_worker_of(c)->cfg;
    struct stp_pending_connect *pc = &s->pending;
    stp_heartbeat_negotiate(pc->cx, pc->cy, cfg->heartbeat_min_ms, cfg->heartbeat_max_ms,
                            &s->hb_send_ms, &s->hb_recv_ms);
    s->version = pc->version;
    s->parser.version = pc->version;
    struct stp_limits lim = {cfg->max_frame_size, cfg->max_headers, cfg->max_header_length};
    stp_parser_set_limits(&s->parser, &lim);
    s->state = STP_SESS_OPEN;
    stp_session_start_heartbeats(c);
    if (write_connected(c) < 0)
        stp_session_error(c, "internal error", "The broker ran out of memory.", NULL);
    else
        stp_conn_connected(c);
}

/* Printable: control bytes (and bytes past ASCII) as '?', at most max bytes. */
static void log_safe_n(char *out, size_t n, const char *s, size_t len, size_t max)
{
    size_t k = 0;
    for (size_t i = 0; i < len && k + 1 < n && k < max; i++)
        out[k++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
    out[k] = '\0';
}

/* For a log line: at most 64 bytes. */
static void log_safe(char *out, size_t n, const char *s, size_t len)
{
    log_safe_n(out, n, s, len, 64);
}

static void refused(struct stp_conn *c)
{
    struct stp_worker *w = stp_worker_of(c);
    struct stp_pending_connect *pc = &stp_sess(c)->pending;
    char login[72];
    log_safe(login, sizeof(login), pc->login ? pc->login : "", pc->login ? pc->login_len : 0);
    STP_STAT_INC(w->stats.failed_logins);
    if (w->broker)
        stp_backoff_failed(&w->broker->backoff, c->admit_stripe, uv_now(&w->loop));
    stp_info("%s: login failed for '%s'%s", c->peer, login, pc->why ? pc->why : "");
    struct stp_slice receipt = {pc->receipt, pc->receipt_len};
    /* RabbitMQ's words, the same whatever was wrong (unknown login, wrong
     * passcode, no certificate): the client learns nothing about which, and
     * sees no name but the one it sent (made printable, at most LOGIN_MAX). */
    char sent[LOGIN_MAX + 8], detail[LOGIN_MAX + 64];
    log_safe_n(sent, sizeof(sent), pc->sent_login ? pc->sent_login : "",
               pc->sent_login ? pc->sent_login_len : 0, LOGIN_MAX);
    snprintf(detail, sizeof(detail), "Access refused for user '%s'", sent);
    stp_session_error(c, "Bad CONNECT", detail, pc->receipt ? &receipt : NULL);
}

/* The outcome is known: answer now, or when the backoff delay is over. */
static void answer(struct stp_conn *c);

static void on_answer_due(uv_timer_t *t)
{
    answer(t->data);
}

static void decided(struct stp_conn *c, bool ok)
{
    struct stp_session *s = stp_sess(c);
    s->pending.ok = ok;
    s->pending.decided = true;
    uint64_t now = stp_now_ms(c);
    if (s->pending.answer_at_ms > now) {
        uv_timer_start(&c->timer, on_answer_due, s->pending.answer_at_ms - now, 0);
        return;
    }
    answer(c);
}

static void answer(struct stp_conn *c)
{
    struct stp_session *s = stp_sess(c);
    if (s->state != STP_SESS_AUTH || c->closing != STP_OPEN)
        return;
    stp_conn_unhold(c);
    if (!s->pending.ok) {
        refused(c);
        return;
    }
    /* The login stays with the session (ACL checks); the rest goes. */
    s->login = s->pending.login;
    s->login_len = s->pending.login_len;
    s->pending.login = NULL;
    connected(c);
}

/* --- the password check on the thread pool --- */

static void verified(struct stp_conn *c, struct stp_verify *job, bool ok)
{
    struct stp_session *s = stp_sess(c);
    if (s->pending.job != job)
        return;
    s->pending.job = NULL;
    if (ok) {
        size_t plen;
        const char *pass = stp_verify_password(job, &plen);
        stp_login_cache_put(stp_worker_of(c)->broker->login_cache, s->pending.login,
                            s->pending.login_len, pass, plen, uv_hrtime() / 1000000);
    }
    decided(c, ok);
}

static int start_verify(struct stp_conn *c, const char *hash, struct stp_slice pass, bool known)
{
    struct stp_session *s = stp_sess(c);
    if (!known)
        s->pending.why = " (no such user)";
    s->pending.job = stp_verify_start(c, hash, s->pending.login, pass.p, pass.len, verified);
    return s->pending.job ? 0 : STP_ENOMEM;
}

/* --- deciding who the client is --- */

static int set_login(struct stp_pending_connect *pc, const char *login, size_t len)
{
    free(pc->login);
    pc->login = malloc(len + 1);
    if (!pc->login)
        return STP_ENOMEM;
    memcpy(pc->login, login, len);
    pc->login[len] = '\0';
    pc->login_len = len;
    return 0;
}

/* Without login and passcode: the certificate's CN, or the anonymous user. */
static bool identify_without_passcode(struct stp_conn *c, const struct stp_slice *login)
{
    struct stp_worker *w = stp_worker_of(c);
    const struct stp_config *cfg = w->cfg;
    struct stp_pending_connect *pc = &stp_sess(c)->pending;
    if (cfg->tls_cert_login) {
        char cn[LOGIN_MAX + 1];
        if (stp_conn_tls_peer_cn(c, cn, sizeof(cn)) == 0) {
            size_t len = strlen(cn);
            if (set_login(pc, cn, len) < 0)
                return false;
            if (login && !stp_slice_eq(*login, cn)) {
                pc->why = " (the login header is not the certificate's CN)";
                return false;
            }
            if (!user_exists(w->broker, cfg, cn, len)) {
                pc->why = " (certificate CN: no such user)";
                return false;
            }
            return true;
        }
    }
    if (!login && cfg->anonymous_user)
        return set_login(pc, cfg->anonymous_user, strlen(cfg->anonymous_user)) == 0;
    pc->why = login ? " (no passcode)" : " (no login)";
    return false;
}

/* Decide now, or start the check that decides later. 0, or a negative code
 * (out of memory). */
static int identify(struct stp_conn *c, const struct stp_frame *f)
{
    struct stp_worker *w = stp_worker_of(c);
    const struct stp_config *cfg = w->cfg;
    struct stp_pending_connect *pc = &stp_sess(c)->pending;
    const struct stp_slice *login = stp_frame_header(f, "login");
    const struct stp_slice *pass = stp_frame_header(f, "passcode");
    if (login && set_login(pc, login->p, login->len < LOGIN_MAX ? login->len : LOGIN_MAX) < 0)
        return STP_ENOMEM;
    /* What the client sent, for a refusal's text (pc->login may become the
     * certificate's CN). */
    if (login && !(pc->sent_login = stp_session_strdup((struct stp_slice){
                       login->p, login->len < LOGIN_MAX ? login->len : LOGIN_MAX})))
        return STP_ENOMEM;
    pc->sent_login_len = login ? (login->len < LOGIN_MAX ? login->len : LOGIN_MAX) : 0;
    if (!have_users(w->broker, cfg)) {
        bool ok = cfg->allow_remote_unauthenticated || stp_conn_peer_is_loopback(c);
        if (!ok)
            pc->why = " (no users are configured: only loopback clients may connect; see "
                      "--users-file and --allow-remote-unauthenticated)";
        decided(c, ok);
        return 0;
    }
    if (!login || !pass) {
        decided(c, identify_without_passcode(c, login));
        return 0;
    }
    if (login->len > LOGIN_MAX) {
        pc->why = " (login too long)";
        decided(c, false);
        return 0;
    }
    if (!w->broker || !w->broker->users) {
        bool ok = stp_plain_user_ok(cfg, login->p, login->len, pass->p, pass->len, NULL);
        if (!ok)
            pc->why = user_exists(w->broker, cfg, login->p, login->len) ? " (wrong passcode)"
                                                                        : " (no such user)";
        decided(c, ok);
        return 0;
    }
    const char *hash = stp_users_hash(w->broker->users, login->p, login->len);
    if (hash && stp_login_cache_hit(w->broker->login_cache, login->p, login->len, pass->p,
                                    pass->len, uv_hrtime() / 1000000)) {
        decided(c, true);
        return 0;
    }
    return start_verify(c, hash ? hash : stp_users_dummy_hash(w->broker->users), *pass,
                        hash != NULL);
}

int stp_session_on_connect(struct stp_conn *c, const struct stp_frame *f)
{
    struct stp_session *s = stp_sess(c);
    struct stp_worker *w = stp_worker_of(c);
    struct stp_pending_connect *pc = &s->pending;
    enum stp_version v = stp_negotiate_version(stp_frame_header(f, "accept-version"));
    if (v == STP_V_NONE) {
        stp_session_error_x(c, "Version mismatch", "Supported versions are 1.0,1.1,1.2",
                            stp_session_receipt(f), "version", "1.0,1.1,1.2", true);
        return -1;
    }
    if (stp_heartbeat_parse(stp_frame_header(f, "heart-beat"), &pc->cx, &pc->cy) < 0)
        return stp_session_bad(c, f, "invalid heart-beat header",
                               "heart-beat must be two non-negative integers: cx,cy");
    pc->version = v;
    const struct stp_slice *cid = stp_frame_header(f, "client-id");
    if (cid && (cid->len == 0 || cid->len > CLIENT_ID_MAX))
        return stp_session_bad(c, f, "invalid client-id", "client-id must be 1 to 256 bytes long.");
    if (cid && !(s->client_id = stp_session_strdup(*cid)))
        return -1;
    const struct stp_slice *receipt = stp_session_receipt(f);
    if (receipt) {
        pc->receipt = stp_session_strdup(*receipt);
        if (!pc->receipt)
            return -1;
        pc->receipt_len = receipt->len;
    }
    /* Hold the client's next frames until it is known who it is. */
    s->state = STP_SESS_AUTH;
    uv_timer_stop(&c->timer);
    stp_conn_hold(c);
    uint64_t delay =
        w->broker ? stp_backoff_delay(&w->broker->backoff, c->admit_stripe, uv_now(&w->loop)) : 0;
    pc->answer_at_ms = uv_now(&w->loop) + delay;
    return identify(c, f) < 0 ? -1 : 0;
}

void stp_session_connect_free(struct stp_conn *c)
{
    struct stp_session *s = stp_sess(c);
    free(s->pending.login);
    free(s->pending.sent_login);
    s->pending.sent_login = NULL;
    free(s->pending.receipt);
    s->pending.login = s->pending.receipt = NULL;
    s->pending.job = NULL; /* it finds the connection gone and frees itself */
    free(s->login);
    s->login = NULL;
    free(s->client_id);
    s->client_id = NULL;
}

/*
 * metrics_http.c - the broker's answers to the WebSocket listener's HTTP
 * endpoints (ops->http): /healthz always, /metrics open or, with
 * --metrics-auth LOGIN, behind HTTP Basic authentication as that user.
 *
 * Runs on the connection's worker. A users-file password is checked on the
 * thread pool (verify.h) and the answer given later; a --user passcode is
 * compared in constant time at once. A wrong or missing credential gets 401
 * with a WWW-Authenticate challenge, counts as a failed login (metrics, log
 * line, backoff); an address in backoff gets 429 with Retry-After and no
 * check at all, so /metrics is no faster a way to guess passwords than
 * CONNECT.
 */
#include "auth/auth.h"
#include "broker/broker.h"
#include "broker/metrics.h"
#include "broker/session.h"
#include "broker/verify.h"
#include "broker/worker.h"
#include "stampede/log.h"

#include <stdio.h>
#include <string.h>

#define CHALLENGE "WWW-Authenticate: Basic realm=\"stampede\", charset=\"UTF-8\"\r\n"

static const char metrics_type[] = "text/plain; version=0.0.4; charset=utf-8";

static void unauthorized(struct stp_conn *c, struct stp_http_answer *ans, const char *login)
{
    struct stp_worker *w = stp_worker_of(c);
    STP_STAT_INC(w->stats.failed_logins);
    stp_backoff_failed(&w->broker->backoff, c->admit_stripe, uv_now(&w->loop));
    char safe[72];
    size_t k = 0;
    for (const char *p = login ? login : ""; *p && k < 64; p++)
        safe[k++] = *p >= 0x20 && *p < 0x7f ? *p : '?';
    safe[k] = '\0';
    stp_info("%s: /metrics login failed for '%s'", c->peer, safe);
    ans->status = 401;
    ans->type = "text/plain; charset=utf-8";
    ans->extra_headers = CHALLENGE;
    stp_buf_append_str(ans->body, "Authentication is required.\n");
}

static void metrics_ok(struct stp_conn *c, struct stp_http_answer *ans)
{
    ans->status = 200;
    ans->type = metrics_type;
    if (stp_metrics_text(stp_worker_of(c)->broker, ans->body) < 0) {
        ans->status = 500;
        ans->type = "text/plain";
        stp_buf_reset(ans->body);
        stp_buf_append_str(ans->body, "internal error\n");
    }
}

/* The users-file check came back. */
static void verified(struct stp_conn *c, struct stp_verify *job, bool ok)
{
    struct stp_buf body = STP_BUF_INIT;
    struct stp_http_answer ans = {.body = &body};
    if (ok)
        metrics_ok(c, &ans);
    else
        unauthorized(c, &ans, stp_verify_login(job));
    stp_conn_http_reply(c, &ans);
    stp_buf_free(&body);
}

static int metrics_authenticated(struct stp_conn *c, const struct stp_http_request *req,
                                 struct stp_http_answer *ans)
{
    struct stp_worker *w = stp_worker_of(c);
    struct stp_broker *b = w->broker;
    const struct stp_config *cfg = w->cfg;
    uint64_t delay = stp_backoff_delay(&b->backoff, c->admit_stripe, uv_now(&w->loop));
    if (delay > 0) {
        /* Read by the net right after this returns, on this thread. */
        static _Thread_local char retry[64];
        snprintf(retry, sizeof(retry), "Retry-After: %llu\r\n",
                 (unsigned long long)(delay + 999) / 1000);
        ans->status = 429;
        ans->extra_headers = retry;
        return stp_buf_append_str(ans->body, "Too many failed logins; retry later.\n") < 0 ? -1 : 0;
    }
    char login[STP_BASIC_MAX], pass[STP_BASIC_MAX];
    if (!req->authorization || stp_basic_auth_parse(req->authorization, req->authorization_len,
                                                    login, sizeof(login), pass, sizeof(pass)) < 0) {
        /* No credentials is the usual first request: a challenge, not a
         * failed login. */
        ans->status = 401;
        ans->extra_headers = CHALLENGE;
        return stp_buf_append_str(ans->body, "Authentication is required.\n") < 0 ? -1 : 0;
    }
    if (!b->users) {
        bool ok =
            stp_plain_user_ok(cfg, login, strlen(login), pass, strlen(pass), cfg->metrics_auth);
        explicit_bzero(pass, sizeof(pass));
        if (ok)
            metrics_ok(c, ans);
        else
            unauthorized(c, ans, login);
        return 0;
    }
    /* Another login than --metrics-auth's is checked against the dummy
     * hash and refused: the same time either way. */
    bool right_user = strcmp(login, cfg->metrics_auth) == 0;
    const char *hash = right_user ? stp_users_hash(b->users, login, strlen(login)) : NULL;
    struct stp_verify *job = stp_verify_start(c, hash ? hash : stp_users_dummy_hash(b->users),
                                              login, pass, strlen(pass), verified);
    explicit_bzero(pass, sizeof(pass));
    return job ? 1 : -1; /* the dummy never matches: its answer is the 401 */
}

int stp_metrics_http(struct stp_conn *c, const struct stp_http_request *req,
                     struct stp_http_answer *ans)
{
    struct stp_worker *w = stp_worker_of(c);
    if (!w->broker)
        return -1;
    if (req->which == STP_WS_HEALTHZ) {
        ans->status = 200;
        ans->type = "application/json";
        return stp_metrics_healthz(w->broker, ans->body);
    }
    if (w->cfg->metrics_auth)
        return metrics_authenticated(c, req, ans);
    metrics_ok(c, ans);
    return 0;
}

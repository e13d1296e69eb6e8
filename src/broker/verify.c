/* verify.c - password checks on libuv's thread pool; see verify.h. */
#include "broker/verify.h"

#include "auth/auth.h"
#include "broker/worker.h"
#include "stampede/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Compare without an early exit: the time depends only on stored_len. */
static bool ct_equal(const char *given, size_t given_len, const char *stored, size_t stored_len)
{
    unsigned char diff = given_len != stored_len;
    for (size_t i = 0; i < stored_len; i++)
        diff |= (unsigned char)(stored[i] ^ (given_len ? given[i % given_len] : 0));
    return diff == 0;
}

bool stp_plain_user_ok(const struct stp_config *cfg, const char *login, size_t llen,
                       const char *pass, size_t plen, const char *only)
{
    bool ok = false;
    for (size_t i = 0; i < cfg->nusers; i++) {
        const struct stp_user *u = &cfg->users[i];
        bool named = !only || strcmp(u->login, only) == 0;
        bool l = ct_equal(login, llen, u->login, strlen(u->login));
        bool p = ct_equal(pass, plen, u->passcode, strlen(u->passcode));
        ok |= named & l & p;
    }
    return ok;
}

struct stp_verify {
    uv_work_t req;
    struct stp_worker *w;
    uint32_t slot, gen;
    const char *hash;
    stp_verify_done *done;
    char login[65];
    bool ok;
    size_t pass_len;
    char pass[]; /* wiped before free */
};

/* On a thread-pool thread: only the job's own fields. */
static void verify_work(uv_work_t *req)
{
    struct stp_verify *j = req->data;
    j->ok = stp_password_verify(j->hash, j->pass, j->pass_len);
}

static void verify_after(uv_work_t *req, int status)
{
    struct stp_verify *j = req->data;
    struct stp_conn *c = stp_worker_conn(j->w, j->slot, j->gen);
    if (c && c->closing == STP_OPEN)
        j->done(c, j, status == 0 && j->ok);
    explicit_bzero(j->pass, j->pass_len);
    free(j);
}

const char *stp_verify_login(const struct stp_verify *job)
{
    return job->login;
}

const char *stp_verify_password(const struct stp_verify *job, size_t *len)
{
    *len = job->pass_len;
    return job->pass;
}

struct stp_verify *stp_verify_start(struct stp_conn *c, const char *hash, const char *login,
                                    const char *pass, size_t len, stp_verify_done *done)
{
    struct stp_worker *w = stp_worker_of(c);
    struct stp_verify *j = malloc(sizeof(*j) + len + 1);
    if (!j)
        return NULL;
    *j = (struct stp_verify){
        .w = w, .slot = c->slot, .gen = c->gen, .hash = hash, .done = done, .pass_len = len};
    j->req.data = j;
    snprintf(j->login, sizeof(j->login), "%s", login ? login : "");
    memcpy(j->pass, pass, len);
    j->pass[len] = '\0';
    if (uv_queue_work(&w->loop, &j->req, verify_work, verify_after) < 0) {
        explicit_bzero(j->pass, len);
        free(j);
        return NULL;
    }
    return j;
}

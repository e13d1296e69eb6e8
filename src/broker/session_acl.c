/*
 * session_acl.c - per-destination permissions (--acl-file) of one session.
 *
 * Runs on the connection's worker. The ACL (src/auth/acl.c) is matched once
 * per (session, destination): the answer is kept in the session's perms map,
 * so a SEND to a destination already allowed costs one hash lookup and no
 * pattern matching. The map holds at most PERMS_MAX destinations; past that
 * it is emptied and refilled (a client cycling through more destinations
 * pays the matching again, never unbounded memory).
 */
#include "auth/auth.h"
#include "broker/broker.h"
#include "broker/dest.h"
#include "broker/session_int.h"
#include "broker/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PERMS_MAX 1024

struct perm_entry {
    unsigned perms;
    size_t len;
    char dest[]; /* the map's key */
};

void stp_session_perms_free(struct stp_conn *c)
{
    struct stp_map *m = &stp_sess(c)->perms;
    stp_sess(c)->perm_last = NULL;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].hash)
            free(m->slots[i].value);
    stp_map_free(m);
}

/* The permissions of this session on dest: from the cache, or matched and
 * cached. On out of memory the answer is computed but not kept. */
static unsigned perms_of(struct stp_conn *c, const struct stp_acl *acl, const char *dest,
                         size_t len)
{
    struct stp_session *s = stp_sess(c);
    /* A publisher mostly sends to the destination it sent to last: one
     * compare, no hashing. */
    struct perm_entry *e = s->perm_last;
    if (e && e->len == len && memcmp(e->dest, dest, len) == 0)
        return e->perms;
    e = stp_map_get(&s->perms, dest, len);
    if (e) {
        s->perm_last = e;
        return e->perms;
    }
    unsigned perms =
        stp_acl_perms(acl, s->login ? s->login : "", s->login ? s->login_len : 0, dest, len);
    if (s->perms.count >= PERMS_MAX)
        stp_session_perms_free(c);
    e = malloc(sizeof(*e) + len);
    if (!e)
        return perms;
    e->perms = perms;
    e->len = len;
    memcpy(e->dest, dest, len);
    if (stp_map_put(&s->perms, e->dest, len, e) < 0) {
        free(e);
        return perms;
    }
    s->perm_last = e;
    return perms;
}

int stp_session_check_reply_to(struct stp_conn *c, const struct stp_frame *f,
                               const struct stp_slice *rt)
{
    if (!rt)
        return 0;
    struct stp_broker *b = stp_worker_of(c)->broker;
    enum stp_dest_kind k = stp_dest_kind(rt->p, rt->len);
    if (k == STP_DEST_TEMP && stp_session_check_dest(c, f, rt) < 0)
        return -1; /* rewritten to a reply queue: it must be a valid name */
    if (!b || !b->acl || k == STP_DEST_BAD || k == STP_DEST_TEMP || k == STP_DEST_REPLY)
        return 0;
    if (stp_session_check_dest(c, f, rt) < 0)
        return -1;
    return stp_session_check_perm(c, f, rt, STP_ACL_WRITE);
}

int stp_session_check_perm(struct stp_conn *c, const struct stp_frame *f,
                           const struct stp_slice *dest, unsigned perm)
{
    struct stp_broker *b = stp_worker_of(c)->broker;
    if (!b || !b->acl)
        return 0;
    if ((perms_of(c, b->acl, dest->p, dest->len) & perm) == perm)
        return 0;
    /* dest passed stp_session_check_dest: printable. RabbitMQ's words
     * (its AMQP access_refused error; the user is the login, '' for none). */
    struct stp_session *s = stp_sess(c);
    return stp_session_badf(c, f, "access_refused", "access to %.*s refused for user '%.*s' (%s)",
                            stp_quote_len(dest->len), dest->p,
                            s->login ? stp_quote_len(s->login_len) : 0, s->login ? s->login : "",
                            perm == STP_ACL_READ ? "this login may not subscribe to it"
                                                 : "this login may not send to it");
}

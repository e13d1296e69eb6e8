/*
 * users.c - the users file: LOGIN:HASH lines, looked up by login (issue 11).
 *
 * Each user is one allocation holding its hash and its login; the map's keys
 * point at those logins. The table is built on the main thread and only
 * read afterwards.
 */
#include "auth_internal.h"

#include "stampede/error.h"
#include "stampede/map.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINE 4096
#define MAX_LOGIN 256

struct user {
    char hash[STP_PASSWORD_HASH_MAX];
    size_t line;
    size_t login_len;
    char login[]; /* not NUL-terminated */
};

struct stp_users {
    struct stp_map by_login; /* login -> struct user */
    char dummy[STP_PASSWORD_HASH_MAX];
};

static void user_free(struct user *usr)
{
    explicit_bzero(usr->hash, sizeof(usr->hash));
    free(usr);
}

static void users_destroy(struct stp_users *u)
{
    for (size_t i = 0; i < u->by_login.cap; i++) {
        if (u->by_login.slots[i].hash)
            user_free(u->by_login.slots[i].value);
    }
    stp_map_free(&u->by_login);
    explicit_bzero(u->dummy, sizeof(u->dummy));
    free(u);
}

static bool is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != ' ' && s[i] != '\t')
            return false;
    }
    return true;
}

static bool is_comment(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i < n && s[i] == '#';
}

static bool login_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || c == ':')
            return false;
    }
    return true;
}

/* One LOGIN:HASH line into u (*added: the new user). 0; STP_EINVAL after a
 * message in err (which never quotes the hash); STP_ENOMEM. */
static int parse_line(struct stp_users *u, const char *s, size_t n, const char *name, size_t lineno,
                      char *err, size_t errlen, struct user **added)
{
    const char *colon = memchr(s, ':', n);
    if (!colon) {
        stp_auth_set_err(err, errlen, "%s:%zu: expected LOGIN:HASH", name, lineno);
        return STP_EINVAL;
    }
    size_t llen = (size_t)(colon - s);
    const char *h = colon + 1;
    size_t hlen = n - llen - 1;
    if (llen == 0) {
        stp_auth_set_err(err, errlen, "%s:%zu: empty login", name, lineno);
        return STP_EINVAL;
    }
    if (llen > MAX_LOGIN) {
        stp_auth_set_err(err, errlen, "%s:%zu: login longer than %d bytes", name, lineno,
                         MAX_LOGIN);
        return STP_EINVAL;
    }
    if (!login_ok(s, llen)) {
        stp_auth_set_err(
            err, errlen,
            "%s:%zu: login may only contain printable ASCII characters other than space", name,
            lineno);
        return STP_EINVAL;
    }
    struct user *dup = stp_map_get(&u->by_login, s, llen);
    if (dup) {
        stp_auth_set_err(err, errlen, "%s:%zu: login \"%.*s\" already given on line %zu", name,
                         lineno, (int)llen, s, dup->line);
        return STP_EINVAL;
    }
    struct user *usr = malloc(sizeof(*usr) + llen);
    if (!usr)
        return STP_ENOMEM;
    bool hash_ok = hlen < sizeof(usr->hash) && !memchr(h, '\0', hlen);
    if (hash_ok) {
        memcpy(usr->hash, h, hlen);
        usr->hash[hlen] = '\0';
        hash_ok = stp_password_hash_valid(usr->hash);
    }
    if (!hash_ok) {
        user_free(usr);
        stp_auth_set_err(
            err, errlen,
            "%s:%zu: the hash is not an argon2id PHC string within the accepted parameters "
            "(make one with `stampede hash-password`)",
            name, lineno);
        return STP_EINVAL;
    }
    usr->line = lineno;
    usr->login_len = llen;
    memcpy(usr->login, s, llen);
    if (stp_map_put(&u->by_login, usr->login, llen, usr) != 0) {
        user_free(usr);
        return STP_ENOMEM;
    }
    *added = usr;
    return 0;
}

/* The dummy hash: a random password hashed with the first user's m, t, p. */
static int make_dummy(struct stp_users *u, const char *first_hash)
{
    struct stp_argon2_params params;
    if (!stp_password_hash_parse(first_hash, &params))
        return STP_EINVAL; /* cannot happen: every stored hash was checked */
    unsigned char pw[16];
    int rc = stp_auth_random(pw, sizeof(pw));
    if (rc == 0)
        rc = stp_password_hash_with((const char *)pw, sizeof(pw), &params, u->dummy);
    explicit_bzero(pw, sizeof(pw));
    return rc;
}

int stp_users_parse(struct stp_users **out, const char *text, size_t len, const char *name,
                    char *err, size_t errlen)
{
    *out = NULL;
    struct stp_users *u = calloc(1, sizeof(*u));
    if (!u)
        return STP_ENOMEM;
    const char *first_hash = NULL;
    size_t lineno = 0, pos = 0, n;
    const char *s;
    int rc = 0;
    while (stp_auth_next_line(text, len, &pos, &s, &n)) {
        lineno++;
        if (n > MAX_LINE) {
            stp_auth_set_err(err, errlen, "%s:%zu: line longer than %d bytes", name, lineno,
                             MAX_LINE);
            rc = STP_EINVAL;
            break;
        }
        if (is_blank(s, n) || is_comment(s, n))
            continue;
        struct user *usr;
        rc = parse_line(u, s, n, name, lineno, err, errlen, &usr);
        if (rc)
            break;
        if (!first_hash)
            first_hash = usr->hash;
    }
    if (rc == 0 && u->by_login.count == 0) {
        stp_auth_set_err(err, errlen, "%s: no users", name);
        rc = STP_EINVAL;
    }
    if (rc == 0) {
        rc = make_dummy(u, first_hash);
        if (rc)
            stp_auth_set_err(err, errlen, "%s: cannot make the dummy hash: %s", name,
                             stp_strerror(rc));
    } else if (rc == STP_ENOMEM) {
        stp_auth_set_err(err, errlen, "%s:%zu: out of memory", name, lineno);
    }
    if (rc) {
        users_destroy(u);
        return rc;
    }
    *out = u;
    return 0;
}

int stp_users_load(struct stp_users **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    char *text;
    size_t len;
    int rc = stp_auth_read_file(path, &text, &len, err, errlen);
    if (rc == 0)
        rc = stp_users_parse(out, text ? text : "", len, path, err, errlen);
    stp_auth_free_text(text, len);
    return rc;
}

void stp_users_free(struct stp_users **u)
{
    if (u && *u) {
        users_destroy(*u);
        *u = NULL;
    }
}

size_t stp_users_count(const struct stp_users *u)
{
    return u ? u->by_login.count : 0;
}

const char *stp_users_hash(const struct stp_users *u, const char *login, size_t len)
{
    if (!u)
        return NULL;
    const struct user *usr = stp_map_get(&u->by_login, login, len);
    return usr ? usr->hash : NULL;
}

const char *stp_users_dummy_hash(const struct stp_users *u)
{
    return u ? u->dummy : NULL;
}

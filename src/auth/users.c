/* users.c - placeholder until the users file lands (issue 11, in progress). */
#include "auth.h"

#include "stampede/error.h"

#include <stdio.h>

int stp_users_load(struct stp_users **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    snprintf(err, errlen, "%s: users files are not supported yet", path);
    return STP_EINVAL;
}

int stp_users_parse(struct stp_users **out, const char *text, size_t len, const char *name,
                    char *err, size_t errlen)
{
    (void)text, (void)len;
    return stp_users_load(out, name, err, errlen);
}

void stp_users_free(struct stp_users **u)
{
    *u = NULL;
}

size_t stp_users_count(const struct stp_users *u)
{
    (void)u;
    return 0;
}

const char *stp_users_hash(const struct stp_users *u, const char *login, size_t len)
{
    (void)u, (void)login, (void)len;
    return NULL;
}

const char *stp_users_dummy_hash(const struct stp_users *u)
{
    (void)u;
    return NULL;
}

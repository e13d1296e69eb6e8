/* acl.c - placeholder until the ACL file lands (issue 11, in progress). */
#include "auth.h"

#include "stampede/error.h"

int stp_acl_load(struct stp_acl **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    snprintf(err, errlen, "%s: ACL files are not supported yet", path);
    return STP_EINVAL;
}

int stp_acl_parse(struct stp_acl **out, const char *text, size_t len, const char *name, char *err,
                  size_t errlen)
{
    (void)text, (void)len;
    return stp_acl_load(out, name, err, errlen);
}

void stp_acl_free(struct stp_acl **a)
{
    *a = NULL;
}

size_t stp_acl_count(const struct stp_acl *a)
{
    (void)a;
    return 0;
}

unsigned stp_acl_perms(const struct stp_acl *a, const char *login, size_t llen, const char *dest,
                       size_t dlen)
{
    (void)a, (void)login, (void)llen, (void)dest, (void)dlen;
    return 0;
}

/* password.c - placeholder until the argon2id implementation lands (issue 11, in progress). */
#include "auth.h"

#include "stampede/error.h"

int stp_password_hash(const char *pw, size_t len, char out[STP_PASSWORD_HASH_MAX])
{
    (void)pw, (void)len, (void)out;
    return STP_EINVAL;
}

bool stp_password_verify(const char *encoded, const char *pw, size_t len)
{
    (void)encoded, (void)pw, (void)len;
    return false;
}

bool stp_password_hash_valid(const char *s)
{
    (void)s;
    return false;
}

int stp_hash_password_main(FILE *in, FILE *out, FILE *err)
{
    (void)in, (void)out;
    fprintf(err, "stampede: hash-password is not built yet\n");
    return 2;
}

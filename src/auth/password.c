/*
 * password.c - password hashes: argon2id through Debian's libargon2, in the
 * PHC string form "$argon2id$v=19$m=M,t=T,p=P$SALT$HASH" (issue 11).
 *
 * Every string that reaches libargon2 for verification has first passed
 * stp_password_hash_parse, whose bounds keep a hostile users file from
 * making each login allocate gigabytes or spin for minutes.
 */
#include "auth_internal.h"

#include "stampede/error.h"

#include <argon2.h>
#include <errno.h>
#include <string.h>
#include <sys/random.h>

/*
 * The parameters of new hashes: OWASP's minimum for argon2id (19 MiB, two
 * passes, one lane). Not more: logins are verified on the broker's thread
 * pool, and a reconnect storm (every client of a restarted broker logging in
 * at once) multiplies the cost by the number of clients, both in memory
 * (m per verification in flight) and in time.
 */
#define HASH_M_KIB 19456u
#define HASH_T 2u
#define HASH_P 1u
#define SALT_LEN 16u
#define TAG_LEN 32u

/* What a stored hash may ask for (stp_password_hash_valid). */
#define MAX_M_KIB 262144u /* 256 MiB */
#define MAX_T 10u
#define MAX_P 4u
#define MIN_SALT 8u
#define MAX_SALT 64u
#define MIN_TAG 16u
#define MAX_TAG 64u

#define HASH_PASSWORD_MAX 4096 /* bytes, stp_hash_password_main */

int stp_auth_random(void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return STP_EIO;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* --- parsing --- */

/* A decimal without sign or leading zeros, at most 0xffffffff; the end of
 * the digits, or NULL. */
static const char *parse_u32(const char *s, uint32_t *v)
{
    const char *start = s;
    uint64_t acc = 0;
    while (*s >= '0' && *s <= '9') {
        acc = acc * 10 + (uint64_t)(*s - '0');
        if (acc > UINT32_MAX)
            return NULL;
        s++;
    }
    if (s == start || (*start == '0' && s != start + 1))
        return NULL;
    *v = (uint32_t)acc;
    return s;
}

/* Unpadded standard base64 up to the first other character, canonical (the
 * unused low bits of the last digit are zero, as libargon2 requires). Its
 * end and decoded length, or NULL. */
static const char *parse_b64(const char *s, size_t *decoded)
{
    size_t n = 0;
    while (stp_auth_b64_value(s[n]) >= 0)
        n++;
    size_t rem = n % 4;
    if (n == 0 || rem == 1)
        return NULL;
    if (rem != 0) {
        int last = stp_auth_b64_value(s[n - 1]);
        int unused = rem == 2 ? 0x0f : 0x03;
        if (last & unused)
            return NULL;
    }
    *decoded = n / 4 * 3 + (rem ? rem - 1 : 0);
    return s + n;
}

static bool skip(const char **s, const char *lit)
{
    size_t n = strlen(lit);
    if (strncmp(*s, lit, n) != 0)
        return false;
    *s += n;
    return true;
}

bool stp_password_hash_parse(const char *s, struct stp_argon2_params *params)
{
    if (!s || strnlen(s, STP_PASSWORD_HASH_MAX) >= STP_PASSWORD_HASH_MAX)
        return false;
    struct stp_argon2_params pr;
    size_t salt_len, tag_len;
    const char *c = s;
    if (!skip(&c, "$argon2id$v=19$m=") || !(c = parse_u32(c, &pr.m_kib)))
        return false;
    if (!skip(&c, ",t=") || !(c = parse_u32(c, &pr.t)))
        return false;
    if (!skip(&c, ",p=") || !(c = parse_u32(c, &pr.p)))
        return false;
    if (!skip(&c, "$") || !(c = parse_b64(c, &salt_len)))
        return false;
    if (!skip(&c, "$") || !(c = parse_b64(c, &tag_len)) || *c != '\0')
        return false;
    if (pr.p < 1 || pr.p > MAX_P || pr.t < 1 || pr.t > MAX_T)
        return false;
    if (pr.m_kib < 8 * pr.p || pr.m_kib > MAX_M_KIB)
        return false;
    if (salt_len < MIN_SALT || salt_len > MAX_SALT || tag_len < MIN_TAG || tag_len > MAX_TAG)
        return false;
    if (params)
        *params = pr;
    return true;
}

bool stp_password_hash_valid(const char *s)
{
    return stp_password_hash_parse(s, NULL);
}

/* --- hashing --- */

int stp_password_hash_with(const char *pw, size_t len, const struct stp_argon2_params *params,
                           char out[STP_PASSWORD_HASH_MAX])
{
    out[0] = '\0';
    if (len > UINT32_MAX || (!pw && len))
        return STP_EINVAL;
    size_t enc =
        argon2_encodedlen(params->t, params->m_kib, params->p, SALT_LEN, TAG_LEN, Argon2_id);
    if (enc > STP_PASSWORD_HASH_MAX)
        return STP_EINVAL;
    unsigned char salt[SALT_LEN];
    int rc = stp_auth_random(salt, sizeof(salt));
    if (rc)
        return rc;
    /* hash = NULL: libargon2 keeps the raw tag in its own memory and wipes it. */
    rc = argon2_hash(params->t, params->m_kib, params->p, pw, len, salt, sizeof(salt), NULL,
                     TAG_LEN, out, enc, Argon2_id, ARGON2_VERSION_13);
    if (rc != ARGON2_OK) {
        out[0] = '\0';
        return rc == ARGON2_MEMORY_ALLOCATION_ERROR ? STP_ENOMEM : STP_EINVAL;
    }
    return 0;
}

int stp_password_hash(const char *pw, size_t len, char out[STP_PASSWORD_HASH_MAX])
{
    static const struct stp_argon2_params params = {HASH_M_KIB, HASH_T, HASH_P};
    return stp_password_hash_with(pw, len, &params, out);
}

bool stp_password_verify(const char *encoded, const char *pw, size_t len)
{
    if (!stp_password_hash_valid(encoded) || len > UINT32_MAX || (!pw && len))
        return false;
    /* argon2id_verify compares the tags in constant time. */
    return argon2id_verify(encoded, pw, len) == ARGON2_OK;
}

/* --- stampede hash-password --- */

int stp_hash_password_main(FILE *in, FILE *out, FILE *err)
{
    /* Room for the longest password, a CR and one byte more to tell "too long". */
    char buf[HASH_PASSWORD_MAX + 2];
    char hash[STP_PASSWORD_HASH_MAX];
    const char *what = NULL;
    size_t n = 0;
    bool too_long = false;
    int c;
    while ((c = getc(in)) != EOF && c != '\n') {
        if (n == sizeof(buf)) {
            too_long = true;
            break;
        }
        buf[n++] = (char)c;
    }
    if (!too_long && n > 0 && buf[n - 1] == '\r')
        n--;
    if (ferror(in))
        what = "cannot read the password";
    else if (too_long || n > HASH_PASSWORD_MAX)
        what = "password longer than 4096 bytes";
    else if (n == 0)
        what = "empty password";
    else if (memchr(buf, '\0', n))
        what = "password contains a NUL byte";
    else if (stp_password_hash(buf, n, hash) != 0)
        what = "cannot hash the password";
    explicit_bzero(buf, sizeof(buf));
    if (what) {
        fprintf(err, "stampede: hash-password: %s\n", what);
        return 2;
    }
    fprintf(out, "%s\n", hash);
    return 0;
}

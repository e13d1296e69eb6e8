/*
 * auth_internal.h - helpers shared by password.c and users.c, not part of
 * the auth library's API (auth.h).
 */
#ifndef STP_AUTH_AUTH_INTERNAL_H
#define STP_AUTH_AUTH_INTERNAL_H

#include "auth.h"

/* The argon2id parameters of a PHC string. */
struct stp_argon2_params {
    uint32_t m_kib; /* memory, KiB */
    uint32_t t;     /* passes */
    uint32_t p;     /* lanes */
};

/* stp_password_hash_valid that also returns the parameters (when params is
 * not NULL). */
bool stp_password_hash_parse(const char *s, struct stp_argon2_params *params);

/* stp_password_hash with the given parameters (which must be within the
 * bounds stp_password_hash_valid accepts). 0, or a negative STP_E* code. */
int stp_password_hash_with(const char *pw, size_t len, const struct stp_argon2_params *params,
                           char out[STP_PASSWORD_HASH_MAX]);

/* Fill buf with len bytes from getrandom(2). 0, or STP_EIO. */
int stp_auth_random(void *buf, size_t len);

#endif

/*
 * auth_internal.h - helpers shared by the auth library's files, not part of
 * its API (auth.h).
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

/* --- text.c: the files the auth library reads --- */

#define STP_AUTH_MAX_FILE (16u << 20) /* users and ACL files */

/* Read the whole file at path (at most STP_AUTH_MAX_FILE bytes) into *text
 * and *len (free with stp_auth_free_text, which wipes it). 0, or a negative
 * code after "PATH: why" in err. */
int stp_auth_read_file(const char *path, char **text, size_t *len, char *err, size_t errlen);
/* Wipe the first len bytes of text and free it (NULL: nothing). */
void stp_auth_free_text(char *text, size_t len);
/* The next line of text from *pos (LF-terminated or the last one; a CR
 * before the LF dropped): true with *line and *n, false at the end. */
bool stp_auth_next_line(const char *text, size_t len, size_t *pos, const char **line, size_t *n);
/* Write a message into err (errlen bytes; nothing when err is NULL). */
void stp_auth_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The value of a standard (RFC 4648) base64 digit, or -1. */
int stp_auth_b64_value(unsigned char c);

/* Fill buf with len bytes from getrandom(2). 0, or STP_EIO. */
int stp_auth_random(void *buf, size_t len);

#endif

/*
 * auth.h - who may connect and what they may do: password hashes, the users
 * file, the ACL file and the failed-login backoff (issue 11).
 *
 * A library below the broker: no sockets, no loop. The users and ACL tables
 * are loaded once on the main thread before the workers start and are
 * read-only afterwards, so any thread may query them without a lock. The
 * backoff table is shared by every worker through atomics.
 */
#ifndef STP_AUTH_AUTH_H
#define STP_AUTH_AUTH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* --- password hashes (password.c): argon2id through Debian's libargon2 --- */

/* Longest PHC string stp_password_hash writes, with its NUL. */
#define STP_PASSWORD_HASH_MAX 128

/* Hash a password: argon2id, a fresh 16-byte random salt (getrandom), the
 * parameters below, PHC form "$argon2id$v=19$m=...,t=...,p=...$SALT$HASH".
 * 0, or a negative STP_E* code. */
int stp_password_hash(const char *pw, size_t len, char out[STP_PASSWORD_HASH_MAX]);
/* True when pw matches the PHC string (argon2id only; the parameters are read
 * from the string). The comparison inside is constant-time. Slow by design
 * (tens of milliseconds): never call it on an event loop thread. */
bool stp_password_verify(const char *encoded, const char *pw, size_t len);
/* True when s is a well-formed argon2id PHC string whose parameters are
 * within the bounds a users file may ask for (so a hostile file cannot make
 * every login allocate gigabytes). */
bool stp_password_hash_valid(const char *s);

/* `stampede hash-password`: read one password from `in` (to the first LF or
 * EOF; a trailing CR is dropped), print its hash and a LF on `out`. 0, or 2
 * after a one-line error on `err` (empty input, longer than 4 KiB, NUL). */
int stp_hash_password_main(FILE *in, FILE *out, FILE *err);

/* --- the users file (users.c) --- */

struct stp_users; /* immutable once loaded */

/* Load LOGIN:HASH lines (`#` comments and blank lines skipped; the login is
 * everything before the first ':', non-empty, printable, no spaces; the hash
 * must pass stp_password_hash_valid; a login given twice is an error). 0, or
 * a negative code after writing "FILE:LINE: what is wrong" into err. */
int stp_users_load(struct stp_users **out, const char *path, char *err, size_t errlen);
/* The same from memory (name is used in error messages). */
int stp_users_parse(struct stp_users **out, const char *text, size_t len, const char *name,
                    char *err, size_t errlen);
void stp_users_free(struct stp_users **u);
size_t stp_users_count(const struct stp_users *u);
/* The hash stored for login, or NULL when there is no such user. */
const char *stp_users_hash(const struct stp_users *u, const char *login, size_t len);
/* A valid hash of a random password, made at load time with the same
 * parameters as the file's first user: verifying an unknown login against
 * it costs what a known one costs, so timing does not tell which exist. */
const char *stp_users_dummy_hash(const struct stp_users *u);

/* --- the ACL file (acl.c) --- */

enum { STP_ACL_READ = 1, STP_ACL_WRITE = 2 };

struct stp_acl; /* immutable once loaded */

/* Load lines `LOGIN read|write|readwrite PATTERN` (`#` comments, blank
 * lines; fields separated by spaces or tabs). LOGIN is a login or `*` (any
 * authenticated user). PATTERN is a destination in which `*` matches any
 * run of characters within one `/`-separated segment, `**` matches anything
 * (across segments, also nothing), and `{login}` stands for the connecting
 * login (matched literally: a login's own `*` or `/` are not wildcards).
 * 0, or a negative code after "FILE:LINE: what is wrong" in err. */
int stp_acl_load(struct stp_acl **out, const char *path, char *err, size_t errlen);
int stp_acl_parse(struct stp_acl **out, const char *text, size_t len, const char *name, char *err,
                  size_t errlen);
void stp_acl_free(struct stp_acl **a);
size_t stp_acl_count(const struct stp_acl *a);
/* The permissions (STP_ACL_READ | STP_ACL_WRITE) login has on dest: the
 * union over every rule whose LOGIN is login or `*` and whose pattern
 * matches. Linear in the rules and bounded in time by the lengths (no
 * backtracking blow-up). */
unsigned stp_acl_perms(const struct stp_acl *a, const char *login, size_t llen, const char *dest,
                       size_t dlen);

/* --- HTTP Basic credentials (basic.c) --- */

#define STP_BASIC_MAX 1024 /* decoded LOGIN:PASSWORD bytes at most */

/* Split an Authorization header "Basic BASE64(LOGIN:PASSWORD)" into login
 * and password (NUL-terminated, shorter than lcap and pcap). 0, or
 * STP_EINVAL for anything else (another scheme, bad base64, no ':', an
 * empty login, control bytes, too long). */
int stp_basic_auth_parse(const char *hdr, size_t len, char *login, size_t lcap, char *pass,
                         size_t pcap);

/* --- failed logins (backoff.c) --- */

/* One stripe per source-address hash (the net's admit stripe: IPv4, or an
 * IPv6 /64), counting failed logins in the current one-minute window. */
#define STP_BACKOFF_STRIPES 4096
#define STP_BACKOFF_FREE_FAILURES 5 /* failures per minute before any delay */
#define STP_BACKOFF_MAX_DELAY_MS 5000

struct stp_backoff_stripe {
    _Atomic uint64_t window_start_ms;
    atomic_uint failures;
};

struct stp_backoff {
    struct stp_backoff_stripe stripes[STP_BACKOFF_STRIPES];
};

/* How long to hold the answer to a CONNECT from `stripe` at now_ms: 0 while
 * the address has had fewer than STP_BACKOFF_FREE_FAILURES failures in the
 * last minute, then growing with each further failure, at most
 * STP_BACKOFF_MAX_DELAY_MS. Any thread. */
uint64_t stp_backoff_delay(struct stp_backoff *b, uint32_t stripe, uint64_t now_ms);
/* Count a failed login from `stripe`. Any thread. */
void stp_backoff_failed(struct stp_backoff *b, uint32_t stripe, uint64_t now_ms);

#endif

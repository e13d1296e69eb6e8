/*
 * login_cache.h - passcodes verified recently, so a client that connects
 * again soon (a script that connects per message, a network blip) does not
 * cost another argon2id check (tens of milliseconds on the thread pool; about
 * 50 logins a second on two cores). RabbitMQ keeps an authentication cache
 * for the same reason.
 *
 * Only successful checks of --users-file passcodes are kept: one entry per
 * login (so at most one per user of the file), holding an HMAC-SHA256 of the
 * passcode under a random key made at start, and the time of the check; an
 * entry is good for STP_LOGIN_CACHE_TTL_MS. A wrong passcode never matches an
 * entry and goes to the full check, as does an unknown login (the cache says
 * nothing about which logins exist). What the process memory reveals is a
 * keyed digest of recent passcodes, not the passcodes.
 *
 * Shared by every worker under one mutex, touched only on CONNECT.
 */
#ifndef STP_BROKER_LOGIN_CACHE_H
#define STP_BROKER_LOGIN_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STP_LOGIN_CACHE_TTL_MS (5 * 60 * 1000)

struct stp_login_cache;

/* On the main thread before the workers start. 0, or a negative code. */
int stp_login_cache_new(struct stp_login_cache **out);
void stp_login_cache_free(struct stp_login_cache **lc);
/* Any thread. True when login's passcode pass was verified within the TTL
 * (now_ms: a monotonic clock shared by every thread, uv_hrtime). */
bool stp_login_cache_hit(struct stp_login_cache *lc, const char *login, size_t llen,
                         const char *pass, size_t plen, uint64_t now_ms);
/* Any thread: pass was just verified for login. */
void stp_login_cache_put(struct stp_login_cache *lc, const char *login, size_t llen,
                         const char *pass, size_t plen, uint64_t now_ms);

#endif

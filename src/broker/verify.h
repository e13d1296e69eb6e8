/*
 * verify.h - password checks off the event loop.
 *
 * argon2id takes tens of milliseconds by design, so a check against a
 * --users-file hash runs on libuv's thread pool and its result comes back to
 * the connection's worker. The connection may be gone by then: the job
 * names it by (slot, gen) and owns itself (freed after `done` returned,
 * whatever happened); done is called only when the connection still exists
 * and is open.
 */
#ifndef STP_BROKER_VERIFY_H
#define STP_BROKER_VERIFY_H

#include "net/conn.h"

#include <stdbool.h>
#include <stddef.h>

struct stp_verify;
struct stp_config;

/* --user LOGIN:PASSCODE, checked at once: true when login and pass match a
 * user (only the user named `only`, when not NULL). Every user is compared
 * without an early exit, so the time does not tell which (if any) matched. */
bool stp_plain_user_ok(const struct stp_config *cfg, const char *login, size_t llen,
                       const char *pass, size_t plen, const char *only);

/* On c's worker, with job the value stp_verify_start returned. */
typedef void stp_verify_done(struct stp_conn *c, struct stp_verify *job, bool ok);

/* Check pass against the PHC string hash (which must outlive the job: the
 * broker's users table does). The password is copied and wiped after the
 * check; login (for log lines, cut at 64 bytes) is kept with the job. The
 * job, or NULL (out of memory, or the thread pool refused). */
struct stp_verify *stp_verify_start(struct stp_conn *c, const char *hash, const char *login,
                                    const char *pass, size_t len, stp_verify_done *done);
/* The login the job was started with. */
const char *stp_verify_login(const struct stp_verify *job);
/* During done: the password that was checked (*len bytes). */
const char *stp_verify_password(const struct stp_verify *job, size_t *len);

#endif

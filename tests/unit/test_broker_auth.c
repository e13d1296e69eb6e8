/* Unit tests of CONNECT's authentication and the ACL checks
 * (src/broker/session_connect.c, session_acl.c) through the net's ops
 * table, without sockets (broker_harness.h): the loopback rule without
 * users, --user, --users-file (argon2id on the thread pool, input held
 * meanwhile), --anonymous-user, --acl-file on SEND, SUBSCRIBE and reply-to,
 * and the failed-login counter and backoff. */
#include "auth/auth.h"
#include "broker/login_cache.h"
#include "broker_harness.h"
#include "stampede/counter.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char users_path[64], acl_path[64];

static void fini(void)
{
    th_teardown();
    if (users_path[0])
        unlink(users_path);
    if (acl_path[0])
        unlink(acl_path);
    users_path[0] = acl_path[0] = '\0';
}

TestSuite(auth, .fini = fini);

static void write_temp(char *path, size_t n, const char *text)
{
    snprintf(path, n, "/tmp/stampede-auth-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

/* A users file with alice:wonderland and bob:builder. */
static void write_users(void)
{
    char a[STP_PASSWORD_HASH_MAX], b[STP_PASSWORD_HASH_MAX], text[512];
    cr_assert_eq(stp_password_hash("wonderland", 10, a), 0);
    cr_assert_eq(stp_password_hash("builder", 7, b), 0);
    snprintf(text, sizeof(text), "# test users\nalice:%s\nbob:%s\n", a, b);
    write_temp(users_path, sizeof(users_path), text);
}

static struct th_conn *connect_as(unsigned worker, const char *headers)
{
    struct th_conn *t = th_open(worker);
    th_sendf(t, "CONNECT\naccept-version:1.2\nhost:test\n%s\n", headers);
    cr_assert(th_await(t, 5000), "no answer to CONNECT");
    return t;
}

static void expect_refused(struct th_conn *t)
{
    struct stp_frame f = th_expect(t, STP_CMD_ERROR);
    cr_assert_str_eq(th_header(&f, "message"), "Bad CONNECT");
    th_pump();
    cr_assert(t->torn_down, "a refused connection stays open");
}

static uint64_t failed_logins(void)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < th_broker()->nworkers; i++)
        n += STP_STAT_GET(th_worker(i)->stats.failed_logins);
    return n;
}

Test(auth, no_users_loopback_only)
{
    th_setup(1, NULL);
    struct th_conn *local = connect_as(0, "login:anyone\npasscode:x\n");
    th_expect(local, STP_CMD_CONNECTED);
    struct th_conn *remote = th_open(0);
    remote->c->peer_loopback = false;
    th_send(remote, "CONNECT\naccept-version:1.2\nhost:test\n\n");
    cr_assert(th_await(remote, 1000));
    expect_refused(remote);
    cr_assert_eq(failed_logins(), 1);
}

Test(auth, no_users_remote_allowed_by_flag)
{
    const char *flags[] = {"--allow-remote-unauthenticated", NULL};
    th_setup(1, flags);
    struct th_conn *remote = th_open(0);
    remote->c->peer_loopback = false;
    th_send(remote, "CONNECT\naccept-version:1.2\nhost:test\n\n");
    cr_assert(th_await(remote, 1000));
    th_expect(remote, STP_CMD_CONNECTED);
}

Test(auth, plain_users_right_wrong_unknown_missing)
{
    const char *flags[] = {"--user", "alice:s3cret", "--user", "bob:b", NULL};
    th_setup(1, flags);
    th_expect(connect_as(0, "login:alice\npasscode:s3cret\n"), STP_CMD_CONNECTED);
    expect_refused(connect_as(0, "login:alice\npasscode:s3cre\n"));
    expect_refused(connect_as(0, "login:alice\npasscode:s3cret!\n"));
    expect_refused(connect_as(0, "login:carol\npasscode:s3cret\n"));
    expect_refused(connect_as(0, "login:alice\n"));
    expect_refused(connect_as(0, ""));
    cr_assert_eq(failed_logins(), 5);
}

Test(auth, users_file_checks_off_the_loop_and_holds_input)
{
    write_users();
    const char *flags[] = {"--users-file", users_path, NULL};
    th_setup(2, flags);
    /* CONNECT, SUBSCRIBE and SEND in one read: the SUBSCRIBE and SEND wait
     * for the password check and run after CONNECTED. */
    struct th_conn *t = th_open(0);
    th_send(t, "CONNECT\naccept-version:1.2\nhost:test\nlogin:alice\npasscode:wonderland\n\n");
    th_send(t, "SUBSCRIBE\nid:1\ndestination:/topic/t\nreceipt:r\n\n");
    th_send(t, "SEND\ndestination:/topic/t\n\nhello");
    th_pump();
    cr_assert(th_await(t, 5000));
    th_expect(t, STP_CMD_CONNECTED);
    cr_assert(th_await(t, 5000));
    struct stp_frame r = th_expect(t, STP_CMD_RECEIPT);
    cr_assert_str_eq(th_header(&r, "receipt-id"), "r");
    cr_assert(th_await(t, 5000));
    struct stp_frame m = th_expect(t, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_body(&m), "hello");
    expect_refused(connect_as(1, "login:alice\npasscode:builder\n"));
    expect_refused(connect_as(1, "login:nobody\npasscode:wonderland\n"));
    th_expect(connect_as(1, "login:bob\npasscode:builder\n"), STP_CMD_CONNECTED);
    cr_assert_eq(failed_logins(), 2);
}

Test(auth, refusal_carries_the_receipt_id)
{
    const char *flags[] = {"--user", "alice:x", NULL};
    th_setup(1, flags);
    struct th_conn *t = connect_as(0, "login:alice\npasscode:y\nreceipt:c1\n");
    struct stp_frame f = th_expect(t, STP_CMD_ERROR);
    cr_assert_str_eq(th_header(&f, "message"), "Bad CONNECT");
    cr_assert_str_eq(th_header(&f, "receipt-id"), "c1");
    cr_assert_str_eq(th_body(&f), "Access refused for user 'alice'");
}

Test(auth, anonymous_user)
{
    const char *flags[] = {"--user",           "alice:x", "--user", "guest:unused",
                           "--anonymous-user", "guest",   NULL};
    th_setup(1, flags);
    th_expect(connect_as(0, ""), STP_CMD_CONNECTED);
    /* A login without passcode is not anonymous. */
    expect_refused(connect_as(0, "login:guest\n"));
}

static void setup_acl(const char *rules)
{
    write_users();
    write_temp(acl_path, sizeof(acl_path), rules);
    const char *flags[] = {"--users-file", users_path, "--acl-file", acl_path, NULL};
    th_setup(1, flags);
}

static void expect_denied(struct th_conn *t, const char *dest)
{
    cr_assert(th_await(t, 1000));
    struct stp_frame f = th_expect(t, STP_CMD_ERROR);
    char want[256];
    snprintf(want, sizeof(want), "access to %s refused for user '", dest);
    cr_assert_str_eq(th_header(&f, "message"), "access_refused");
    cr_assert(strncmp(th_body(&f), want, strlen(want)) == 0, "body: %s", th_body(&f));
    th_pump();
    cr_assert(t->torn_down);
}

Test(auth, acl_governs_send_subscribe_and_reply_to)
{
    setup_acl("alice readwrite /queue/{login}.**\n"
              "* read /topic/news.*\n"
              "bob write /topic/news.*\n");
    struct th_conn *alice = connect_as(0, "login:alice\npasscode:wonderland\n");
    th_expect(alice, STP_CMD_CONNECTED);
    th_send(alice, "SUBSCRIBE\nid:1\ndestination:/queue/alice.in\nreceipt:a\n\n");
    th_send(alice, "SUBSCRIBE\nid:2\ndestination:/topic/news.eu\nreceipt:b\n\n");
    th_send(alice, "SEND\ndestination:/queue/alice.in\nreceipt:c\n\nself");
    th_pump();
    th_expect(alice, STP_CMD_RECEIPT);
    th_expect(alice, STP_CMD_RECEIPT);
    struct stp_frame m = th_expect(alice, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_body(&m), "self");
    th_expect(alice, STP_CMD_RECEIPT);

    struct th_conn *bob = connect_as(0, "login:bob\npasscode:builder\n");
    th_expect(bob, STP_CMD_CONNECTED);
    th_send(bob, "SEND\ndestination:/topic/news.eu\nreceipt:d\n\nheadline");
    th_pump();
    th_expect(bob, STP_CMD_RECEIPT);
    m = th_expect(alice, STP_CMD_MESSAGE);
    cr_assert_str_eq(th_body(&m), "headline");
    /* bob may not read alice's queue, nor write to news with reply-to
     * naming her queue. */
    th_send(bob, "SEND\ndestination:/topic/news.eu\nreply-to:/queue/alice.in\n\nx");
    expect_denied(bob, "/queue/alice.in");
    struct th_conn *bob2 = connect_as(0, "login:bob\npasscode:builder\n");
    th_expect(bob2, STP_CMD_CONNECTED);
    th_send(bob2, "SUBSCRIBE\nid:1\ndestination:/queue/alice.in\n\n");
    expect_denied(bob2, "/queue/alice.in");
    /* alice may read news but not write it; `*` is one segment only. */
    th_send(alice, "SEND\ndestination:/topic/news.eu\n\nx");
    expect_denied(alice, "/topic/news.eu");
    th_expect_none(bob);
}

Test(auth, acl_denies_what_no_rule_allows)
{
    setup_acl("# nothing for bob\nalice read /topic/**\n");
    struct th_conn *bob = connect_as(0, "login:bob\npasscode:builder\n");
    th_expect(bob, STP_CMD_CONNECTED);
    th_send(bob, "SUBSCRIBE\nid:1\ndestination:/topic/a/b\n\n");
    expect_denied(bob, "/topic/a/b");
    struct th_conn *alice = connect_as(0, "login:alice\npasscode:wonderland\n");
    th_expect(alice, STP_CMD_CONNECTED);
    th_send(alice, "SUBSCRIBE\nid:1\ndestination:/topic/a/b\nreceipt:ok\n\n");
    cr_assert(th_await(alice, 1000));
    th_expect(alice, STP_CMD_RECEIPT);
}

Test(auth, failed_logins_back_off_then_answer_later)
{
    const char *flags[] = {"--user", "alice:x", NULL};
    th_setup(1, flags);
    for (int i = 0; i < STP_BACKOFF_FREE_FAILURES; i++)
        expect_refused(connect_as(0, "login:alice\npasscode:no\n"));
    /* The sixth answer waits (250 ms), even for the right passcode; other
     * connections are served meanwhile. */
    struct th_conn *t = th_open(0);
    uint64_t t0 = uv_hrtime();
    th_send(t, "CONNECT\naccept-version:1.2\nhost:test\nlogin:alice\npasscode:x\n\n");
    th_pump();
    cr_assert_eq(th_pending_frames(t), 0, "answered before the backoff delay");
    cr_assert(th_await(t, 2000));
    uint64_t waited_ms = (uv_hrtime() - t0) / 1000000;
    cr_assert_geq(waited_ms, 200, "answered after %llu ms", (unsigned long long)waited_ms);
    th_expect(t, STP_CMD_CONNECTED);
}

/* A passcode verified once is remembered (per login, for the TTL): the next
 * CONNECT with it needs no argon2 check; a wrong passcode is still checked
 * (and refused), and logins never verified are not in the cache. */
Test(auth, verified_passcodes_are_cached)
{
    write_users();
    const char *flags[] = {"--users-file", users_path, NULL};
    th_setup(1, flags);
    struct stp_login_cache *lc = th_broker()->login_cache;
    cr_assert_not_null(lc);
    uint64_t now = uv_hrtime() / 1000000;
    cr_assert_not(stp_login_cache_hit(lc, "alice", 5, "wonderland", 10, now));
    th_expect(connect_as(0, "login:alice\npasscode:wonderland\n"), STP_CMD_CONNECTED);
    now = uv_hrtime() / 1000000;
    cr_assert(stp_login_cache_hit(lc, "alice", 5, "wonderland", 10, now));
    cr_assert_not(stp_login_cache_hit(lc, "alice", 5, "wonderlan", 9, now));
    cr_assert_not(stp_login_cache_hit(lc, "bob", 3, "builder", 7, now));
    cr_assert_not(
        stp_login_cache_hit(lc, "alice", 5, "wonderland", 10, now + STP_LOGIN_CACHE_TTL_MS + 1),
        "an entry outlived its TTL");
    /* From the cache: CONNECTED again; a wrong passcode is still refused. */
    th_expect(connect_as(0, "login:alice\npasscode:wonderland\n"), STP_CMD_CONNECTED);
    expect_refused(connect_as(0, "login:alice\npasscode:wonderlanD\n"));
    /* A failed login adds nothing. */
    cr_assert_not(stp_login_cache_hit(lc, "alice", 5, "wonderlanD", 10, now));
}

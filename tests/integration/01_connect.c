/*
 * 01_connect.c - CONNECT/STOMP against a real broker: version negotiation, the
 * CONNECTED headers, host values, authentication with and without --user,
 * frames before CONNECT, a second CONNECT, and the login timeout.
 */
#include "harness.h"

#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

TestSuite(connect, .init = h_init, .fini = h_fini, .timeout = 20);

/* CONNECT with accept-version av (NULL = none), expect CONNECTED with version want. */
static void negotiates(struct h_broker *b, const char *av, const char *want)
{
    struct h_conn *c = h_dial(b);
    struct h_frame *f = h_stomp_connect(c, av, NULL, NULL, NULL, false);
    cr_assert(f != NULL && strcmp(f->cmd, "CONNECTED") == 0,
              "accept-version:%s: expected CONNECTED, got %s", av ? av : "(none)", h_show(f));
    const char *v = h_hdr(f, "version");
    cr_assert(v != NULL && strcmp(v, want) == 0, "accept-version:%s: expected version:%s, got %s",
              av ? av : "(none)", want, h_show(f));
    h_close(c);
}

Test(connect, no_accept_version_is_1_0)
{
    struct h_broker *b = H_START0();
    negotiates(b, NULL, "1.0");
    h_broker_stop_ok(b);
}

Test(connect, each_version_alone)
{
    struct h_broker *b = H_START0();
    negotiates(b, "1.0", "1.0");
    negotiates(b, "1.1", "1.1");
    negotiates(b, "1.2", "1.2");
    h_broker_stop_ok(b);
}

Test(connect, highest_version_in_common)
{
    struct h_broker *b = H_START0();
    negotiates(b, "1.0,1.1,1.2", "1.2");
    negotiates(b, "1.2,1.1,1.0", "1.2");
    negotiates(b, "1.0,1.1", "1.1");
    negotiates(b, "1.1,1.0", "1.1");
    negotiates(b, "1.0,1.2", "1.2");
    negotiates(b, "1.1,2.0", "1.1");
    negotiates(b, "1.0,3.7", "1.0");
    h_broker_stop_ok(b);
}

Test(connect, nothing_in_common_is_error_with_versions)
{
    struct h_broker *b = H_START0();
    const char *bad[] = {"2.0", "2.0,3.0", "0.9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct h_conn *c = h_dial(b);
        h_sendf(c, "CONNECT\naccept-version:%s\nhost:/\n\n", bad[i]);
        struct h_frame *f = h_expect_error(c, NULL);
        const char *v = h_hdr(f, "version");
        cr_assert(v != NULL && strcmp(v, "1.0,1.1,1.2") == 0,
                  "accept-version:%s: expected ERROR version:1.0,1.1,1.2, got %s", bad[i],
                  h_show(f));
    }
    /* The broker is unharmed. */
    negotiates(b, "1.2", "1.2");
    h_broker_stop_ok(b);
}

Test(connect, stomp_command)
{
    struct h_broker *b = H_START0();
    const char *vs[] = {"1.1", "1.2", "1.0,1.1,1.2"};
    const char *want[] = {"1.1", "1.2", "1.2"};
    for (size_t i = 0; i < 3; i++) {
        struct h_conn *c = h_dial(b);
        struct h_frame *f = h_stomp_connect(c, vs[i], NULL, NULL, NULL, true);
        cr_assert(f != NULL && strcmp(f->cmd, "CONNECTED") == 0, "STOMP got %s", h_show(f));
        cr_assert_str_eq(h_hdr(f, "version"), want[i]);
        /* and the session works */
        const char *q = h_dest("queue", "stompcmd");
        h_publish(c, q, "x", true);
        h_subscribe(c, q, "s", NULL, NULL);
        h_expect_msg(c, "x");
    }
    h_broker_stop_ok(b);
}

Test(connect, any_host_value)
{
    struct h_broker *b = H_START0();
    const char *hosts[] = {
        "/", "localhost", "127.0.0.1", "example.org", "vhost-that-does-not-exist", "[::1]"};
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        struct h_conn *c = h_dial(b);
        h_sendf(c, "CONNECT\naccept-version:1.2\nhost:%s\n\n", hosts[i]);
        struct h_frame *f = h_read(c, H_WAIT);
        cr_assert(f != NULL && strcmp(f->cmd, "CONNECTED") == 0, "host:%s got %s", hosts[i],
                  h_show(f));
        h_close(c);
    }
    h_broker_stop_ok(b);
}

Test(connect, connected_headers)
{
    struct h_broker *b = H_START0();
    const char *ver = getenv("ITEST_VERSION");
    struct h_conn *c1 = h_dial(b), *c2 = h_dial(b);
    struct h_frame *f1 = h_stomp_connect(c1, "1.2", NULL, NULL, NULL, false);
    struct h_frame *f2 = h_stomp_connect(c2, "1.1", NULL, NULL, "0,0", false);
    cr_assert(f1 && strcmp(f1->cmd, "CONNECTED") == 0, "got %s", h_show(f1));
    cr_assert(f2 && strcmp(f2->cmd, "CONNECTED") == 0, "got %s", h_show(f2));
    cr_assert_str_eq(h_hdr(f1, "version"), "1.2");
    const char *server = h_hdr(f1, "server");
    cr_assert(server != NULL, "CONNECTED without server: %s", h_show(f1));
    cr_assert(strncmp(server, "stampede/", 9) == 0, "server header '%s'", server);
    if (ver != NULL)
        cr_assert_str_eq(server + 9, ver, "server header '%s', project version %s", server, ver);
    const char *s1 = h_hdr(f1, "session"), *s2 = h_hdr(f2, "session");
    cr_assert(s1 && s1[0] && s2 && s2[0], "CONNECTED without session: %s / %s", h_show(f1),
              h_show(f2));
    cr_assert(strcmp(s1, s2) != 0, "two connections got the same session '%s'", s1);
    cr_assert(h_hdr(f1, "heart-beat") != NULL, "CONNECTED without heart-beat: %s", h_show(f1));
    cr_assert_str_eq(h_hdr(f2, "heart-beat"), "0,0");
    h_broker_stop_ok(b);
}

static struct h_frame *login(struct h_broker *b, const char *user, const char *pass)
{
    struct h_conn *c = h_dial(b);
    struct h_frame *f = h_stomp_connect(c, "1.2", user, pass, NULL, false);
    cr_assert(f != NULL, "login %s:%s: no reply", user ? user : "-", pass ? pass : "-");
    if (strcmp(f->cmd, "ERROR") == 0) {
        cr_assert(h_hdr(f, "message") != NULL, "ERROR without message: %s", h_show(f));
        struct h_frame *more = NULL;
        cr_assert(h_wait_closed(c, 3000, &more), "failed login not closed (%s)",
                  more ? h_show(more) : "still open");
    }
    return f;
}

Test(connect, auth_with_users)
{
    struct h_broker *b = H_START("--user", "alice:s3cret", "--user", "bob:pw:with:colons");
    struct h_frame *ok1 = login(b, "alice", "s3cret");
    cr_assert_str_eq(ok1->cmd, "CONNECTED", "good login got %s", h_show(ok1));
    struct h_frame *ok2 = login(b, "bob", "pw:with:colons");
    cr_assert_str_eq(ok2->cmd, "CONNECTED", "second user got %s", h_show(ok2));
    struct h_frame *bad_login = login(b, "mallory", "s3cret");
    struct h_frame *bad_pass = login(b, "alice", "wrong");
    struct h_frame *other_pass = login(b, "alice", "pw:with:colons");
    struct h_frame *none = login(b, NULL, NULL);
    cr_assert_str_eq(bad_login->cmd, "ERROR", "wrong login got %s", h_show(bad_login));
    cr_assert_str_eq(bad_pass->cmd, "ERROR", "wrong passcode got %s", h_show(bad_pass));
    cr_assert_str_eq(other_pass->cmd, "ERROR", "other user's passcode got %s", h_show(other_pass));
    cr_assert_str_eq(none->cmd, "ERROR", "no credentials got %s", h_show(none));
    /* Same text whether the login or the passcode was wrong (RabbitMQ's):
     * only the login the client sent differs. */
    cr_assert_str_eq(h_hdr(bad_login, "message"), "Bad CONNECT");
    cr_assert_str_eq(h_hdr(bad_pass, "message"), "Bad CONNECT");
    cr_assert_str_eq(h_hdr(other_pass, "message"), "Bad CONNECT");
    cr_assert_str_eq(bad_login->body, "Access refused for user 'mallory'");
    cr_assert_str_eq(bad_pass->body, "Access refused for user 'alice'");
    cr_assert_str_eq(other_pass->body, "Access refused for user 'alice'");
    cr_assert_str_eq(none->body, "Access refused for user ''");
    cr_assert(bad_login->nheaders == bad_pass->nheaders, "different headers: %s vs %s",
              h_show(bad_login), h_show(bad_pass));
    /* A logged-in client works. */
    struct h_conn *c = h_client_login(b, "1.2", "alice", "s3cret");
    const char *q = h_dest("queue", "auth");
    h_publish(c, q, "hi", true);
    h_subscribe(c, q, "s", NULL, NULL);
    h_expect_msg(c, "hi");
    h_broker_stop_ok(b);
}

Test(connect, no_users_accepts_any_login)
{
    struct h_broker *b = H_START0();
    cr_assert_str_eq(login(b, "anyone", "anything")->cmd, "CONNECTED");
    cr_assert_str_eq(login(b, NULL, NULL)->cmd, "CONNECTED");
    cr_assert_str_eq(login(b, "", "")->cmd, "CONNECTED");
    h_broker_stop_ok(b);
}

Test(connect, second_connect_is_error)
{
    struct h_broker *b = H_START0();
    const char *vs[] = {"1.0", "1.1", "1.2"};
    for (size_t i = 0; i < 3; i++) {
        struct h_conn *c = h_client(b, vs[i]);
        h_sendz(c, "CONNECT\naccept-version:1.2\nhost:/\n\n");
        h_expect_error(c, NULL);
        struct h_conn *d = h_client(b, vs[i]);
        h_sendz(d, "STOMP\naccept-version:1.2\nhost:/\n\n");
        h_expect_error(d, NULL);
    }
    h_broker_stop_ok(b);
}

Test(connect, frame_before_connect_is_error)
{
    struct h_broker *b = H_START0();
    const char *frames[] = {
        "SEND\ndestination:/queue/early\n\nx",
        "SUBSCRIBE\ndestination:/queue/early\nid:1\n\n",
        "DISCONNECT\nreceipt:r1\n\n",
        "BEGIN\ntransaction:t\n\n",
    };
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++) {
        struct h_conn *c = h_dial(b);
        h_sendz(c, frames[i]);
        h_expect_error(c, NULL);
    }
    /* The early SEND did not reach the queue. */
    struct h_conn *c = h_client(b, "1.2");
    h_subscribe(c, "/queue/early", "s", NULL, NULL);
    h_publish(c, "/queue/early", "marker", true);
    h_expect_msg(c, "marker");
    h_broker_stop_ok(b);
}

/* A silent client is closed at the login timeout (an ERROR first is allowed). */
static uint64_t time_to_close(struct h_conn *c, uint64_t t0, int max_ms)
{
    struct h_frame *f = NULL;
    bool closed = h_wait_closed(c, max_ms, &f);
    if (!closed && f != NULL) {
        cr_assert_str_eq(f->cmd, "ERROR", "silent client got %s", h_show(f));
        closed = h_wait_closed(c, 3000, &f);
    }
    cr_assert(closed, "silent client not closed within %d ms (%s)", max_ms,
              f ? h_show(f) : "still open");
    return h_now_ms() - t0;
}

Test(connect, login_timeout_closes_silent_client)
{
    struct h_broker *b = H_START("--login-timeout", "500ms");
    uint64_t t0 = h_now_ms();
    struct h_conn *silent = h_dial(b);
    struct h_conn *partial = h_dial(b);
    h_send(partial, "CONNECT\naccept-version:1.2\n", 26);
    struct h_conn *ok = h_client(b, "1.2");
    uint64_t dt = time_to_close(silent, t0, 4000);
    cr_assert(dt >= 350 && dt <= 2500, "silent client closed after %llu ms, want ~500",
              (unsigned long long)dt);
    uint64_t dt2 = time_to_close(partial, t0, 4000);
    cr_assert(dt2 >= 350 && dt2 <= 2500, "half-CONNECT client closed after %llu ms, want ~500",
              (unsigned long long)dt2);
    /* A connected client is not subject to the login timeout. */
    h_sleep_ms(300);
    const char *q = h_dest("queue", "lt");
    h_publish(ok, q, "still here", true);
    h_subscribe(ok, q, "s", NULL, NULL);
    h_expect_msg(ok, "still here");
    h_broker_stop_ok(b);
}
